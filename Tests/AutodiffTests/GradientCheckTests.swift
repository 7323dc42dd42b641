// Every op's tape gradient against central finite differences, on small random shapes.
//
// The loss is L = Σ output · r for a fixed random r, accumulated in Double. The ops compute in Float, so L carries a
// rounding error of about 1e-7 · sqrt(n) · |output|; divided by 2h (h = 5e-3) that is ~1e-5, and the central
// difference's truncation error is h²/6 · |L'''| ~ 1e-5 for these smooth ops (zero for the linear ones). A tolerance
// of 2e-3 (absolute, plus 2e-3 relative) is two orders above both and two below what a wrong gradient gives.
// Non-smooth ops (relu, max-pool) get inputs kept further than h from their kinks and ties.
import Autodiff
import Testing
import TestSupport

private let h: Float = 5e-3
private let tolerance = (rtol: 2e-3, atol: 2e-3)

/// Compares the tape gradient of Σ f(inputs) · r with central differences, for every element of every input.
private func gradientCheck(_ name: String, _ inputs: [(scalars: [Float], shape: [Int])], seed: UInt64 = 1,
                           _ f: ([Tensor]) -> Tensor) {
    var random = TestRandom(seed: seed)
    let probe = f(inputs.map { Tensor(shape: $0.shape, scalars: $0.scalars) })
    let r = random.array(probe.count)
    func loss(_ values: [[Float]]) -> Double {
        let out = f(zip(values, inputs).map { Tensor(shape: $1.shape, scalars: $0) })
        return zip(out.scalars, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let (_, gradients) = valueWithGradient(at: inputs) { variables in
        let out = f(variables)
        return sum(out * Tensor(shape: out.shape, scalars: r))
    }
    for (index, input) in inputs.enumerated() {
        var numeric = [Double](repeating: 0, count: input.scalars.count)
        var values = inputs.map(\.scalars)
        for i in 0..<input.scalars.count {
            let original = values[index][i]
            values[index][i] = original + h
            let plus = loss(values)
            values[index][i] = original - h
            let minus = loss(values)
            values[index][i] = original
            numeric[i] = (plus - minus) / Double(2 * h)
        }
        let result = closeness(gradients[index], numeric, rtol: tolerance.rtol, atol: tolerance.atol)
        #expect(result.passed, "\(name), input \(index): \(result)")
    }
}

private func random(_ shape: [Int], seed: UInt64, _ low: Float = -1, _ high: Float = 1) -> (scalars: [Float], shape: [Int]) {
    var generator = TestRandom(seed: seed)
    return (generator.array(shape.reduce(1, *), low, high), shape)
}

/// Distinct values at least `gap` apart, shuffled: no ties and no near-ties for max-pooling.
private func distinct(_ shape: [Int], seed: UInt64, gap: Float = 0.02) -> (scalars: [Float], shape: [Int]) {
    let count = shape.reduce(1, *)
    var values = (0..<count).map { Float($0) * gap - Float(count) * gap / 2 }
    var generator = TestRandom(seed: seed)
    for i in stride(from: count - 1, to: 0, by: -1) { values.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
    return (values, shape)
}

@Suite("Finite-difference gradient checks", .limit(minutes: 5))
struct GradientCheckTests {
    @Test("matmul, with each combination of transpose flags, and a tensor used twice")
    func matmulGradients() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = random(ta ? [4, 3] : [3, 4], seed: 1), b = random(tb ? [5, 4] : [4, 5], seed: 2)
            gradientCheck("matmul ta=\(ta) tb=\(tb)", [a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        }
        gradientCheck("matmul(a, a) + matmul(aᵀ, a)", [random([3, 3], seed: 3)]) {
            matmul($0[0], $0[0]) + matmul($0[0], $0[0], transposeA: true)
        }
    }

    @Test("affine: a product plus a bias on every row, either layout of the weight")
    func affineGradients() {
        for tb in [false, true] {
            let a = random([3, 4], seed: 41), b = random(tb ? [5, 4] : [4, 5], seed: 42), bias = random([5], seed: 43)
            gradientCheck("affine tb=\(tb)", [a, b, bias]) { affine($0[0], $0[1], transposeB: tb, bias: $0[2]) }
        }
    }

    /// `affine` is `matmul` and `+` in one op, for the layers of the MLP and the CNN's fully connected ones: the same
    /// bits, forward and for every gradient, with a dense input (sgemm), an input the sparse kernels take (a
    /// constant, mostly background), the weight transposed, and the bias and weight used again after (their
    /// gradients accumulate).
    @Test("affine gives the bits of matmul plus bias, dense and sparse, forward and backward")
    func affineIsMatmulPlusBias() {
        let (m, k, n) = (16, 40, 70)
        var sparseX = [Float](repeating: 0, count: m * k)
        for i in Swift.stride(from: 0, to: m * k, by: 7) { sparseX[i] = Float(i % 13) / 13 + 0.1 }
        let dense = random([m, k], seed: 44).scalars, w = random([k, n], seed: 45).scalars
        let wt = random([n, k], seed: 46).scalars, bias = random([n], seed: 47).scalars
        for (sparse, transposeB) in [(false, false), (false, true), (true, false)] {
            let input = sparse ? sparseX : dense, weight = transposeB ? wt : w
            func run(fused: Bool) -> (out: [Float], gradients: [[Float]]) {
                let tape = Tape()
                let x = sparse ? tape.constant(input, shape: [m, k]) : tape.variable(input, shape: [m, k])
                let wv = tape.variable(weight, shape: transposeB ? [n, k] : [k, n]), bv = tape.variable(bias, shape: [n])
                let y = fused ? affine(x, wv, transposeB: transposeB, bias: bv) : matmul(x, wv, transposeB: transposeB) + bv
                let again = tanh(y) + bv + sum(wv * wv)
                tape.backward(from: sum(again * again))
                return (y.scalars, [wv, bv].map { tape.gradient(of: $0) } + (sparse ? [] : [tape.gradient(of: x)]))
            }
            let fused = run(fused: true), separate = run(fused: false)
            expectIdentical(fused.out, separate.out, "outputs, sparse \(sparse), transposeB \(transposeB)")
            expectIdentical(fused.gradients, separate.gradients, "gradients, sparse \(sparse), transposeB \(transposeB)")
            #expect(fused.gradients.allSatisfy { $0.contains { $0 != 0 } })
        }
    }

    @Test("add, multiply and scale, with suffix broadcasting")
    func elementwise() {
        gradientCheck("a + b", [random([3, 4], seed: 4), random([3, 4], seed: 5)]) { $0[0] + $0[1] }
        gradientCheck("a + bias", [random([3, 4], seed: 6), random([4], seed: 7)]) { $0[0] + $0[1] }
        gradientCheck("bias + a", [random([4], seed: 7), random([2, 3, 4], seed: 6)]) { $0[0] + $0[1] }
        gradientCheck("a - b", [random([2, 5], seed: 8), random([5], seed: 9)]) { $0[0] - $0[1] }
        gradientCheck("a * b", [random([3, 4], seed: 10), random([3, 4], seed: 11)]) { $0[0] * $0[1] }
        gradientCheck("a * row", [random([2, 3, 4], seed: 12), random([3, 4], seed: 13)]) { $0[0] * $0[1] }
        gradientCheck("a * a", [random([6], seed: 14)]) { $0[0] * $0[0] }
        gradientCheck("2.5 a / 4", [random([6], seed: 15)]) { 2.5 * $0[0] / 4 }
    }

    /// A bias added to every row takes vector loops (forward, and the row sums of its gradient); the same sum
    /// written with a [1, n] bias takes the general broadcast loop. Both must give the same bits, with a width that
    /// has a 64-column part and a remainder, and the bias used twice (its gradient accumulates).
    @Test("a bias added to every row: the vector loops give the general broadcast's bits")
    func biasRows() {
        let x = random([5, 70], seed: 21), b = random([70], seed: 22)
        func run(_ shape: [Int]) -> (out: [Float], gradients: [[Float]]) {
            var out: [Float] = []
            let (_, gradients) = valueWithGradient(at: [x, b]) { v in
                let bias = reshape(v[1], shape)
                let y = tanh(v[0] + bias) + bias
                out = y.scalars
                return sum(y * y)
            }
            return (out, gradients)
        }
        let vector = run([70]), general = run([1, 70])
        expectIdentical(vector.out, general.out, "outputs")
        expectIdentical(vector.gradients, general.gradients, "gradients")
        #expect(vector.gradients[1].contains { $0 != 0 })
    }

    @Test("sum and mean, whole and along each axis")
    func reductions() {
        let x = random([2, 3, 4], seed: 16)
        gradientCheck("sum", [x]) { reshape(sum($0[0]), [1]) }
        gradientCheck("mean", [x]) { reshape(mean($0[0]), [1]) }
        for axis in [0, 1, 2, -1] {
            gradientCheck("sum axis \(axis)", [x]) { sum($0[0], axis: axis) }
            gradientCheck("mean axis \(axis) keeping", [x]) { mean($0[0], axis: axis, keepingDimension: true) }
        }
    }

    @Test("tanh, relu, exp, log")
    func activations() {
        gradientCheck("tanh", [random([3, 5], seed: 17, -3, 3)]) { tanh($0[0]) }
        // relu: every input at least 0.05 from the kink at 0.
        var values = random([20], seed: 18).scalars.map { $0 < 0 ? $0 - 0.05 : $0 + 0.05 }
        values[0] = 0.3
        gradientCheck("relu", [(values, [4, 5])]) { relu($0[0]) }
        gradientCheck("exp", [random([3, 4], seed: 19, -2, 2)]) { exp($0[0]) }
        gradientCheck("log", [random([3, 4], seed: 20, 0.5, 3)]) { log($0[0]) }
    }

    @Test("logSumExp and logSoftmax along either axis")
    func softmax() {
        let x = random([3, 5], seed: 21, -4, 4)
        for axis in [0, 1] {
            gradientCheck("logSumExp axis \(axis)", [x]) { logSumExp($0[0], axis: axis) }
            gradientCheck("logSumExp axis \(axis) keeping", [x]) { logSumExp($0[0], axis: axis, keepingDimension: true) }
            gradientCheck("logSoftmax axis \(axis)", [x]) { logSoftmax($0[0], axis: axis) }
        }
        gradientCheck("logSoftmax 3-D axis 1", [random([2, 4, 3], seed: 22)]) { logSoftmax($0[0], axis: 1) }
    }

    @Test("nllLoss and the one-hot loss, mean and with a global-batch normalizer")
    func losses() {
        let labels: [Int32] = [2, 0, 4, 4]
        let x = random([4, 5], seed: 23)
        gradientCheck("nllLoss", [x]) { reshape(nllLoss(logProbabilities: logSoftmax($0[0], axis: 1), labels: labels), [1]) }
        gradientCheck("nllLoss / 10", [x]) { reshape(nllLoss(logProbabilities: $0[0], labels: labels, normalizer: 10), [1]) }
        gradientCheck("oneHotLoss", [x]) { reshape(oneHotLoss(logProbabilities: logSoftmax($0[0], axis: 1), labels: labels), [1]) }
    }

    @Test("conv2D: strides, paddings, with and without bias")
    func convolution() {
        let cases: [(input: [Int], weight: [Int], stride: Int, padding: Padding, bias: Bool)] = [
            ([2, 3, 6, 5], [4, 3, 3, 3], 1, .valid, true),
            ([1, 2, 7, 7], [3, 2, 3, 3], 2, .explicit(rows: 1, columns: 1), true),
            ([2, 2, 5, 6], [2, 2, 2, 3], 1, .same, false),
            ([1, 1, 6, 6], [2, 1, 4, 4], 2, .same, true),
            ([1, 2, 5, 4], [1, 2, 1, 1], 1, .explicit(rows: 2, columns: 0), true),
        ]
        for (i, c) in cases.enumerated() {
            var inputs = [random(c.input, seed: 30 + UInt64(i)), random(c.weight, seed: 40 + UInt64(i))]
            if c.bias { inputs.append(random([c.weight[0]], seed: 50 + UInt64(i))) }
            gradientCheck("conv2D \(c)", inputs) {
                conv2D($0[0], weight: $0[1], bias: c.bias ? $0[2] : nil, stride: c.stride, padding: c.padding)
            }
        }
    }

    @Test("maxPool2D: tiling 2x2/2, overlapping 3x3/2 and 3x3/1, ragged edges")
    func pooling() {
        gradientCheck("pool 2/2", [distinct([2, 2, 4, 6], seed: 60)]) { maxPool2D($0[0], kernel: 2, stride: 2) }
        gradientCheck("pool 2/2 ragged", [distinct([1, 2, 5, 5], seed: 61)]) { maxPool2D($0[0], kernel: 2, stride: 2) }
        gradientCheck("pool 3/2", [distinct([1, 2, 7, 8], seed: 62)]) { maxPool2D($0[0], kernel: 3, stride: 2) }
        gradientCheck("pool 3/1", [distinct([1, 1, 5, 5], seed: 63)]) { maxPool2D($0[0], kernel: 3, stride: 1) }
        // The pooled tensor feeds two consumers: gradients must add.
        gradientCheck("pool used twice", [distinct([1, 1, 4, 4], seed: 64)]) {
            let p = maxPool2D($0[0], kernel: 2, stride: 2)
            return p * p + p
        }
    }

    @Test("reshape and flatten are views that pass gradients through")
    func views() {
        gradientCheck("flatten then matmul", [random([2, 2, 2, 3], seed: 70), random([12, 3], seed: 71)]) {
            matmul(flatten($0[0]), $0[1])
        }
        gradientCheck("reshape -1", [random([6, 2], seed: 72)]) { tanh(reshape($0[0], [3, -1])) * reshape($0[0], [3, 4]) }
    }

    @Test("convolve in every mode, either argument longer", arguments: ConvolveMode.allCases)
    func convolve1D(mode: ConvolveMode) {
        gradientCheck("convolve \(mode) 9*4", [random([9], seed: 80), random([4], seed: 81)]) { convolve($0[0], $0[1], mode: mode) }
        gradientCheck("convolve \(mode) 3*7", [random([3], seed: 82), random([7], seed: 83)]) { convolve($0[0], $0[1], mode: mode) }
    }

    @Test("a composed model: the chapter's MLP predict and loss, small")
    func composedMLP() {
        let labels: [Int32] = [1, 0, 2]
        gradientCheck("mlp", [random([3, 4], seed: 90), random([4, 5], seed: 91), random([5], seed: 92),
                              random([5, 3], seed: 93), random([3], seed: 94)]) { p in
            let hidden = tanh(matmul(p[0], p[1]) + p[2])
            let logits = matmul(hidden, p[3]) + p[4]
            return reshape(oneHotLoss(logProbabilities: logits - logSumExp(logits, axis: 1, keepingDimension: true),
                                      labels: labels), [1])
        }
    }
}

@Suite("Broadcasting", .limit(minutes: 5))
struct BroadcastingTests {
    @Test("numpy broadcasting: [3,1] with [1,4], [3,4] minus [3,1], [2,1,3] times [4,1]")
    func general() {
        gradientCheck("[3,1] + [1,4]", [random([3, 1], seed: 100), random([1, 4], seed: 101)]) { $0[0] + $0[1] }
        gradientCheck("[3,4] - [3,1]", [random([3, 4], seed: 102), random([3, 1], seed: 103)]) { $0[0] - $0[1] }
        gradientCheck("[2,1,3] * [4,1]", [random([2, 1, 3], seed: 104), random([4, 1], seed: 105)]) { $0[0] * $0[1] }
        let a = Tensor(shape: [2, 1], scalars: [1, 2]), b = Tensor(shape: [3], scalars: [10, 20, 30])
        #expect((a + b).shape == [2, 3])
        #expect((a + b).scalars == [11, 21, 31, 12, 22, 32])
        #expect((b * a).scalars == [10, 20, 30, 20, 40, 60])
    }
}
