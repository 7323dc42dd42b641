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

    /// The micro-batches of `batch`, in order.
    public func split(_ batch: Range<Int>) -> [Range<Int>] {
        (0..<count(of: batch)).map { microBatch($0, of: batch) }
    }

}

/// Sums micro-batch gradients exactly, in Int64 fixed point per tensor (see the top of this file).
public final class FixedPointSum: GradientReducer {
    let communicator: Communicator
    /// Each tensor's elements in the flat gradient.
    private let tensors: [Range<Int>]
    /// The fixed-point sum, allocated once.
    private var sum: [Int64]
    /// Per tensor: the largest magnitude of any micro-batch's value, over all ranks.
    private var largest: [Float]
    /// Threads the conversion runs on (the rank's).
    private let threads: Int

    /// - Parameters:
    ///   - tensors: each parameter's elements in the flat gradient, in layout order.
    ///   - microBatches: how the global batch is cut (the same for every rank count).
    public init(communicator: Communicator, tensors: [Range<Int>], count: Int, microBatches: MicroBatches, threads: Int = 1) {
        self.communicator = communicator
        plan = microBatches
        self.tensors = tensors
        self.threads = threads
        sum = [Int64](repeating: 0, count: count)
        largest = [Float](repeating: 0, count: tensors.count)
    }

    public var summary: String {
        "gradients summed exactly (Int64 fixed point over micro-batches of \(plan.size): the same bits at any rank "
            + "and thread count)"
            + (communicator.size > 1 ? ", one all-reduce after backward" : "")
    }

    private let plan: MicroBatches
    public var microBatches: MicroBatches? { plan }

    /// `parts` are this rank's micro-batch gradients (a zero part if it has none); the sum over every rank's
    /// micro-batches is left in the first part.
    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>) throws(CommunicatorError) {
        let total = parts.first!
        require(sum.count == total.count, "FixedPointSum: \(total.count) gradients, made for \(sum.count)")
        for (t, range) in tensors.enumerated() {
            largest[t] = parts.reduce(Float(0)) { max($0, FixedPoint.largestMagnitude(UnsafeBufferPointer(rebasing: $1[range]))) }
        }
        try largest.withUnsafeMutableBufferPointer { (largest) throws(CommunicatorError) in
            try communicator.allReduce(UnsafeMutableRawBufferPointer(largest), count: largest.count, element: .float, operation: .max)
        }
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
        if count <= 1 { body(0, 1) } else { DispatchQueue.concurrentPerform(iterations: count) { body($0, count) } }
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
        guard largest.isFinite else {
            for i in range { total[i] = .nan }
            return
        }
        guard largest > 0 else {
            for i in range { total[i] = 0 }
            return
        }
        let grid = gridExponent(largest)
        if grid >= Int(Float.leastNormalMagnitude.exponent) {
            let step = Float(sign: .plus, exponent: grid, significand: 1)
            for i in range { total[i] = Float(sum[i]) * step }  // Float(Int64) rounds once; the power of two is exact
        } else {
            let step = Double(sign: .plus, exponent: grid, significand: 1)
            for i in range { total[i] = Float(Double(sum[i]) * step) }
        }
    }
}
