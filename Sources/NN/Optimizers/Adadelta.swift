// Adadelta (M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012), with PyTorch's
// update, operation for operation in Float so that the trajectories agree to rounding. PyTorch's CPU kernels are
// compiled with multiply-add contraction, so `a + b * c` there is one fused multiply-add; `addingProduct` does the
// same here, and the tests hold the step to PyTorch's five-step trajectories at 0 ulp.
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

        /// - Throws: `SettingError` naming the first value out of range.
        public func validate() throws(SettingError) {
            guard learningRate > 0 && learningRate.isFinite else {
                throw SettingError(.learningRate, value: "\(learningRate)", problem: "the learning rate must be positive and finite")
            }
            guard rho >= 0 && rho <= 1 else {
                throw SettingError(.rho, value: "\(rho)", problem: "rho must be in [0, 1]")
            }
            guard epsilon > 0 && epsilon.isFinite else {
                throw SettingError(.epsilon, value: "\(epsilon)", problem: "epsilon must be positive")
            }
            guard weightDecay >= 0 && weightDecay.isFinite else {
                throw SettingError(.weightDecay, value: "\(weightDecay)", problem: "weight decay must not be negative")
            }
        }
    }

    public let configuration: Configuration
    public let parameterCount: Int
    /// E[g²] for every parameter, then E[Δ²] for every parameter.
    private let storage: TensorStorage

    /// - Parameter state: where the state lives, `2 * parameterCount` Floats the caller keeps (memory the host's
    ///   ranks share, each stepping a slice); nil allocates it, as zeros.
    /// - Throws: `SettingError` if the configuration is out of range.
    public init(parameterCount: Int, configuration: Configuration = Configuration(),
                state: UnsafeMutablePointer<Float>? = nil) throws(SettingError) {
        try configuration.validate()
        self.configuration = configuration
        self.parameterCount = parameterCount
        storage = state.map { TensorStorage(borrowing: $0, capacity: 2 * parameterCount) } ?? TensorStorage(zeros: 2 * parameterCount)
    }

    public var name: String { "adadelta" }
    public var hyperParameters: [(name: String, value: Double)] {
        [("lr", configuration.learningRate), ("rho", configuration.rho), ("eps", configuration.epsilon),
         ("weight_decay", configuration.weightDecay)]
    }
    public var stateCount: Int { 2 * parameterCount }

    public func step(values: UnsafeMutableBufferPointer<Float>, gradient: UnsafePointer<Float>, range: Range<Int>) {
        require(values.count == parameterCount && range.lowerBound >= 0 && range.upperBound <= parameterCount,
                "Adadelta.step: \(values.count) values for \(parameterCount) parameters, range \(range)")
        let rho = Float(configuration.rho), eps = Float(configuration.epsilon), decay = Float(configuration.weightDecay)
        // PyTorch computes 1 - rho in Double (0.09999999999999998 for 0.9) and hands the kernel its Float rounding.
        let oneMinusRho = Float(1 - configuration.rho)
        let minusRate = Float(-configuration.learningRate)
        withExtendedLifetime(storage) {
            // Every pointer starts at the range's first element.
            let squareAverage = storage.pointer + range.lowerBound
            let accumulatedDelta = storage.pointer + parameterCount + range.lowerBound
            let w = values.baseAddress! + range.lowerBound, count = range.count
            // Sixteen elements at a time (one AVX-512 register, two AVX ones). Every operation is correctly rounded
            // lane by lane, so the bits are those of one element at a time; the scalar loop this replaces compiled to
            // a square root and a division per element (5-6 % of a CNN step).
            typealias V = SIMD16<Float>
            @inline(__always) func update(_ w: inout V, _ g: V, _ average: inout V, _ accumulated: inout V) {
                let g = decay == 0 ? g : g.addingProduct(V(repeating: decay), w)
                average = (average * rho).addingProduct(oneMinusRho * g, g)
                let delta = (accumulated + eps).squareRoot() / (average + eps).squareRoot() * g
                accumulated = (accumulated * rho).addingProduct(oneMinusRho * delta, delta)
                w = w.addingProduct(V(repeating: minusRate), delta)
            }
            @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> V {
                UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            }
            @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
                UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: V.self)
            }
            var i = 0
            while i + 16 <= count {
                var value = load(w, i), average = load(squareAverage, i), accumulated = load(accumulatedDelta, i)
                update(&value, load(gradient, i), &average, &accumulated)
                store(value, w, i); store(average, squareAverage, i); store(accumulated, accumulatedDelta, i)
                i += 16
            }
            if i < count {  // the last few, in the lanes of one register (zeros in the others)
                var value = V(), g = V(), average = V(), accumulated = V()
                for lane in 0..<(count - i) {
                    (value[lane], g[lane]) = (w[i + lane], gradient[i + lane])
                    (average[lane], accumulated[lane]) = (squareAverage[i + lane], accumulatedDelta[i + lane])
                }
                update(&value, g, &average, &accumulated)
                for lane in 0..<(count - i) {
                    (w[i + lane], squareAverage[i + lane], accumulatedDelta[i + lane]) = (value[lane], average[lane], accumulated[lane])
                }
            }
        }
    }

    public func withState<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeMutableBufferPointer(start: storage.pointer, count: stateCount)) }
    }
}

