// Memory that every rank of one host maps, and a barrier that makes each rank's writes visible to the others.
//
// On one host the exact sum needs no all-reduce at all: each rank's backward writes its micro-batch gradients
// straight into slots of this memory, and after a barrier each rank sums one slice of the blocks over every rank's
// slots (the grid, the conversion, the integer sum and the rounding, while a block is in the first-level cache),
// writing the Float result every rank's optimizer step reads after a second barrier (`FixedPointSum`). Nothing is
// copied between ranks; MPI_Allreduce would copy each rank's buffer into another's memory through the kernel and back.
//
// What the barriers guarantee: a rank writes the memory of the next round only after the barrier that ends this
// one, when every rank has finished reading; what a rank reads after the first barrier of a round stays as it is
// until the first barrier of the next.

import Support

/// A block of memory every rank of one host maps at its own address, with the same layout.
public final class HostSharedMemory {
    /// The memory's start, 64-byte aligned.
    public let base: UnsafeMutableRawPointer
    public let bytes: Int
    public let rank: Int
    public let size: Int
    /// Waits until every rank has arrived, with the memory ordering that makes their writes visible.
    private let wait: () throws(CommunicatorError) -> Void

    /// - Parameters:
    ///   - base: `bytes` that every rank maps, laid out alike, 64-byte aligned.
    ///   - barrier: a barrier over the `size` ranks that orders memory (MPI_Win_sync around MPI_Barrier).
    public init(base: UnsafeMutableRawPointer, bytes: Int, rank: Int, size: Int,
                barrier: @escaping () throws(CommunicatorError) -> Void) {
        require(Int(bitPattern: base) % 64 == 0 && bytes > 0 && size > 1 && (0..<size).contains(rank),
                "HostSharedMemory: \(bytes) bytes at \(base), rank \(rank) of \(size)")
        self.base = base
        self.bytes = bytes
        self.rank = rank
        self.size = size
        wait = barrier
    }

    /// A barrier: every rank's writes before it are visible to every rank after it. A collective.
    public func barrier() throws(CommunicatorError) { try wait() }
}

/// Whether the ranks can share memory, and if not, why.
public enum HostSharing {
    case shared(HostSharedMemory)
    case unavailable(String)

    public var memory: HostSharedMemory? {
        if case .shared(let memory) = self { memory } else { nil }
    }

    /// Why `size` ranks cannot share `bytes`, whoever would map them: one rank, or nothing to share; nil otherwise.
    static func none(size: Int, bytes: Int) -> HostSharing? {
        size <= 1 ? .unavailable("one rank") : bytes <= 0 ? .unavailable("nothing to share") : nil
    }
}
