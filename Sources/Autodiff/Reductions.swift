// Whole-buffer reductions used around the training step, written to vectorise (eight independent partial sums,
// where a single running sum would serialise every addition).

public enum BufferMath {
    /// Σ x² over the buffer (infinite or NaN if any element is), in Float with eight partial sums.
    public static func sumOfSquares(_ values: UnsafeBufferPointer<Float>) -> Float {
        var partial = SIMD8<Float>(repeating: 0)
        let count = values.count, whole = count / 8 * 8
        guard let base = values.baseAddress else { return 0 }
        var i = 0
        while i < whole {
            let chunk = SIMD8<Float>(base[i], base[i + 1], base[i + 2], base[i + 3], base[i + 4], base[i + 5],
                                     base[i + 6], base[i + 7])
            partial += chunk * chunk
            i += 8
        }
        var total = partial.sum()
        while i < count {
            total += base[i] * base[i]
            i += 1
        }
        return total
    }

    /// `target[i] += source[i]` for every i.
    public static func add(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { target[i] += source[i] }
    }

    /// `target[i] = Double(first[i]) + Double(others[0][i]) + ...`: a sum of a few Floats that is exact in Double
    /// (their exponents rarely span the 29 extra bits Double has), so it does not depend on the order of the terms.
    public static func exactSum(_ first: UnsafePointer<Float>, _ others: [UnsafePointer<Float>],
                                into target: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { target[i] = Double(first[i]) }
        for other in others {
            for i in 0..<count { target[i] += Double(other[i]) }
        }
    }

    /// `target[i] = Float(source[i])`: one rounding, to nearest.
    public static func round(_ source: UnsafePointer<Double>, into target: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { target[i] = Float(source[i]) }
    }
}
