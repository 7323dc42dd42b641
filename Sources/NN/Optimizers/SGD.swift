// Plain stochastic gradient descent, as the chapter's MLP uses: w <- w - lr * dw.
import Autodiff
import Support

/// Stochastic gradient descent without momentum.
public final class SGD: Optimizer {
    /// The default learning rate: the chapter's step size for the MLP.
    public static let defaultLearningRate = 0.001

    public let learningRate: Double

    /// - Throws: `SettingError` unless the learning rate is positive and finite.
    public init(learningRate: Double = SGD.defaultLearningRate) throws(SettingError) {
        guard learningRate > 0 && learningRate.isFinite else {
            throw SettingError(.learningRate, value: "\(learningRate)", problem: "the learning rate must be positive and finite")
        }
        self.learningRate = learningRate
    }

    public var name: String { "sgd" }
    public var hyperParameters: [(name: String, value: Double)] { [("lr", learningRate)] }
    public var stateCount: Int { 0 }

    public func step(values: UnsafeMutableBufferPointer<Float>, gradient: UnsafePointer<Float>, range: Range<Int>) {
        require(range.lowerBound >= 0 && range.upperBound <= values.count, "SGD.step: \(values.count) values, range \(range)")
        let rate = Float(learningRate)
        let w = values.baseAddress! + range.lowerBound
        for i in 0..<range.count { w[i] -= rate * gradient[i] }
    }

    public func withState<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: nil, count: 0))
    }
}
