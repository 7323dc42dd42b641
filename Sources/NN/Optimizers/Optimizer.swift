// What every optimizer offers: one flat update over the flat parameter and gradient buffers, flat state that can
// be broadcast and checkpointed, and hyper-parameters validated in one place.
import Autodiff
import Foundation
import Support

/// The hyper-parameters the optimizers take (named here, not by any command line's spelling).
public enum HyperParameter: String, Sendable {
    case learningRate = "learning rate"
    case rho
    case epsilon
    case weightDecay = "weight decay"
}

/// A hyper-parameter out of range: which one, the value, and what is allowed.
public struct HyperParameterError: Error, CustomStringConvertible, Equatable {
    public let parameter: HyperParameter
    public let value: String
    public let requirement: String

    public init(_ parameter: HyperParameter, value: String, requirement: String) {
        self.parameter = parameter
        self.value = value
        self.requirement = requirement
    }

    public var description: String { "\(parameter.rawValue) \(value) is not valid: \(requirement)" }
}

/// Updates parameters from gradients with one flat loop.
public protocol Optimizer: AnyObject {
    /// The name on the command line and in checkpoints ("sgd", "adadelta").
    var name: String { get }
    /// Hyper-parameters as (name, value), for the configuration check, checkpoints and printing.
    var hyperParameters: [(name: String, value: Double)] { get }
    /// Number of Floats of state (0 for SGD, 2 x parameters for Adadelta).
    var stateCount: Int { get }
    /// One step on the elements in `range` only: `values[i]` -= update(`gradients[i]`) for i in `range`. The
    /// update is elementwise, so disjoint ranges may run at the same time on different threads (`step(threads:)`).
    func step(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, range: Range<Int>)
    /// Calls `body` with the flat state, writable (broadcast, checkpoint restore).
    func withState<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R
}

extension Optimizer {
    /// One step over every parameter, split into `threads` contiguous parts that run in parallel. Each element's
    /// update is the same whatever the split, so the result does not depend on `threads`.
    public func step(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, threads: Int = 1) {
        require(values.count == gradients.count, "\(name).step: \(values.count) values but \(gradients.count) gradients")
        Parallel.forEachPart(of: values.count, threads: threads) { _, range in step(values: values, gradients: gradients, range: range) }
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

/// A number as short as it can be written exactly enough for a reader ("0.1", "1e-06", "128").
public func formatNumber(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    let short = String(format: "%g", value)
    return Double(short) == value ? short : "\(value)"
}


