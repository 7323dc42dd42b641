// An Int32 sum over the ranks of one host through memory they all map, for the exact sum's fixed-point values.
//
// MPI_Allreduce copies: on one host Open MPI moves each rank's buffer into another's through the kernel
// (process_vm_readv), reduces it there, and moves the result back. Here each rank writes its contribution straight
// into a slot of memory every rank maps (the exact sum converts into it), and after a barrier each rank adds one
// slice of the elements over all slots into a result every rank reads after a second barrier. Nothing is copied,
// and each rank reads 1/N of every slot. Integer addition is associative, so the order of the slots cannot change a
// bit; the slots are added in rank order anyway.
//
// Lifetime of the values: a rank writes its slot of the next sum only after the barrier that ends this one, when
// every rank has finished reading the slots; the result stays valid until the first barrier of the next sum, so a
// rank may read it (the optimizer's step does) until it calls `sum()` again.
import Support

/// N slots of `count` Int32 values and a result, in memory every rank of one host maps.
public final class HostSharedSum {
    public let count: Int
    private let rank: Int
    private let size: Int
    private let memory: UnsafeMutablePointer<Int32>
    /// Waits until every rank has arrived, with the memory ordering that makes their writes visible.
    private let barrier: () throws(CommunicatorError) -> Void

    /// - Parameters:
    ///   - memory: `(size + 1) * count` values that every rank maps at its own address, laid out alike.
    ///   - barrier: a barrier over the `size` ranks that orders memory (MPI_Win_sync around MPI_Barrier).
    public init(memory: UnsafeMutablePointer<Int32>, count: Int, rank: Int, size: Int,
                barrier: @escaping () throws(CommunicatorError) -> Void) {
        require(count > 0 && size > 1 && (0..<size).contains(rank), "HostSharedSum: \(count) values, rank \(rank) of \(size)")
        self.memory = memory
        self.count = count
        self.rank = rank
        self.size = size
        self.barrier = barrier
    }

    /// Bytes of shared memory the sum of `count` values over `size` ranks takes.
    public static func bytes(count: Int, size: Int) -> Int { (size + 1) * count * MemoryLayout<Int32>.stride }

    /// This rank's slot: write the contribution here, then call `sum()`.
    public var contribution: UnsafeMutableBufferPointer<Int32> {
        UnsafeMutableBufferPointer(start: memory + rank * count, count: count)
    }

    /// The sum of every rank's contribution, after `sum()` and until the next one.
    public var result: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(start: memory + size * count, count: count) }

    /// The elements whose sum rank `rank` computes.
    func slice(of rank: Int) -> Range<Int> { (rank * count / size)..<((rank + 1) * count / size) }

    /// Sums every rank's contribution into `result`: a collective, called by every rank in the same order.
    /// - Parameter threads: this rank's threads, which share its slice.
    public func sum(threads: Int = 1) throws(CommunicatorError) {
        try barrier()  // every slot written
        let slice = slice(of: rank)
        let chunk = 4096  // a chunk of the result stays in the first-level cache while the slots are added into it
        let chunks = (slice.count + chunk - 1) / chunk
        let work = UncheckedSendable((memory, count, size))
        let workers = min(max(1, threads), max(1, chunks / 16))
        ThreadPool.shared.run(parts: workers) { worker in
            let (memory, count, size) = work.value
            let result = memory + size * count
            for c in stride(from: worker, to: chunks, by: workers) {
                let start = slice.lowerBound + c * chunk, length = min(chunk, slice.upperBound - start)
                let target = result + start
                target.update(from: memory + start, count: length)
                for slot in 1..<size {
                    let source = memory + slot * count + start
                    for i in 0..<length { target[i] &+= source[i] }  // no overflow: the values' headroom
                }
            }
        }
        try barrier()  // every slice summed
    }
}

/// Whether the ranks can sum through memory they share, and if not, why.
public enum HostSharing {
    case shared(HostSharedSum)
    case unavailable(String)

    public var sum: HostSharedSum? {
        if case .shared(let sum) = self { sum } else { nil }
    }
}
