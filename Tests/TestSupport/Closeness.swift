// Comparing computed values with reference values under an explicit tolerance, with a report that says where the
// worst disagreement is (for test messages and for the error figures quoted in notes).

/// The result of comparing arrays elementwise with |actual - expected| <= atol + rtol * |expected|.
public struct Closeness: CustomStringConvertible {
    public let count: Int
    /// Largest |actual - expected|.
    public let maxAbsoluteError: Double
    /// Index of the element that came closest to (or went furthest past) its tolerance.
    public let worstIndex: Int
    public let worstActual: Double
    public let worstExpected: Double
    /// False if any element is outside its tolerance, or the counts differ.
    public let passed: Bool
    public let rtol: Double
    public let atol: Double

    public var description: String {
        guard count >= 0 else { return "length mismatch" }
        return String(format: "max |error| %.3g over %d values (worst at %d: %.9g vs %.9g; tolerance %.1g + %.1g|x|)%@",
                      maxAbsoluteError, count, worstIndex, worstActual, worstExpected, atol, rtol,
                      passed ? "" : " FAILED")
    }
}

/// Compares `actual` with `expected` elementwise: each must satisfy |a - e| <= atol + rtol * |e|.
public func closeness(_ actual: [Double], _ expected: [Double], rtol: Double, atol: Double) -> Closeness {
    guard actual.count == expected.count else {
        return Closeness(count: -1, maxAbsoluteError: .infinity, worstIndex: 0, worstActual: Double(actual.count),
                         worstExpected: Double(expected.count), passed: false, rtol: rtol, atol: atol)
    }
    var maxError = 0.0, worst = 0, worstRatio = -1.0, passed = true
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let error = abs(a - e)
        let allowed = atol + rtol * abs(e)
        if !(error <= allowed) { passed = false }  // also catches NaN
        maxError = max(maxError, error.isNaN ? .infinity : error)
        let ratio = error.isNaN ? .infinity : error / allowed
        if ratio > worstRatio { worstRatio = ratio; worst = i }
    }
    return Closeness(count: actual.count, maxAbsoluteError: maxError, worstIndex: worst,
                     worstActual: actual.isEmpty ? 0 : actual[worst], worstExpected: expected.isEmpty ? 0 : expected[worst],
                     passed: passed, rtol: rtol, atol: atol)
}

public func closeness(_ actual: [Float], _ expected: [Double], rtol: Double, atol: Double) -> Closeness {
    closeness(actual.map(Double.init), expected, rtol: rtol, atol: atol)
}

public func closeness(_ actual: [Float], _ expected: [Float], rtol: Double, atol: Double) -> Closeness {
    closeness(actual.map(Double.init), expected.map(Double.init), rtol: rtol, atol: atol)
}

/// A small deterministic generator for test data (not numpy's; just reproducible).
public struct TestRandom {
    private var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float = -1, _ high: Float = 1) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }
    public mutating func array(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}
