// Overlapping the gradient all-reduce with backward: parameters are grouped into buckets of at least 1 MB, last
// layer first (the order backward finishes them), and each bucket's MPI_Iallreduce starts as soon as all its
// gradients are final; the step waits only before the optimizer. With Open MPI's TCP transport, requests make
// progress only inside MPI calls, so the backward pass tests them after every op.
import Autodiff
import Dispatch
import Distributed

final class GradientBuckets {
    /// Contiguous ranges of the flat gradient (parameters are laid out in order, buckets taken from the end).
    private let ranges: [Range<Int>]
    /// The bucket each parameter belongs to.
    private let bucketOf: [Int]
    private let sizes: [Int]
    private var remaining: [Int] = []
    private var pending: [PendingReduction] = []
    /// The gradient in Double, reduced per bucket (when reducing exactly); allocated once.
    private var exactBuffer: [Double] = []
    private var exact = false
    private(set) var secondsInMPIDuringBackward = 0.0

    /// Buckets of at least `minimumBytes` (of Float gradients), built from the last parameter backwards.
    init(store: ParameterStore, minimumBytes: Int = 1 << 20) {
        var ranges: [Range<Int>] = [], bucketOf = [Int](repeating: 0, count: store.entries.count), sizes: [Int] = []
        var end = store.count, members = 0
        for index in store.entries.indices.reversed() {
            let entry = store.entries[index]
            bucketOf[index] = ranges.count
            members += 1
            if (end - entry.offset) * 4 >= minimumBytes || index == 0 {
                ranges.append(entry.offset..<end)
                sizes.append(members)
                end = entry.offset
                members = 0
            }
        }
        self.ranges = ranges
        self.bucketOf = bucketOf
        self.sizes = sizes
    }

    /// Starts a step.
    func begin() {
        remaining = sizes
        pending.removeAll(keepingCapacity: true)
        secondsInMPIDuringBackward = 0
    }

    /// Runs `backward` with callbacks that start each bucket's all-reduce when its parameters are ready. With
    /// `exact`, the gradient is converted to Double per bucket and reduced in Double (into `exact`'s storage).
    func overlap<T>(communicator: Communicator, store: ParameterStore, exact: Bool,
                    _ backward: (_ parameterReady: @escaping (Int) -> Void, _ progress: @escaping () -> Void) -> T) throws -> T {
        self.exact = exact
        if exact && exactBuffer.count != store.count { exactBuffer = [Double](repeating: 0, count: store.count) }
        var failure: Error?
        let ready: (Int) -> Void = { [unowned self] parameter in
            let bucket = bucketOf[parameter]
            remaining[bucket] -= 1
            guard remaining[bucket] == 0 else { return }
            let start = DispatchTime.now()
            let range = ranges[bucket]
            do {
                if exact {
                    store.withGradients { g in
                        for i in range { exactBuffer[i] = Double(g[i]) }
                    }
                    let request = try exactBuffer.withUnsafeMutableBytes { (bytes) throws(CommunicatorError) in
                        try communicator.startAllReduce(UnsafeMutableRawBufferPointer(rebasing: bytes[(range.lowerBound * 8)..<(range.upperBound * 8)]),
                                                        count: range.count, element: .double, operation: .sum)
                    }
                    pending.append(request)
                } else {
                    let request = try store.withGradients { (g) throws(CommunicatorError) in
                        try communicator.startAllReduce(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: g[range])),
                                                        count: range.count, element: .float, operation: .sum)
                    }
                    pending.append(request)
                }
            } catch {
                failure = error
            }
            secondsInMPIDuringBackward += seconds(start, DispatchTime.now())
        }
        let progress: () -> Void = { [unowned self] in
            guard !pending.isEmpty else { return }
            let start = DispatchTime.now()
            for request in pending {
                do { _ = try request.test() } catch { failure = error }
            }
            secondsInMPIDuringBackward += seconds(start, DispatchTime.now())
        }
        let result = backward(ready, progress)
        if let failure { throw failure }
        return result
    }

    /// Waits for every bucket, and rounds the Double sums back into the gradient.
    func finish(store: ParameterStore) throws {
        for request in pending { try request.wait() }
        pending.removeAll(keepingCapacity: true)
        if exact {
            store.withGradients { g in
                exactBuffer.withUnsafeBufferPointer { BufferMath.round($0.baseAddress!, into: g.baseAddress!, count: g.count) }
            }
        }
    }
}
