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
import Dispatch
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
        if let schedule { return sum + ", all-reduce overlapped with the last micro-batch's backward (\(schedule.buckets.description))" }
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
                                  afterEachPullback: { [unowned self] in inFlight.progress() })
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

/// The fixed-point kernels.
public enum FixedPoint {
    /// Grid steps per value below 2^(E + 1), where E is the largest magnitude's exponent: 2^46, leaving 2^16 of
    /// headroom in an Int64.
    static let valueBits = 46

    /// The largest |value|, or infinity if any value is not finite (so that the ranks agree the sum is not finite).
    /// For non-negative Floats the bit patterns order as the values do, and every NaN's pattern lies above
    /// infinity's: so the largest magnitude is the largest pattern with the sign bit cleared, an integer maximum
    /// that vectorises.
    public static func largestMagnitude(_ values: UnsafeBufferPointer<Float>) -> Float {
        var largest: UInt32 = 0
        for value in values { largest = max(largest, value.bitPattern & 0x7fff_ffff) }
        return largest >= Float.infinity.bitPattern ? .infinity : Float(bitPattern: largest)
    }

    /// The grid's exponent for a tensor whose largest magnitude is `largest` (finite, not 0).
    static func gridExponent(_ largest: Float) -> Int { Int(largest.exponent) + 1 - valueBits }

    /// `sum[range] = Σ over sources of round(source[range] / 2^grid)`, a block at a time: each source is read once
    /// and each Int64 written once, and the blocks are shared among `threads` threads (every element's result is
    /// the same whichever thread computes it).
    public static func accumulate(_ sources: ArraySlice<UnsafeMutableBufferPointer<Float>>, range: Range<Int>, largest: Float,
                                  into sum: UnsafeMutableBufferPointer<Int64>, threads: Int = 1) {
        guard largest.isFinite && largest > 0 else {
            for i in range { sum[i] = 0 }  // all zero, or not finite (convertBack writes NaN)
            return
        }
        let scale = Double(sign: .plus, exponent: -gridExponent(largest), significand: 1)
        let blockSize = 2048
        let blocks = (range.count + blockSize - 1) / blockSize
        let work = UncheckedSendable((sources, sum))
        let body: @Sendable (Int, Int) -> Void = { thread, count in
            let (sources, sum) = work.value
            for block in stride(from: thread, to: blocks, by: count) {
                let start = range.lowerBound + block * blockSize
                let end = min(start + blockSize, range.upperBound)
                let target = sum.baseAddress! + start
                for (index, source) in sources.enumerated() {
                    let values = source.baseAddress! + start
                    if index == 0 {
                        for i in 0..<(end - start) { target[i] = fixed(values[i], scale) }
                    } else {
                        for i in 0..<(end - start) { target[i] &+= fixed(values[i], scale) }
                    }
                }
            }
        }
        let count = min(threads, blocks)
        ThreadPool.shared.run(parts: count) { body($0, count) }
    }

    /// `value / 2^grid` (given as `scale`) rounded to the nearest integer, ties to even. Adding 1.5 x 2^52 rounds a
    /// Double below 2^51 in magnitude to an integer and leaves that integer in the low bits of the bit pattern;
    /// written without branches or traps so that the loops around it vectorise.
    @inline(__always)
    static func fixed(_ value: Float, _ scale: Double) -> Int64 {
        let magic = 6_755_399_441_055_744.0
        return Int64(bitPattern: (Double(value) * scale + magic).bitPattern &- magic.bitPattern)
    }

    /// `total[range] = Float(sum[range] x 2^grid)`: one rounding (two only where the result is subnormal); NaN
    /// where the tensor had a value that was not finite.
    public static func convertBack(_ sum: UnsafeBufferPointer<Int64>, range: Range<Int>, largest: Float,
                                   into total: UnsafeMutableBufferPointer<Float>) {
        guard !range.isEmpty else { return }
        convertBack(sum.baseAddress! + range.lowerBound, count: range.count, largest: largest,
                    grid: largest.isFinite && largest > 0 ? gridExponent(largest) : 0, into: total.baseAddress! + range.lowerBound)
    }

    /// `out[0..<count] = Float(sum[0..<count] x 2^grid)` for either width of sum (Int64 per tensor, Int32 per
    /// block): NaN where `largest` is not finite, 0 where it is 0.
    @inline(__always)
    static func convertBack<I: FixedWidthInteger & SignedInteger>(_ sum: UnsafePointer<I>, count: Int, largest: Float,
                                                                  grid: Int, into out: UnsafeMutablePointer<Float>) {
        guard largest.isFinite else {
            out.update(repeating: .nan, count: count)
            return
        }
        guard largest > 0 else {
            out.update(repeating: 0, count: count)
            return
        }
        if grid >= Int(Float.leastNormalMagnitude.exponent) {
            let step = Float(sign: .plus, exponent: grid, significand: 1)
            for i in 0..<count { out[i] = Float(sum[i]) * step }  // Float(integer) rounds once; the power of two is exact
        } else {
            let step = Double(sign: .plus, exponent: grid, significand: 1)
            for i in 0..<count { out[i] = Float(Double(sum[i]) * step) }
        }
    }
}

