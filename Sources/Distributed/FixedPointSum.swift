// The exact sum: gradients that are the same bits at every rank count and thread count.
//
// Why a Double sum is not enough: each rank's or worker's part of the batch becomes one Float gradient before any
// sum, so the parts themselves depend on how the batch was split; and a Double sum is exact only while the summed
// values' exponents span less than 29 bits. Here both causes are removed by construction:
//
//  1. The global batch is cut into fixed micro-batches (`MicroBatches`) whose boundaries do not depend on the rank
//     or thread count; each micro-batch's gradient is computed as one unit (one forward and backward, on one
//     thread), so its Float bits are the same whoever computes it.
//  2. Those gradients are summed in fixed point. Per tensor, the ranks agree on the largest magnitude of any
//     micro-batch's gradient (a max all-reduce of one Float per tensor) and so on its binary exponent E. Every
//     value is rounded to a multiple of 2^(E - 45) and summed as an Int64: integer addition is associative, so
//     neither MPI's reduction order nor the grouping of micro-batches into ranks and workers can change a bit.
//     The sum is converted back and rounded to Float once.
//
// What is lost, and why it is the same at every N: each micro-batch value is rounded to the grid 2^(E - 45), so a
// value below 2^-46 of its tensor's largest value loses bits (below 2^-47 it contributes 0), and each sum carries
// at most K/2 grid steps of error (K micro-batches). The grid depends only on the global maximum, which every N
// computes alike from the same micro-batch gradients; so the same values are rounded the same way whatever N is.
// 2^-46 of the largest value is far below Float's own resolution of it (2^-24), so the final rounding to Float
// decides the result in all but contrived cases. Headroom: |value| < 2^(E + 1) is at most 2^46 grid steps, so
// up to 2^16 micro-batches sum without overflow (batch size up to 2^16 micro-batches; checked).
//
// Float's bytes on the wire (the narrow sum). A batch of K <= 64 micro-batches (the default: 128 / 32 = 4) is
// summed in Int32 instead, in blocks of 256 consecutive values of a tensor, each with its own grid: the ranks agree
// on each block's largest magnitude (one Float per block, 1/256 of the bytes), and the grid leaves 30 - ceil(log2
// K) bits for a value (28 at K = 4), so that K values sum without overflow. The all-reduce then moves 4 bytes a
// value, as a Float all-reduce does, and stays exact and order-free: integers. What it costs: a value is rounded to
// 2^-(bits - 1) of its block's largest (2^-27 at K = 4) instead of 2^-45 of its tensor's, so a value far smaller
// than its block's largest (below 2^-3 of it, at K = 4) keeps fewer bits than Float would give it. The grid
// depends on K, the batch's micro-batch count, which every rank count computes alike: the same bits at any N.
//
// On one host no all-reduce at all: `HostSum` applies the same narrow sum, block by block, to the parts every rank
// wrote into memory they share (HostSum.swift). The same grids and integers, so the same bits as across hosts.
//
// The kernels of both widths, which HostSum shares, are in FixedPointKernels.swift.
import Support

/// Cuts a global batch into micro-batches that do not depend on how many ranks or threads compute it.
public struct MicroBatches: Sendable, Equatable {
    /// Samples per micro-batch (the last one of a batch may be smaller).
    public let size: Int
    /// The most micro-batches one step may sum (the fixed-point headroom).
    public static let maximumCount = 1 << 16

    public init(size: Int) {
        require(size >= 1, "MicroBatches: size \(size)")
        self.size = size
    }

    /// How many micro-batches `batch` has.
    public func count(of batch: Range<Int>) -> Int { (batch.count + size - 1) / size }

    /// Micro-batch `index` of `batch` (positions in the epoch's order).
    public func microBatch(_ index: Int, of batch: Range<Int>) -> Range<Int> {
        let start = batch.lowerBound + index * size
        return start..<min(start + size, batch.upperBound)
    }

}

/// Sums micro-batch gradients exactly, in Int64 fixed point per tensor (see the top of this file).
public final class FixedPointSum: GradientReducer {
    let communicator: Communicator
    /// Each tensor's elements in the flat gradient.
    private let tensors: [Range<Int>]
    /// Values in the flat gradient.
    private let count: Int
    /// The Int64 sum, allocated at the first batch that needs it (most never do: 8 bytes a value).
    private var sum: [Int64] = []
    /// Per tensor: the largest magnitude of any micro-batch's value, over all ranks.
    private var largest: [Float]
    /// Threads the conversion runs on (the rank's).
    private let threads: Int

