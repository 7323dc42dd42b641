// Adadelta (M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012), with PyTorch's
// update, operation for operation in Float so that the trajectories agree to rounding. PyTorch's CPU kernels are
// compiled with multiply-add contraction, so `a + b * c` there is one fused multiply-add; `addingProduct` does the
// same here. Measured against PyTorch's five-step trajectories: 0 ulp at lr 0.1 and at most 1 ulp at lr 1.0 (where
// one intermediate delta of PyTorch's kernel rounds differently), against 3 ulp with separate multiply and add.
//
//   g   <- g + weight_decay * w                       (if weight_decay != 0)
//   E[g²]  <- rho * E[g²] + (1 - rho) * g²
//   delta  <- sqrt(E[Δ²] + eps) / sqrt(E[g²] + eps) * g
//   E[Δ²]  <- rho * E[Δ²] + (1 - rho) * delta²
//   w   <- w - lr * delta
#if canImport(Glibc)
import Glibc
#endif
import Autodiff
import Support

/// Adadelta with PyTorch's defaults and update.
public final class Adadelta: Optimizer {
    /// Hyper-parameters with their defaults (PyTorch's, except the learning rate: the chapter's 0.1).
    public struct Configuration: Equatable, Sendable {
        // Doubles, like the Python floats PyTorch takes; the kernel rounds them to Float as PyTorch's does.
        public var learningRate: Double
        public var rho: Double
        public var epsilon: Double
        public var weightDecay: Double

        public init(learningRate: Double = 0.1, rho: Double = 0.9, epsilon: Double = 1e-6, weightDecay: Double = 0) {
            self.learningRate = learningRate
            self.rho = rho
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }

        /// - Throws: `HyperParameterError` naming the first value out of range.
        public func validate() throws(HyperParameterError) {
            guard learningRate > 0 && learningRate.isFinite else {
                throw HyperParameterError(.learningRate, value: "\(learningRate)", requirement: "the learning rate must be positive and finite")
            }
            guard rho >= 0 && rho <= 1 else {
                throw HyperParameterError(.rho, value: "\(rho)", requirement: "rho must be in [0, 1]")
            }
            guard epsilon > 0 && epsilon.isFinite else {
                throw HyperParameterError(.epsilon, value: "\(epsilon)", requirement: "epsilon must be positive")
            }
            guard weightDecay >= 0 && weightDecay.isFinite else {
                throw HyperParameterError(.weightDecay, value: "\(weightDecay)", requirement: "weight decay must not be negative")
            }
        }
    }

    public let configuration: Configuration
    public let parameterCount: Int
    /// E[g²] for every parameter, then E[Δ²] for every parameter.
    private let storage: TensorStorage

    /// - Throws: `HyperParameterError` if the configuration is out of range.
    public init(parameterCount: Int, configuration: Configuration = Configuration()) throws(HyperParameterError) {
        try configuration.validate()
        self.configuration = configuration
        self.parameterCount = parameterCount
        storage = TensorStorage(zeros: 2 * parameterCount)
    }

    public var name: String { "adadelta" }
    public var hyperParameters: [(name: String, value: Double)] {
        [("lr", configuration.learningRate), ("rho", configuration.rho), ("eps", configuration.epsilon),
         ("weight_decay", configuration.weightDecay)]
    }
    public var stateCount: Int { 2 * parameterCount }

    public func step(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, range: Range<Int>) {
        require(values.count == parameterCount && gradients.count == parameterCount && range.upperBound <= parameterCount,
                "Adadelta.step: \(values.count) values and \(gradients.count) gradients for \(parameterCount) parameters, range \(range)")
        let rho = Float(configuration.rho), eps = Float(configuration.epsilon), decay = Float(configuration.weightDecay)
        // PyTorch computes 1 - rho in Double (0.09999999999999998 for 0.9) and hands the kernel its Float rounding.
        let oneMinusRho = Float(1 - configuration.rho)
        let minusRate = Float(-configuration.learningRate)
        withExtendedLifetime(storage) {
            let squareAverage = storage.pointer, accumulatedDelta = storage.pointer + parameterCount
            for i in range {
                let g = decay == 0 ? gradients[i] : gradients[i].addingProduct(decay, values[i])
                let average = (squareAverage[i] * rho).addingProduct(oneMinusRho * g, g)
                squareAverage[i] = average
                let delta = (accumulatedDelta[i] + eps).squareRoot() / (average + eps).squareRoot() * g
                accumulatedDelta[i] = (accumulatedDelta[i] * rho).addingProduct(oneMinusRho * delta, delta)
                values[i] = values[i].addingProduct(minusRate, delta)
            }
        }
    }

    public func withState<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeMutableBufferPointer(start: storage.pointer, count: stateCount)) }
    }
}