/// The narrow (Int32) fixed-point kernels: one grid per block of a tensor.
public enum NarrowFixedPoint {
    /// Values per block: 1/256 more bytes for the blocks' largest magnitudes, and a grid that follows the gradient's
    /// scale along a tensor.
    public static let blockSize = 256

    /// Bits of a value's grid for a sum of `terms` micro-batches: K values of at most 2^bits steps sum below 2^30,
    /// inside an Int32. Nil when fewer than 24 would be left (more than 64 micro-batches): the Int64 sum then.
    public static func valueBits(terms: Int) -> Int? {
        let headroom = terms <= 1 ? 0 : Int.bitWidth - (terms - 1).leadingZeroBitCount  // ceil(log2 terms)
        let bits = 30 - headroom
        return bits >= 24 ? bits : nil
    }

    /// The grid's exponent for a block whose largest magnitude is `largest` (finite, not 0).
    static func gridExponent(_ largest: Float, valueBits: Int) -> Int { Int(largest.exponent) + 1 - valueBits }

    /// 2^-grid, which takes a value of that block to its grid steps (exactly: a power of two).
    static func gridScale(_ largest: Float, valueBits: Int) -> Double {
        Double(sign: .plus, exponent: -gridExponent(largest, valueBits: valueBits), significand: 1)
    }

    /// The blocks of `tensors` (each tensor's elements, in layout order): runs of `blockSize` values, none across a
    /// tensor's end, tiling the flat gradient in order.
    static func blocks(of tensors: [Range<Int>]) -> [Range<Int>] {
        tensors.flatMap { tensor in
            stride(from: tensor.lowerBound, to: tensor.upperBound, by: blockSize).map { $0..<min($0 + blockSize, tensor.upperBound) }
        }
    }

