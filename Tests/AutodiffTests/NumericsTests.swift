// Numerical edge cases of the ops.
import Autodiff
import Foundation
import Testing
import TestSupport

@Suite("Numerics", .limit(minutes: 5))
struct NumericsTests {
    @Test("fast tanh is within 6 units in the last place of the exact value on [-10, 10]")
    func tanhAccuracy() {
        let xs = stride(from: -10.0, through: 10.0, by: 1e-4).map { Float($0) } + [0, -0, 1e-30, -1e-8, .infinity, -.infinity]
        let y = tanh(Tensor(shape: [xs.count], scalars: xs)).scalars
        var worst: Float = 0
        for (x, value) in zip(xs, y) {
            let exact = Float(Foundation.tanh(Double(x)))
            worst = max(worst, abs(value - exact) / exact.ulp.magnitude)
        }
        print("fast tanh: max error \(worst) ulp")
        #expect(worst <= 6)
        #expect(y[xs.count - 2] == 1 && y[xs.count - 1] == -1)
    }

    @Test("logSoftmax and logSumExp stay finite and exact for logits of ±1000")
    func largeLogits() {
        let x = Tensor(shape: [2, 3], scalars: [1000, 0, -1000, -1000, -999, -1000])
        let y = logSoftmax(x, axis: 1).scalars
        #expect(y[0] == 0 && y[1] == -1000 && y[2] == -2000)
        #expect(abs(y[4] - -Float(Foundation.log(1 + 2 * Foundation.exp(-1.0)))) < 1e-6)
        let lse = logSumExp(x, axis: 1).scalars
        #expect(lse[0] == 1000)
        #expect(abs(lse[1] - (-999 + Float(Foundation.log(1 + 2 * Foundation.exp(-1.0))))) < 1e-4)
        let (_, gradients) = valueWithGradient(at: [([1000, 0, -1000], [1, 3])]) { sum(logSoftmax($0[0], axis: 1) * Tensor(shape: [1, 3], scalars: [1, 2, 3])) }
        #expect(gradients[0].allSatisfy { $0.isFinite })
        #expect(abs(gradients[0][0] - (1 - 6)) < 1e-5)
    }
}
