// The convolution algorithms (im2col, Winograd F(2x2, 3x3)) against the direct reference, forward and backward; and
// the progress calls their backward makes between images.
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

    @Test("backward calls progress after every pullback and between a convolution's images, im2col, Winograd and the fused pool alike, and the gradients do not change",
          arguments: [(ConvolutionAlgorithm.im2col, false), (.winograd, false), (.winograd, true)])
    func progressBetweenImages(algorithm: ConvolutionAlgorithm, fusedPool: Bool) {
        var random = TestRandom(seed: 7)
        let x = random.array(3 * 2 * 8 * 8), w = random.array(4 * 2 * 9), b = random.array(4)
        /// The gradients of x, w and b over the first `images` images, and how often backward called `progress`
        /// (nil: backward without it).
        func run(images: Int, counting: Bool) -> (gradients: [[Float]], calls: Int?) {
            let tape = Tape()
            let vx = tape.variable(Array(x.prefix(images * 2 * 8 * 8)), shape: [images, 2, 8, 8])
            let (vw, vb) = (tape.variable(w, shape: [4, 2, 3, 3]), tape.variable(b, shape: [4]))
            let y = fusedPool ? conv2D(vx, weight: vw, bias: vb, activation: .relu, maxPool: 2, algorithm: algorithm)
                : conv2D(vx, weight: vw, bias: vb, algorithm: algorithm)
            var calls = 0
            let loss = sum(y * y)
            if counting {
                tape.backward(from: loss, progress: {
                    calls += 1
                    #expect(tape.progress != nil, "backward's progress is the tape's while it runs")
                })
            } else {
                tape.backward(from: loss)
            }
            #expect(tape.progress == nil, "and only while it runs")
            return ([tape.gradient(of: vx), tape.gradient(of: vw), tape.gradient(of: vb)], counting ? calls : nil)
        }
        let one = run(images: 1, counting: true), three = run(images: 3, counting: true)
        #expect(one.calls! >= 3, "after each of the multiplication's, the sum's and the convolution's pullbacks")
        #expect(three.calls! - one.calls! == 2, "once between each two of the three images")
        let without = run(images: 3, counting: false)
        for (index, name) in ["input", "weight", "bias"].enumerated() {
            expectIdentical(three.gradients[index], without.gradients[index], "\(name) gradient")
        }
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
