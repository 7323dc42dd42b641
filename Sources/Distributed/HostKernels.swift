// The kernels of the host's shared step: Float and Double sums of every rank's parts over a range, split over threads.
import Support

/// The elementwise sums over the host's parts.
enum HostKernels {
    /// `body(part)` for contiguous parts of 0..<count, on up to `threads` threads.
    static func forEachPart(of count: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let parts = max(1, min(threads, count / 16384))
        ThreadPool.shared.run(parts: parts) { p in body((count * p / parts)..<(count * (p + 1) / parts)) }
    }


    /// `out[i - range.lowerBound]` = the Float sum over ranks, in rank order, of each rank's parts added in order:
    /// `(s00 + s01) + (s10 + s11) + ...`, the order of a Float all-reduce after each rank's own sum. `sources` holds
    /// every rank's parts in rank order, `ends[r]` the index after rank r's last.
    static func floatSum(_ sources: [UnsafePointer<Float>], ends: [Int], _ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let count = range.count
        guard count > 0 else { return }
        if sources.count == ends.count && (2...4).contains(sources.count) {  // one part a rank: one pass, added in rank order
            let a = sources[0] + range.lowerBound, b = sources[1] + range.lowerBound
            switch sources.count {
            case 2: for i in 0..<count { out[i] = a[i] + b[i] }
            case 3:
                let c = sources[2] + range.lowerBound
                for i in 0..<count { out[i] = a[i] + b[i] + c[i] }
            default:
                let c = sources[2] + range.lowerBound, d = sources[3] + range.lowerBound
                for i in 0..<count { out[i] = a[i] + b[i] + c[i] + d[i] }
            }
            return
        }
        let block = 4096
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { local in
            for chunk in stride(from: 0, to: count, by: block) {
                let length = min(block, count - chunk), first = range.lowerBound + chunk, output = out + chunk
                var start = 0
                for (rank, end) in ends.enumerated() {
                    let target = rank == 0 ? output : local.baseAddress!
                    target.update(from: sources[start] + first, count: length)
                    for source in sources[(start + 1)..<end] {
                        let values = source + first
                        for i in 0..<length { target[i] += values[i] }
                    }
                    if rank > 0 { for i in 0..<length { output[i] += local[i] } }
                    start = end
                }
            }
        }
    }

    /// `out[i - range.lowerBound] = Double(s0[i]) + Double(s1[i]) + ...`, not rounded (the host's share of a sum
    /// across hosts).
    static func doubleSum(_ sources: [UnsafePointer<Float>], _ range: Range<Int>, into out: UnsafeMutablePointer<Double>) {
        let count = range.count, first = sources[0] + range.lowerBound
        for i in 0..<count { out[i] = Double(first[i]) }
        for source in sources.dropFirst() {
            let values = source + range.lowerBound
            for i in 0..<count { out[i] += Double(values[i]) }
        }
    }

    /// `out[i - range.lowerBound] = Float(Double(s0[i]) + Double(s1[i]) + ...)`: one rounding. Up to four parts
    /// in one pass; more a block at a time through a Double buffer.
    static func doubleSum(_ sources: [UnsafePointer<Float>], _ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let count = range.count, a = sources[0] + range.lowerBound
        switch sources.count {
        case 1: for i in 0..<count { out[i] = a[i] }
        case 2:
            let b = sources[1] + range.lowerBound
            for i in 0..<count { out[i] = Float(Double(a[i]) + Double(b[i])) }
        case 3:
            let b = sources[1] + range.lowerBound, c = sources[2] + range.lowerBound
            for i in 0..<count { out[i] = Float(Double(a[i]) + Double(b[i]) + Double(c[i])) }
        case 4:
            let b = sources[1] + range.lowerBound, c = sources[2] + range.lowerBound, d = sources[3] + range.lowerBound
            for i in 0..<count { out[i] = Float(Double(a[i]) + Double(b[i]) + Double(c[i]) + Double(d[i])) }
        default:
            let block = 1024
            withUnsafeTemporaryAllocation(of: Double.self, capacity: block) { sum in
                let sum = sum.baseAddress!
                for start in stride(from: range.lowerBound, to: range.upperBound, by: block) {
                    let chunk = start..<min(start + block, range.upperBound), output = out + (start - range.lowerBound)
                    doubleSum(sources, chunk, into: sum)
                    for i in 0..<chunk.count { output[i] = Float(sum[i]) }
                }
            }
        }
    }
}