    /// - Parameters:
    ///   - tensors: each parameter's elements in the flat gradient, in layout order.
    ///   - microBatches: how the global batch is cut (the same for every rank count).
    ///   - overlap: start each bucket's sum during the backward of this rank's last micro-batch (more than one
    ///     rank, one worker per rank; `backwardHooks(batch:)`).
    ///   - notShared: why the host's ranks all-reduce instead of sharing the step (for the summary).
    public init(communicator: Communicator, tensors: [Range<Int>], count: Int, microBatches: MicroBatches, threads: Int = 1,
                overlap: Bool = false, minimumBucketBytes: Int = 1 << 20, notShared: String? = nil) {
        self.communicator = communicator
        self.notShared = notShared
        plan = microBatches
        self.tensors = tensors
        self.threads = threads
        self.count = count
        largest = [Float](repeating: 0, count: tensors.count)
        blocks = NarrowFixedPoint.blocks(of: tensors)
        blockLargest = [Float](repeating: 0, count: blocks.count)
        if overlap && communicator.size > 1 {
            let buckets = GradientBuckets(parameterRanges: tensors, count: count, minimumBytes: minimumBucketBytes)
            // A bucket is whole tensors and a block never crosses a tensor's end: each bucket is a run of whole blocks.
            bucketBlocks = buckets.ranges.map { range in
                let first = blocks.firstIndex { $0.lowerBound >= range.lowerBound } ?? blocks.count
                let end = blocks[first...].firstIndex { $0.lowerBound >= range.upperBound } ?? blocks.count
                return first..<end
            }
            bucketBlockLists = bucketBlocks.map { Array(blocks[$0]) }
            schedule = BucketSchedule(buckets)
        }
    }

    /// The narrow sum's blocks (of `NarrowFixedPoint.blockSize` values, none across a tensor's end), its Int32 sum
    /// (allocated at the first batch that all-reduces it) and each block's largest magnitude.
    private let blocks: [Range<Int>]
    private var narrowSum: [Int32] = []
    private var blockLargest: [Float]
    /// Why the host's ranks all-reduce instead (for the summary).
    private let notShared: String?
    /// `round(_:into:)`, made once (a step allocates nothing).
    private lazy var rounding: (Range<Int>, UnsafeMutablePointer<Float>) -> Void = { [unowned self] in round($0, into: $1) }

    public var summary: String {
        let sum = "gradients summed exactly (fixed point over micro-batches of \(plan.size), Int32 on the wire: the same bits at "
            + "any rank and thread count)"
        if let schedule {
            return sum + ", all-reduce overlapped with the last micro-batch's backward (\(schedule.buckets.description)"
                + (notShared.map { "; \($0))" } ?? ")")
        }
        return sum + GradientReduction.allReduceSummary(communicator, notShared: notShared)
    }

    // MARK: Overlap
    //
    // With `overlap`, the narrow sum starts per bucket of parameters (`GradientBuckets`, last layer first) while
    // backward runs: a rank's micro-batches are computed one after another, so when its last one has finished a
    // bucket's gradients, every part of that bucket is final. The bucket's blocks' maxima are then agreed (a
    // blocking max all-reduce of one Float per block: started anywhere later, the collectives could be issued in
    // different orders on different ranks), its parts converted, and its Int32 sum started (MPI_Iallreduce).
    // `reduceDeferringRounding` then only waits. The same grids, values and integer sums as without overlap: the same
    // bits. A batch of more than 64 micro-batches takes the Int64 sum after backward, as without overlap.

    /// The buckets' schedule and the blocks each bucket covers (nil without overlap).
    private var schedule: BucketSchedule?
    private var bucketBlocks: [Range<Int>] = []
    private var bucketBlockLists: [[Range<Int>]] = []
    /// The step's state: the grid bits when its buckets are summed during backward, and this rank's parts.
    private var overlapValueBits: Int?
    private var stepParts: ArraySlice<UnsafeMutableBufferPointer<Float>> = []
    private var inFlight = InFlightReductions()
    public var secondsDuringBackward: Double { inFlight.secondsDuringBackward }

