// The fixed-point kernels of the exact sum (FixedPointSum.swift says what they compute and why): the Int64 sum with
// one grid per tensor, and the narrow Int32 sum with one grid per block of 256 values, which FixedPointSum and
// HostSum share.
import Support

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
