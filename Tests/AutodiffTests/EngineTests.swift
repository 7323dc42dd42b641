// The im2col convolution against the naive reference, numerical edge cases, buffer reuse, and the messages a
// shape mismatch stops with.
import Autodiff
import Foundation
import Testing
import TestSupport

@Suite("conv2D against the direct reference", .limit(minutes: 5))
struct ConvolutionReferenceTests {
    // Both paths compute in different orders (im2col + sgemm in Float, the reference in Double), so they agree to
    // Float rounding of sums of up to C*KH*KW = 75 products of values in [-1, 1]: 1e-5 is ~10x that.
    @Test("random shapes, strides 1-3, every padding", arguments: 0..<12)
    func randomShapes(seed: Int) {
        var random = TestRandom(seed: UInt64(seed))
        let n = 1 + Int(random.next() % 3), c = 1 + Int(random.next() % 3), o = 1 + Int(random.next() % 4)
        let kh = 1 + Int(random.next() % 5), kw = 1 + Int(random.next() % 5)
        let h = kh + Int(random.next() % 6), w = kw + Int(random.next() % 6)
        let stride = 1 + Int(random.next() % 3)
        let paddings: [Padding] = [.valid, .same, .explicit(rows: Int(random.next() % 3), columns: Int(random.next() % 3))]
        let padding = paddings[seed % 3]
        let x = random.array(n * c * h * w), wt = random.array(o * c * kh * kw), b = random.array(o)
        let label = "x [\(n),\(c),\(h),\(w)] w [\(o),\(c),\(kh),\(kw)] stride \(stride) \(padding)"

        let reference = ConvolutionReference.forward(input: x, inputShape: [n, c, h, w], weight: wt,
                                                     weightShape: [o, c, kh, kw], bias: b, stride: stride, padding: padding)
        let tape = Tape()
        let (vx, vw, vb) = (tape.variable(x, shape: [n, c, h, w]), tape.variable(wt, shape: [o, c, kh, kw]), tape.variable(b, shape: [o]))
        let y = conv2D(vx, weight: vw, bias: vb, stride: stride, padding: padding)
        #expect(y.shape == reference.shape, "\(label): shape")
        let forward = closeness(y.scalars, reference.values, rtol: 1e-5, atol: 1e-5)
        #expect(forward.passed, "\(label) forward: \(forward)")

        let upstream = random.array(y.count)
        tape.backward(from: sum(y * tape.constant(upstream, shape: y.shape)))
        let grads = ConvolutionReference.gradients(input: x, inputShape: [n, c, h, w], weight: wt, weightShape: [o, c, kh, kw],
                                                   stride: stride, padding: padding, outputGradient: upstream)
        for (name, ours, theirs) in [("input", tape.gradient(of: vx), grads.input), ("weight", tape.gradient(of: vw), grads.weight),
                                     ("bias", tape.gradient(of: vb), grads.bias)] {
            let result = closeness(ours, theirs, rtol: 1e-5, atol: 1e-5 * Double(max(1, n * y.shape[2] * y.shape[3])).squareRoot())
            #expect(result.passed, "\(label) d\(name): \(result)")
        }
    }

    @Test("same padding keeps ceil(input / stride) positions")
    func samePadding() {
        let x = Tensor(zeros: [1, 1, 7, 6])
        #expect(conv2D(x, weight: Tensor(zeros: [2, 1, 3, 3]), bias: nil, padding: .same).shape == [1, 2, 7, 6])
        #expect(conv2D(x, weight: Tensor(zeros: [2, 1, 4, 2]), bias: nil, stride: 2, padding: .same).shape == [1, 2, 4, 3])
    }
}

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

