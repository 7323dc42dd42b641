// Elementwise loops over the flat buffers (the optimizer step, the finiteness check) split into contiguous parts
// that run on several threads. Each element's result is the same whatever the split, so a split never changes
// what is computed, only how fast.
import Dispatch

public enum Parallel {
    /// Below this many elements a loop stays on the calling thread: waking another one costs more.
    public static let minimumPerThread = 1 << 15

    /// `count` elements cut into at most `threads` contiguous ranges of whole 64-element blocks (cache lines of
    /// Float stay on one thread), none smaller than `minimumPerThread` unless there is only one.
    public static func parts(of count: Int, threads: Int) -> [Range<Int>] {
        let usable = max(1, min(threads, count / minimumPerThread))
        guard usable > 1 else { return [0..<count] }
        let blocks = (count + 63) / 64
        return (0..<usable).map { part in
            min(count, blocks * part / usable * 64)..<min(count, blocks * (part + 1) / usable * 64)
        }
    }

    /// Runs `body(index, range)` for every range, in parallel when there are several.
    public static func forEach(_ ranges: [Range<Int>], _ body: (Int, Range<Int>) -> Void) {
        if ranges.count == 1 { body(0, ranges[0]); return }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { box.value($0, ranges[$0]) }
        }
    }
}

/// Hands a value to `concurrentPerform`'s threads; the caller guarantees they touch disjoint memory.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
