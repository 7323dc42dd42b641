// Elementwise loops split into contiguous parts that run on several threads (`ThreadPool`): over the flat buffers
// (the optimizer step, the finiteness check), and between a layer's products (tanh, a bias and its gradient).
// Each element's result is the same whatever the split, so a split never changes what is computed, only how fast.
// Nothing here allocates: the loops run inside the training step.
import Dispatch
import Support

public enum Parallel {
    /// Below this many elements a loop stays on the calling thread: waking another one costs more.
    public static let minimumPerThread = 1 << 15

    /// How many parts `forEachPart` cuts `count` elements into for `threads` threads: at most `threads`, none
    /// smaller than `minimumPerThread` unless there is only one.
    public static func partCount(of count: Int, threads: Int) -> Int {
        max(1, min(threads, count / minimumPerThread))
    }

    /// Part `index` of `parts`: contiguous ranges of whole 64-element blocks (a cache line of Float stays on one
    /// thread) that together cover 0..<count in order.
    public static func part(_ index: Int, of count: Int, parts: Int) -> Range<Int> {
        guard parts > 1 else { return 0..<count }
        let blocks = (count + 63) / 64
        return min(count, blocks * index / parts * 64)..<min(count, blocks * (index + 1) / parts * 64)
    }

    /// Runs `body(part)` for part in 0..<parts, in parallel when there are several, on the pool's threads, sized
    /// for `threads` (default: one per part; see `ThreadPool.run`).
    public static func forEach(parts: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        ThreadPool.shared.run(parts: parts, threads: threads, body)
    }

    /// Runs `body(index, range)` for every part of 0..<count, in parallel when there are several.
    public static func forEachPart(of count: Int, threads: Int, _ body: (Int, Range<Int>) -> Void) {
        let parts = partCount(of: count, threads: threads)
        forEach(parts: parts) { body($0, part($0, of: count, parts: parts)) }
    }

    /// Threads for the elementwise ops between a layer's products, which would otherwise leave the product's
    /// other threads waiting: those the tape's products are split over (its plan's parts); none beside the
    /// caller's when OpenBLAS threads its calls itself, whose threads spin between calls.
    static func elementwiseThreads(_ tape: Tape?) -> Int { tape?.plan.parts ?? 1 }

    /// Runs `body(range)` for parts of 0..<count on the threads of `tape`'s products.
    static func forEachRange(of count: Int, on tape: Tape?, _ body: (Range<Int>) -> Void) {
        forEachPart(of: count, threads: elementwiseThreads(tape)) { _, range in body(range) }
    }
}
