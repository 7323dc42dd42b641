// The finiteness check of the training step, written to vectorise (four independent partial sums of 16 lanes,
// where a single running sum would serialise every addition).

public enum BufferMath {
    /// Whether every element is finite (no NaN, no infinity), checked on up to `threads` threads. `x - x` is 0
    /// for a finite x and NaN otherwise, so partial sums of it stay 0 exactly when all are finite (a sum of
    /// squares would overflow for large finite values).
    public static func allFinite(_ values: UnsafeBufferPointer<Float>, threads: Int = 1) -> Bool {
        guard let base = values.baseAddress else { return true }
        let parts = Parallel.partCount(of: values.count, threads: threads)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: parts) { finite in  // on the stack
            Parallel.forEachPart(of: values.count, threads: threads) { part, range in
                finite.initializeElement(at: part, to: allFinite(base + range.lowerBound, count: range.count))
            }
            return !finite.contains(false)
        }
    }

    /// Whether `values[0..<count]` are all finite, on the calling thread.
    @inline(__always)
    public static func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
        // Four independent sums of 16 lanes: one vector addition's latency no longer paces the loop.
        var p0 = SIMD16<Float>(repeating: 0), p1 = p0, p2 = p0, p3 = p0
        var i = 0
        while i + 64 <= count {
            let a = load16(values + i), b = load16(values + i + 16), c = load16(values + i + 32), d = load16(values + i + 48)
            p0 += a - a; p1 += b - b; p2 += c - c; p3 += d - d
            i += 64
        }
        var rest: Float = 0
        while i < count { rest += values[i] - values[i]; i += 1 }
        return ((p0 + p1) + (p2 + p3)).sum() + rest == 0
    }
}