    public func backwardHooks(batch: Range<Int>) -> BackwardHooks? {
        overlapValueBits = nil
        inFlight.reset()
        guard schedule != nil, let bits = NarrowFixedPoint.valueBits(terms: plan.count(of: batch)) else { return nil }
        overlapValueBits = bits
        if narrowSum.isEmpty { narrowSum = [Int32](repeating: 0, count: count) }
        stepParts = []
        schedule!.reset()
        var hooks = BackwardHooks(parameterReady: { [unowned self] in parameterReady($0) },
                                  progress: { [unowned self] in inFlight.progress() })
        hooks.microBatchParts = { [unowned self] in stepParts = $0 }
        return hooks
    }

    private func parameterReady(_ parameter: Int) {
        guard schedule != nil, let valueBits = overlapValueBits, let bucket = schedule!.ready(parameter),
              inFlight.failure == nil else { return }
        inFlight.start { () throws(CommunicatorError) in try startBucket(bucket, valueBits: valueBits) }
    }

    /// Agrees on `bucket`'s grids, converts this rank's parts of it and starts its sum.
    private func startBucket(_ bucket: Int, valueBits: Int) throws(CommunicatorError) -> PendingReduction {
        require(!stepParts.isEmpty && stepParts.allSatisfy({ $0.count == count }),
                "FixedPointSum: the micro-batch parts must be given before the last backward (microBatchParts)")
        let parts = stepParts
        let blocks = bucketBlockLists[bucket]
        let elements = schedule!.buckets.ranges[bucket]
        try blockLargest.withUnsafeMutableBufferPointer { (all) throws(CommunicatorError) in
            let largest = UnsafeMutableBufferPointer(rebasing: all[bucketBlocks[bucket]])
            NarrowFixedPoint.largestPerBlock(parts, blocks: blocks, into: largest, threads: threads)
            try communicator.allReduce(UnsafeMutableRawBufferPointer(largest), count: largest.count, element: .float, operation: .max)
            narrowSum.withUnsafeMutableBufferPointer { sum in
                NarrowFixedPoint.accumulate(parts, blocks: blocks, largest: UnsafeBufferPointer(largest), valueBits: valueBits,
                                            into: sum, threads: threads)
            }
        }
        return try narrowSum.withUnsafeMutableBufferPointer { (sum) throws(CommunicatorError) in
            try communicator.startAllReduce(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: sum[elements])),
                                            count: elements.count, element: .int32, operation: .sum)
        }
    }

    /// Waits for the sums the step's backward started; false when it started none.
    private func finishOverlapped(count: Int) throws(CommunicatorError) -> Bool {
        guard let valueBits = overlapValueBits else { return false }
        overlapValueBits = nil
        stepParts = []
        try inFlight.finish()
        require(schedule!.complete, "FixedPointSum: backward did not finish every bucket")
        keptValueBits = valueBits
        bytesPerStep = narrowBytesPerStep(count)
        return true
    }

    private let plan: MicroBatches
    public var layout: PartLayout { PartLayout(microBatches: plan) }

    public private(set) var bytesPerStep = 0

    /// What the Int32 sum hands to the all-reduces: 4 bytes a value and each block's largest magnitude (0 alone).
    private func narrowBytesPerStep(_ count: Int) -> Int { communicator.size > 1 ? count * 4 + blocks.count * 4 : 0 }

    /// `parts` are this rank's micro-batch gradients (a zero part if it has none), summed over every rank's
    /// micro-batches of `batch`: in Int32 blocks, kept for the step's rounding, when the batch has few enough
    /// micro-batches; else in Int64, converted into the first part at once.
    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient {
        keptValueBits = nil
        let whole = 0..<parts.first!.count
        if try finishOverlapped(count: parts.first!.count) { return ReducedGradient(range: whole, rounding: rounding) }
        guard let bits = NarrowFixedPoint.valueBits(terms: plan.count(of: batch)) else {
            try reduceWide(parts)
            return ReducedGradient(range: whole, rounding: nil)
        }
        try reduceNarrow(parts, valueBits: bits)
        keptValueBits = bits
        return ReducedGradient(range: whole, rounding: rounding)
    }

    /// The grid bits of the Int32 sum kept by `reduce` for the step's rounding, nil when none is kept.
    private var keptValueBits: Int?

    /// Elements `range` of the kept Int32 sum, rounded to Float into `out[0..<range.count]`.
    private func round(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        guard let valueBits = keptValueBits else { return require(false, "FixedPointSum.round: no Int32 sum is kept") }
        require(range.lowerBound >= 0 && range.upperBound <= count, "FixedPointSum.round: range \(range) of \(count)")
        narrowSum.withUnsafeBufferPointer { sum in
            blockLargest.withUnsafeBufferPointer { largest in
                NarrowFixedPoint.forEachBlock(of: blocks, meeting: range) { b, part in
                    NarrowFixedPoint.convertBack(sum.baseAddress! + part.lowerBound, count: part.count, largest: largest[b],
                                                 valueBits: valueBits, into: out + (part.lowerBound - range.lowerBound))
                }
            }
        }
    }

    // MARK: Across hosts

    /// The Int32 sum in blocks (see the top of this file).
    private func reduceNarrow(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, valueBits: Int) throws(CommunicatorError) {
        let total = parts.first!
        if narrowSum.isEmpty { narrowSum = [Int32](repeating: 0, count: count) }
        require(count == total.count, "FixedPointSum: \(total.count) gradients, made for \(count)")
        let blocks = self.blocks
        if communicator.size == 1 {
            // This rank's largest magnitudes are every rank's: each block is converted in the pass that finds its
            // largest, while the block is in the first-level cache (one read of the parts, not two).
            narrowSum.withUnsafeMutableBufferPointer { sum in
                blockLargest.withUnsafeMutableBufferPointer { largest in
                    NarrowFixedPoint.largestAndAccumulate(parts, blocks: blocks, largest: largest, valueBits: valueBits,
                                                          into: sum, threads: threads)
                }
            }
        } else {
            // Converting before the ranks agree, and again where another rank's largest value sets another grid,
            // was tried: at -np 2 about 45 % of the blocks had to be converted twice, more than the read it saves.
            blockLargest.withUnsafeMutableBufferPointer { largest in
                NarrowFixedPoint.largestPerBlock(parts, blocks: blocks, into: largest, threads: threads)
            }
            try blockLargest.withUnsafeMutableBufferPointer { (largest) throws(CommunicatorError) in
                try communicator.allReduce(UnsafeMutableRawBufferPointer(largest), count: largest.count, element: .float, operation: .max)
            }
            narrowSum.withUnsafeMutableBufferPointer { sum in
                blockLargest.withUnsafeBufferPointer { largest in
                    NarrowFixedPoint.accumulate(parts, blocks: blocks, largest: largest, valueBits: valueBits, into: sum, threads: threads)
                }
            }
        }
        try narrowSum.withUnsafeMutableBufferPointer { (sum) throws(CommunicatorError) in try communicator.allReduce(sum, .sum) }
        bytesPerStep = narrowBytesPerStep(total.count)
    }

    /// The Int64 sum, one grid per tensor.
    private func reduceWide(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>) throws(CommunicatorError) {
        let total = parts.first!
        require(count == total.count, "FixedPointSum: \(total.count) gradients, made for \(count)")
        for (t, range) in tensors.enumerated() {
            largest[t] = parts.reduce(Float(0)) { max($0, FixedPoint.largestMagnitude(UnsafeBufferPointer(rebasing: $1[range]))) }
        }
        try largest.withUnsafeMutableBufferPointer { (largest) throws(CommunicatorError) in
            try communicator.allReduce(UnsafeMutableRawBufferPointer(largest), count: largest.count, element: .float, operation: .max)
        }
        if sum.isEmpty { sum = [Int64](repeating: 0, count: count) }
        sum.withUnsafeMutableBufferPointer { sum in
            for (t, range) in tensors.enumerated() {
                FixedPoint.accumulate(parts, range: range, largest: largest[t], into: sum, threads: threads)
            }
        }
        try sum.withUnsafeMutableBufferPointer { (sum) throws(CommunicatorError) in try communicator.allReduce(sum, .sum) }
        sum.withUnsafeBufferPointer { sum in
            for (t, range) in tensors.enumerated() {
                FixedPoint.convertBack(sum, range: range, largest: largest[t], into: total)
            }
        }
        bytesPerStep = communicator.size > 1 ? total.count * 8 + tensors.count * 4 : 0
    }
}