@Suite("Tape memory", .limit(minutes: 5))
struct TapeMemoryTests {
    @Test("after the first step, a step of the same shapes allocates no tensor buffers")
    func arenaReuse() {
        let store = ParameterStore([("w", [8, 1, 3, 3]), ("b", [8]), ("fc", [10, 8 * 13 * 13]), ("fcb", [10])])
        store.flatValues = (0..<store.count).map { Float($0 % 7) * 0.01 - 0.03 }
        let tape = Tape()
        let labels: [Int32] = [1, 2, 3, 4]
        func step(batch: Int) -> Float {
            tape.valueWithGradient(at: store) { p in
                let x = tape.constant([batch, 1, 28, 28]) { $0.update(repeating: 0.5) }
                let h = maxPool2D(relu(conv2D(x, weight: p[0], bias: p[1])), kernel: 2, stride: 2)
                let logits = linear(flatten(h), weight: p[2], bias: p[3])
                return nllLoss(logProbabilities: logSoftmax(logits, axis: 1), labels: Array(labels.prefix(batch)))
            }
        }
        _ = step(batch: 4)
        let warm = tape.bufferAllocations
        #expect(warm > 0)
        for _ in 0..<5 { _ = step(batch: 4) }
        _ = step(batch: 3)  // a smaller last batch reuses the larger buffers
        _ = step(batch: 4)
        #expect(tape.bufferAllocations == warm)
    }

    @Test("a tensor kept from an earlier step keeps its values")
    func keptTensorSurvives() {
        let tape = Tape()
        let kept = tape.constant([1, 2, 3], shape: [3]) * 2
        tape.reset()
        let other = tape.constant([7, 7, 7], shape: [3]) * 3
        #expect(kept.scalars == [2, 4, 6])
        #expect(other.scalars == [21, 21, 21])
    }

    @Test("parameters the loss does not use get a zero gradient")
    func unusedParameters() {
        let store = ParameterStore([("used", [2]), ("unused", [3])])
        store.flatValues = [1, 2, 3, 4, 5]
        let tape = Tape()
        _ = tape.valueWithGradient(at: store) { p in sum(p[0] * p[0]) }
        #expect(store.flatGradients == [2, 4, 0, 0, 0])
        _ = tape.valueWithGradient(at: store) { p in sum(p[1]) }
        #expect(store.flatGradients == [0, 0, 1, 1, 1])
    }
}

@Suite("Shape mismatches", .limit(minutes: 5))
struct ShapeMismatchTests {
    // Exit tests run their body in a child process; the body may not capture anything, so each is written inline.
    private func stderr(_ result: ExitTest.Result?) -> String {
        result.map { String(decoding: $0.standardErrorContent, as: UTF8.self) } ?? "(the process did not fail)"
    }

    @Test("matmul names both shapes")
    func matmulMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = matmul(Tensor(zeros: [2, 3]), Tensor(zeros: [4, 5]))
        }
        #expect(stderr(result).contains("matmul: inner sizes differ: [2, 3] · [4, 5] (3 vs 4)"), "\(stderr(result))")
    }

    @Test("conv2D names the op, both shapes and the channel counts")
    func convolutionMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2D(Tensor(zeros: [2, 3, 7, 6]), weight: Tensor(zeros: [4, 2, 3, 3]), bias: nil)
        }
        #expect(stderr(result).contains("conv2D: input [2, 3, 7, 6] has 3 channels but weight [4, 2, 3, 3] expects 2"),
                "\(stderr(result))")
    }

    @Test("elementwise ops name both shapes")
    func broadcastMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor(zeros: [2, 3]) + Tensor(zeros: [4])
        }
        #expect(stderr(result).contains("+: shapes [2, 3] and [4] do not broadcast"), "\(stderr(result))")
    }

    @Test("losses name the shape and the label count")
    func lossMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = nllLoss(logProbabilities: Tensor(zeros: [3, 10]), labels: [1, 2])
        }
        #expect(stderr(result).contains("nllLoss: log-probabilities [3, 10] and 2 labels disagree"), "\(stderr(result))")
    }
}

