// What every optimizer offers: one flat update over the flat parameter and gradient buffers, flat state that can
// be broadcast and checkpointed, and hyper-parameters validated in one place.
import Autodiff
import Foundation
import Support

/// The hyper-parameters the optimizers take, under the names checkpoints record them by.
public enum HyperParameter: String, Sendable {
    case learningRate = "learning_rate"
    case rho
    case epsilon
    case weightDecay = "weight_decay"
}

extension SettingError {
    /// A hyper-parameter out of range.
    public init(_ parameter: HyperParameter, value: String, problem: String) {
        self.init(setting: parameter.rawValue, value: value, problem: problem)
    }
}

/// Elements per block of `stepIfFinite`: 16 KB of gradient, which stays in the first-level cache from its check to
/// its update.
let finiteCheckBlock = 4096

/// Updates parameters from gradients with one flat loop.
public protocol Optimizer: AnyObject {
    /// The name on the command line and in checkpoints ("sgd", "adadelta").
    var name: String { get }
    /// Hyper-parameters as (name, value), for the configuration check, checkpoints and printing.
    var hyperParameters: [(name: String, value: Double)] { get }
    /// Number of Floats of state (0 for SGD, 2 x parameters for Adadelta).
    var stateCount: Int { get }
    /// One step on the elements in `range` only, whose gradients are `gradient[0..<range.count]`:
    /// `values[i]` -= update(`gradient[i - range.lowerBound]`) for i in `range`. The update is elementwise, so
    /// disjoint ranges may run at the same time on different threads (`step(threads:)`), and a block of the gradient
    /// may come from scratch (`stepIfFinite(values:threads:rounding:)`).
    func step(values: UnsafeMutableBufferPointer<Float>, gradient: UnsafePointer<Float>, range: Range<Int>)
    /// Calls `body` with the flat state, writable (broadcast, checkpoint restore).
    func withState<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R
}

extension Optimizer {
    /// One step on the elements in `range` only: `values[i]` -= update(`gradients[i]`) for i in `range`.
    public func step(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, range: Range<Int>) {
        require(values.count == gradients.count && range.lowerBound >= 0 && range.upperBound <= values.count,
                "\(name).step: \(values.count) values, \(gradients.count) gradients, range \(range)")
        guard !range.isEmpty else { return }
        step(values: values, gradient: gradients.baseAddress! + range.lowerBound, range: range)
    }

    /// One step over every parameter, split into `threads` contiguous parts that run in parallel. Each element's
    /// update is the same whatever the split, so the result does not depend on `threads`.
    public func step(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, threads: Int = 1) {
        require(values.count == gradients.count, "\(name).step: \(values.count) values but \(gradients.count) gradients")
        Parallel.forEachPart(of: values.count, threads: threads) { _, range in step(values: values, gradients: gradients, range: range) }
    }

    /// One step over every parameter, as `step(values:gradients:threads:)`, that also checks the gradient is finite:
    /// in blocks of `finiteCheckBlock` elements, each checked and then applied while it is still in the first-level
    /// cache, so the gradient is read once per step instead of twice.
    ///
    /// - Returns: false when some gradient is NaN or infinite. Each thread then stops at the first block that holds
    ///   one, so the parameters and the optimizer's state are left partly stepped: the caller must end the run
    ///   without using or saving them (the trainer ends with "diverged", and the checkpoints on disk stay as they
    ///   were). True, with the same bits as `step(values:gradients:threads:)`, otherwise.
    public func stepIfFinite(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>,
                             threads: Int = 1) -> Bool {
        require(values.count == gradients.count, "\(name).step: \(values.count) values but \(gradients.count) gradients")
        guard let base = gradients.baseAddress else { return true }
        return stepIfFinite(values: values, range: 0..<values.count, threads: threads) { block, _ in UnsafePointer(base + block.lowerBound) }
    }

    /// `stepIfFinite(values:gradients:threads:)` for a gradient that is not yet Float, on the elements `range` only
    /// (every one by default): `rounding(block, scratch)` writes the gradient of the elements `block` to
    /// `scratch[0..<block.count]` (a reduced sum rounded from Double or fixed point, or summed from the parts of the
    /// host's ranks, see `ReducedGradient`), one `finiteCheckBlock` at a time. Rounding, the check and the update
    /// then walk the sum once, and the Float gradient never goes to memory. `rounding` is called on several threads
    /// at once, for disjoint blocks. The same bits as rounding the whole gradient first and stepping on it.
    public func stepIfFinite(values: UnsafeMutableBufferPointer<Float>, range: Range<Int>? = nil, threads: Int = 1,
                             rounding: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) -> Bool {
        stepIfFinite(values: values, range: range ?? 0..<values.count, threads: threads) { block, scratch in
            rounding(block, scratch)
            return UnsafePointer(scratch)
        }
    }

    /// The loop both `stepIfFinite` share, over `range` split among `threads` threads: `gradient(block, scratch)`
    /// says where the block's gradient is (it may fill `scratch`, room for `finiteCheckBlock` Floats on the calling
    /// thread's stack).
    private func stepIfFinite(values: UnsafeMutableBufferPointer<Float>, range whole: Range<Int>, threads: Int,
                              gradient: (Range<Int>, UnsafeMutablePointer<Float>) -> UnsafePointer<Float>) -> Bool {
        require(whole.lowerBound >= 0 && whole.upperBound <= values.count, "\(name).step: range \(whole) of \(values.count) values")
        let parts = Parallel.partCount(of: whole.count, threads: threads)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: parts) { finite in  // on the stack
            Parallel.forEachPart(of: whole.count, threads: threads) { part, range in
                let allFinite = withUnsafeTemporaryAllocation(of: Float.self, capacity: finiteCheckBlock) { scratch in
                    for start in stride(from: whole.lowerBound + range.lowerBound, to: whole.lowerBound + range.upperBound, by: finiteCheckBlock) {
                        let block = start..<min(start + finiteCheckBlock, whole.lowerBound + range.upperBound)
                        let g = gradient(block, scratch.baseAddress!)
                        guard BufferMath.allFinite(g, count: block.count) else { return false }
                        step(values: values, gradient: g, range: block)
                    }
                    return true
                }
                finite.initializeElement(at: part, to: allFinite)
            }
            return !finite.contains(false)
        }
    }

    /// A copy of the flat state.
    public var state: [Float] {
        get { withState { Array($0) } }
        set {
            require(newValue.count == stateCount, "\(name): state of \(newValue.count) values, expected \(stateCount)")
            withState { buffer in _ = buffer.update(from: newValue) }
        }
    }

    /// "adadelta lr=0.1 rho=0.9 eps=1e-06 weight_decay=0".
    public var summary: String {
        ([name] + hyperParameters.map { "\($0.name)=\(formatNumber($0.value))" }).joined(separator: " ")
    }
}



