// The finiteness check of the training step, written to vectorise (eight independent partial sums,
// where a single running sum would serialise every addition).

public enum BufferMath {
    /// Whether every element is finite (no NaN, no infinity), checked on up to `threads` threads. `x - x` is 0
    /// for a finite x and NaN otherwise, so eight partial sums of it stay 0 exactly when all are finite (a sum of
    /// squares would overflow for large finite values).
    public static func allFinite(_ values: UnsafeBufferPointer<Float>, threads: Int = 1) -> Bool {
        guard let base = values.baseAddress else { return true }
        let parts = Parallel.partCount(of: values.count, threads: threads)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: parts) { finite in  // on the stack
            Parallel.forEachPart(of: values.count, threads: threads) { part, range in
                var partial = SIMD8<Float>(repeating: 0)
                var i = range.lowerBound
                let whole = range.lowerBound + (range.count / 8) * 8
                while i < whole {
                    let chunk = load8(base + i)
                    partial += chunk - chunk
                    i += 8
                }
                var rest: Float = 0
                while i < range.upperBound { rest += base[i] - base[i]; i += 1 }
                finite.initializeElement(at: part, to: (partial.sum() + rest) == 0)
            }
            return !finite.contains(false)
        }
    }
}
