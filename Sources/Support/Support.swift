// The small helpers every module uses, each in one place: programmer-error checks, a Sendable wrapper for
// buffers split between threads, a stable hash, and the median.
//
// Swift's `precondition` traps silently in optimised (-O) builds, which are the builds users run; a shape
// mismatch must still say which op and which shapes. `require` calls `fatalError`, which always prints.

import Dispatch

/// Stops the program with `message` if `condition` is false (a programmer error, such as a shape mismatch).
@inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// A value handed to worker threads that each touch a disjoint part of it (a buffer split by worker); the caller
/// guarantees that no two threads write the same memory.
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

/// FNV-1a, 64-bit: a hash that is the same in every process and on every run (Swift's `Hasher` is seeded per
/// process), for comparing settings and parameters across ranks.
public struct StableHash {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}

    public mutating func add(_ word: UInt64) {
        value = (value ^ word) &* 0x100_0000_01b3
    }

    /// The hash of a text's UTF-8 bytes.
    public static func of(_ text: String) -> UInt64 {
        var hash = StableHash()
        for byte in text.utf8 { hash.add(UInt64(byte)) }
        return hash.value
    }

    /// A 64-bit value as 16 hex digits, leading zeros kept: how checksums and bit patterns are printed.
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The hash of Floats' bit patterns, one word each.
    public static func of(_ values: UnsafeBufferPointer<Float>) -> UInt64 {
        var hash = StableHash()
        for value in values { hash.add(UInt64(value.bitPattern)) }
        return hash.value
    }
}

/// Seconds from `start` to `end` (now, by default), for the phase timings.
public func seconds(_ start: DispatchTime, _ end: DispatchTime = .now()) -> Double {
    Double(end.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// The median of `values` (the upper one of the middle two for an even count; NaN for none).
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    return values.sorted()[values.count / 2]
}

/// The epochs a per-epoch figure is taken over: those after the first (whose time includes warming up), or the
/// only one.
public func afterWarmUp<C: Collection>(_ epochs: C) -> C.SubSequence {
    epochs.count > 1 ? epochs.dropFirst() : epochs[...]
}

/// The index of the largest value in row `row` (the first one on ties, as numpy's and PyTorch's argmax).
public func argmax(_ values: UnsafeBufferPointer<Float>, row: Int, classes: Int) -> Int {
    var best = 0
    for c in 1..<classes where values[row * classes + c] > values[row * classes + best] { best = c }
    return best
}
