// Equality of whole buffers, reported as a count, not a diff. A failing `#expect(a == b)` on two collections asks
// Swift Testing for their difference (Myers' algorithm, quadratic in the number of differences): on a model's million
// parameters one failed comparison runs for longer than the suite may. These helpers walk both buffers once and
// report how many elements differ, the first few indices and the largest difference. Floating-point values are
// compared by bit pattern (so -0 and +0 differ and a NaN equals the same NaN): "the same bits" means exactly that.
import Foundation
import Testing

/// How two buffers differ.
public struct Differences: CustomStringConvertible, Sendable {
    public let count: Int
    public let expectedCount: Int
    /// Elements (within the shorter length) whose values differ.
    public let differing: Int
    /// The first differing indices, at most `shown`.
    public let first: [Int]
    /// The largest |actual - expected| among numeric elements, where it is, and the two values.
    public let largest: (index: Int, actual: Double, expected: Double)?
    public static let shown = 5

    /// True when the lengths are equal and no element differs.
    public var none: Bool { count == expectedCount && differing == 0 }

    public var description: String {
        if none { return "identical (\(count) elements)" }
        var parts: [String] = []
        if count != expectedCount { parts.append("lengths differ: \(count) against \(expectedCount) expected") }
        if differing > 0 {
            parts.append("\(differing) of \(min(count, expectedCount)) elements differ, first at "
                         + first.map(String.init).joined(separator: ", ") + (differing > first.count ? ", …" : ""))
        }
        if let largest, differing > 0 {
            parts.append(String(format: "largest |difference| %.3g at %d (%.9g, expected %.9g)",
                                abs(largest.actual - largest.expected), largest.index, largest.actual, largest.expected))
        }
        return parts.joined(separator: "; ")
    }

    init<A: Collection, B: Collection>(_ actual: A, _ expected: B, same: (A.Element, B.Element) -> Bool,
                                       magnitude: ((A.Element, B.Element) -> (Double, Double))?) {
        count = actual.count
        expectedCount = expected.count
        var differing = 0, first: [Int] = [], largest: (index: Int, actual: Double, expected: Double)?
        var largestGap = -1.0
        for (index, (a, e)) in zip(actual, expected).enumerated() where !same(a, e) {
            differing += 1
            if first.count < Self.shown { first.append(index) }
            if let magnitude {
                let (x, y) = magnitude(a, e)
                let gap = (x - y).isNaN ? Double.infinity : abs(x - y)
                if gap > largestGap { largestGap = gap; largest = (index, x, y) }
            }
        }
        self.differing = differing
        self.first = first
        self.largest = largest
    }
}

/// How `actual` differs from `expected`, Float by bit pattern.
public func differences<A: Collection<Float>, B: Collection<Float>>(_ actual: A, _ expected: B) -> Differences {
    Differences(actual, expected, same: { $0.bitPattern == $1.bitPattern }, magnitude: { (Double($0), Double($1)) })
}

/// How `actual` differs from `expected`, Double by bit pattern.
public func differences<A: Collection<Double>, B: Collection<Double>>(_ actual: A, _ expected: B) -> Differences {
    Differences(actual, expected, same: { $0.bitPattern == $1.bitPattern }, magnitude: { ($0, $1) })
}

/// How `actual` differs from `expected`, integers (bytes, indices, labels) by value.
public func differences<A: Collection, B: Collection>(_ actual: A, _ expected: B) -> Differences
where A.Element: BinaryInteger, B.Element == A.Element {
    Differences(actual, expected, same: ==, magnitude: { (Double($0), Double($1)) })
}

/// Records an issue, naming `what` and saying how they differ, unless `actual` and `expected` are the same bits
/// element for element. Returns whether they are.
@discardableResult
public func expectIdentical<A: Collection<Float>, B: Collection<Float>>(
    _ actual: A, _ expected: B, _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    record(differences(actual, expected), what(), sourceLocation)
}

@discardableResult
public func expectIdentical<A: Collection<Double>, B: Collection<Double>>(
    _ actual: A, _ expected: B, _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    record(differences(actual, expected), what(), sourceLocation)
}

@discardableResult
public func expectIdentical<A: Collection, B: Collection>(
    _ actual: A, _ expected: B, _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool where A.Element: BinaryInteger, B.Element == A.Element {
    record(differences(actual, expected), what(), sourceLocation)
}

/// Each pair of buffers, as `expectIdentical`, the comment naming the pair's index.
@discardableResult
public func expectIdentical(_ actual: [[Float]], _ expected: [[Float]], _ what: @autoclosure () -> String = "",
                            sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard actual.count == expected.count else {
        Issue.record(Comment(rawValue: "\(what()): \(actual.count) buffers against \(expected.count) expected"),
                     sourceLocation: sourceLocation)
        return false
    }
    var all = true
    for index in actual.indices {
        all = record(differences(actual[index], expected[index]), "\(what()) [\(index)]", sourceLocation) && all
    }
    return all
}

private func record(_ differences: Differences, _ what: String, _ sourceLocation: SourceLocation) -> Bool {
    guard !differences.none else { return true }
    Issue.record(Comment(rawValue: (what.isEmpty ? "" : what + ": ") + differences.description), sourceLocation: sourceLocation)
    return false
}