    /// `body(index, part)` for each of `blocks` (which tile a buffer in order) that meets `range`, in order, with
    /// the part of it inside `range`.
    @inline(__always)
    static func forEachBlock(of blocks: [Range<Int>], meeting range: Range<Int>, _ body: (Int, Range<Int>) -> Void) {
        var low = 0, high = blocks.count  // the first block that ends after the range's start
        while low < high {
            let middle = (low + high) / 2
            if blocks[middle].upperBound <= range.lowerBound { low = middle + 1 } else { high = middle }
        }
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(blocks[low].upperBound, range.upperBound)
            body(low, start..<end)
            start = end
            low += 1
        }
    }

    /// Runs `body(block)` for every block, the blocks shared among `threads` threads.
    static func forEachBlock(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let workers = min(threads, max(1, count / 64))
        ThreadPool.shared.run(parts: workers) { worker in
            for block in stride(from: worker, to: count, by: workers) { body(block) }
        }
    }

    /// Each block's largest magnitude over every part (infinity when a value is not finite).
    static func largestPerBlock(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, blocks: [Range<Int>],
                                into largest: UnsafeMutableBufferPointer<Float>, threads: Int) {
        let work = UncheckedSendable((parts, blocks, largest))
        forEachBlock(blocks.count, threads: threads) { b in
            let (parts, blocks, largest) = work.value
            largest[b] = largestMagnitude(parts, block: blocks[b])
        }
    }

    /// `sum[block] = Σ over parts of round(part[block] / 2^grid)`, each part read once.
    static func accumulate(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, blocks: [Range<Int>],
                           largest: UnsafeBufferPointer<Float>, valueBits: Int, into sum: UnsafeMutableBufferPointer<Int32>,
                           threads: Int) {
        let work = UncheckedSendable((parts, blocks, largest, sum))
        forEachBlock(blocks.count, threads: threads) { b in
            let (parts, blocks, largest, sum) = work.value
            convert(parts, block: blocks[b], largest: largest[b], valueBits: valueBits, into: sum)
        }
    }

    /// `largestPerBlock` and `accumulate` in one pass, for one rank (whose largest magnitudes need no agreeing):
    /// each block's parts are read from memory once, and again from the first-level cache.
    static func largestAndAccumulate(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, blocks: [Range<Int>],
                                     largest: UnsafeMutableBufferPointer<Float>, valueBits: Int,
                                     into sum: UnsafeMutableBufferPointer<Int32>, threads: Int) {
        let work = UncheckedSendable((parts, blocks, largest, sum))
        forEachBlock(blocks.count, threads: threads) { b in
            let (parts, blocks, largest, sum) = work.value
            largest[b] = largestMagnitude(parts, block: blocks[b])
            convert(parts, block: blocks[b], largest: largest[b], valueBits: valueBits, into: sum)
        }
    }

    /// The largest magnitude of `block` over `sources` (infinity when a value is not finite).
    @inline(__always)
    static func largestMagnitude(_ sources: [UnsafePointer<Float>], block: Range<Int>) -> Float {
        var largest: Float = 0
        for source in sources {
            largest = max(largest, FixedPoint.largestMagnitude(UnsafeBufferPointer(start: source + block.lowerBound, count: block.count)))
        }
        return largest
    }

    /// `target[0..<part.count]` = Σ over `sources` of their values `part` on the grid of a block whose largest
    /// magnitude is `largest`, in Int32; zeros when it is 0 or not finite (convertBack then writes 0 or NaN).
    @inline(__always)
    static func sumOnGrid(_ sources: [UnsafePointer<Float>], part: Range<Int>, largest: Float, valueBits: Int,
                          into target: UnsafeMutablePointer<Int32>) {
        guard largest.isFinite && largest > 0 else {
            target.update(repeating: 0, count: part.count)
            return
        }
        let scale = gridScale(largest, valueBits: valueBits)
        for (index, source) in sources.enumerated() {
            addOnGrid(source + part.lowerBound, count: part.count, scale: scale, into: target, first: index == 0)
        }
    }

    /// For one block: its largest magnitude over `sources` (the whole block), their values on that grid summed in
    /// Int32, and the sum rounded to Float for the elements `part` of it (a sub-range) into `out[0..<part.count]`,
    /// the block in the first-level cache. The bits of `largestPerBlock`, `accumulate` and `convertBack` over the
    /// same sources in any grouping: integer sums.
    @inline(__always)
    static func sumAndRound(_ sources: [UnsafePointer<Float>], block: Range<Int>, part: Range<Int>, valueBits: Int,
                            into out: UnsafeMutablePointer<Float>) {
        let largest = largestMagnitude(sources, block: block)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: blockSize) { sum in
            sumOnGrid(sources, part: part, largest: largest, valueBits: valueBits, into: sum.baseAddress!)
            convertBack(sum.baseAddress!, count: part.count, largest: largest, valueBits: valueBits, into: out)
        }
    }

    /// The largest magnitude of `block` over every part.
    @inline(__always)
    private static func largestMagnitude(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, block: Range<Int>) -> Float {
        var result: Float = 0
        for part in parts { result = max(result, FixedPoint.largestMagnitude(UnsafeBufferPointer(rebasing: part[block]))) }
        return result
    }

    /// `sum[block] = Σ over parts of round(part[block] / 2^grid)` on the grid `largest` gives; zeros when it is 0
    /// or not finite (convertBack then writes 0 or NaN).
    @inline(__always)
    private static func convert(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, block range: Range<Int>, largest: Float,
                                valueBits: Int, into sum: UnsafeMutableBufferPointer<Int32>) {
        let target = sum.baseAddress! + range.lowerBound
        guard largest.isFinite && largest > 0 else {
            target.update(repeating: 0, count: range.count)
            return
        }
        let scale = gridScale(largest, valueBits: valueBits)
        for (index, part) in parts.enumerated() {
            addOnGrid(part.baseAddress! + range.lowerBound, count: range.count, scale: scale, into: target, first: index == 0)
        }
    }

    /// `target[0..<count] (=, or += unless first) round(values[0..<count] x scale)`, in Int32 (the headroom of
    /// `valueBits` keeps the sum from overflowing).
    @inline(__always)
    private static func addOnGrid(_ values: UnsafePointer<Float>, count: Int, scale: Double, into target: UnsafeMutablePointer<Int32>,
                                  first: Bool) {
        if first {
            for i in 0..<count { target[i] = Int32(truncatingIfNeeded: FixedPoint.fixed(values[i], scale)) }
        } else {
            for i in 0..<count { target[i] &+= Int32(truncatingIfNeeded: FixedPoint.fixed(values[i], scale)) }
        }
    }

    /// `out[0..<count] = Float(sum[0..<count] x 2^grid)` for values of one block, whose largest magnitude is
    /// `largest`: one rounding (two where the result is subnormal); NaN for a block that held a value that was not
    /// finite, 0 for one of zeros.
    @inline(__always)
    static func convertBack(_ sum: UnsafePointer<Int32>, count: Int, largest: Float, valueBits: Int, into out: UnsafeMutablePointer<Float>) {
        let grid = largest.isFinite && largest > 0 ? gridExponent(largest, valueBits: valueBits) : 0  // unused without a grid
        FixedPoint.convertBack(sum, count: count, largest: largest, grid: grid, into: out)
    }
}