@Suite("Winograd F(2x2, 3x3)", .limit(minutes: 5))
struct WinogradTests {
    // Winograd's transforms add and subtract up to 16 terms before and after the products, so against the Double
    // reference the error is a few times that of im2col: 1e-5 relative to the values' scale covers it, and any
    // transform mistake gives errors of order 1.
    @Test("forward and every gradient against the direct reference, paddings, odd sizes, with and without bias",
          arguments: 0..<10)
    func againstReference(seed: Int) {
        var random = TestRandom(seed: UInt64(100 + seed))
        let n = 1 + Int(random.next() % 3), c = 1 + Int(random.next() % 9), o = 1 + Int(random.next() % 9)
        let h = 3 + Int(random.next() % 9), w = 3 + Int(random.next() % 9)
        let padding: Padding = [.valid, .same, .explicit(rows: 2, columns: 1)][seed % 3]
        let withBias = seed % 2 == 0
        let x = random.array(n * c * h * w), wt = random.array(o * c * 9), b = random.array(o)
        let label = "x [\(n),\(c),\(h),\(w)] w [\(o),\(c),3,3] \(padding) bias \(withBias)"
        let reference = ConvolutionReference.forward(input: x, inputShape: [n, c, h, w], weight: wt, weightShape: [o, c, 3, 3],
                                                     bias: withBias ? b : nil, stride: 1, padding: padding)
        let tape = Tape()
        let (vx, vw, vb) = (tape.variable(x, shape: [n, c, h, w]), tape.variable(wt, shape: [o, c, 3, 3]), tape.variable(b, shape: [o]))
        let y = conv2D(vx, weight: vw, bias: withBias ? vb : nil, padding: padding, algorithm: .winograd)
        #expect(y.shape == reference.shape)
        let forward = closeness(y.scalars, reference.values, rtol: 1e-5, atol: 1e-5)
        #expect(forward.passed, "\(label) forward: \(forward)")
        let upstream = random.array(y.count)
        tape.backward(from: sum(y * tape.constant(upstream, shape: y.shape)))
        let grads = ConvolutionReference.gradients(input: x, inputShape: [n, c, h, w], weight: wt, weightShape: [o, c, 3, 3],
                                                   stride: 1, padding: padding, outputGradient: upstream)
        let scale = Double(max(1, n * y.shape[2] * y.shape[3])).squareRoot()
        for (name, ours, theirs) in [("input", tape.gradient(of: vx), grads.input), ("weight", tape.gradient(of: vw), grads.weight)] {
            let result = closeness(ours, theirs, rtol: 1e-5, atol: 1e-5 * scale)
            #expect(result.passed, "\(label) d\(name): \(result)")
        }
        if withBias {
            let result = closeness(tape.gradient(of: vb), grads.bias, rtol: 1e-5, atol: 1e-5 * scale)
            #expect(result.passed, "\(label) dbias: \(result)")
        }
    }

    @Test("fused relu and 2x2 pool in the Winograd output transform equal the ops composed", arguments: [[2, 9, 10, 12], [1, 8, 9, 9]])
    func fusedPool(shape: [Int]) {
        var random = TestRandom(seed: UInt64(shape[2]))
        let x = random.array(shape.reduce(1, *)), w = random.array(8 * shape[1] * 9), b = random.array(8)
        let upstreamSeed = random.next()
        var results: [[[Float]]] = []
        for fused in [true, false] {
            let tape = Tape()
            let (vx, vw, vb) = (tape.variable(x, shape: shape), tape.variable(w, shape: [8, shape[1], 3, 3]), tape.variable(b, shape: [8]))
            let y = fused ? conv2D(vx, weight: vw, bias: vb, activation: .relu, maxPool: 2, algorithm: .winograd)
                : maxPool2D(relu(conv2D(vx, weight: vw, bias: vb, algorithm: .winograd)), kernel: 2, stride: 2)
            var upstream = TestRandom(seed: upstreamSeed)
            tape.backward(from: sum(y * tape.constant(upstream.array(y.count), shape: y.shape)))
            results.append([y.scalars, tape.gradient(of: vx), tape.gradient(of: vw), tape.gradient(of: vb)])
        }
        expectIdentical(results[0][0], results[1][0], "outputs")
        expectIdentical(results[0][1], results[1][1], "input gradient")
        expectIdentical(results[0][2], results[1][2], "weight gradient")
        let bias = closeness(results[0][3], results[1][3], rtol: 1e-6, atol: 1e-7)  // summed in another order
        #expect(bias.passed, "bias gradient: \(bias)")
    }

    @Test("automatic choice: Winograd for the chapter's conv2, im2col for conv1 and strided kernels")
    func automaticChoice() {
        #expect(ConvolutionAlgorithm.chosen(input: [1, 32, 26, 26], weight: [64, 32, 3, 3]) == .winograd)
        #expect(ConvolutionAlgorithm.chosen(input: [1, 1, 28, 28], weight: [32, 1, 3, 3]) == .im2col)
        #expect(ConvolutionAlgorithm.chosen(input: [1, 32, 26, 26], weight: [64, 32, 3, 3], stride: 2) == .im2col)
        #expect(ConvolutionAlgorithm.chosen(input: [1, 32, 26, 26], weight: [64, 32, 5, 5]) == .im2col)
    }
}
