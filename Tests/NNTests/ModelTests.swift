// The chapter's models (sizes, initialisation, loss and every gradient against PyTorch) and the optimizers
// (five steps against PyTorch's trajectories).
import Autodiff
import Foundation
import MNISTData
import NN
import Support
import Testing
import TestSupport

/// The synthetic batch of make_model_reference.py: ((i * 37) mod 256) / 255 over the flat batch.
private func syntheticBatch(_ tape: Tape, count: Int) -> Tensor {
    tape.constant([count, 1, 28, 28]) { buffer in
        for i in 0..<buffer.count { buffer[i] = Float((i * 37) % 256) / 255 }
    }
}

@Suite("Models", .limit(minutes: 5))
struct ModelTests {
    @Test("parameter totals: MLP 1,863,690 and CNN 1,199,882, and the summaries agree")
    func parameterCounts() {
        #expect(MLP().parameterCount == 1_863_690)
        #expect(ChapterCNN().parameterCount == 1_199_882)
        #expect(MLP().summary.reduce(0) { $0 + $1.parameters } == 1_863_690)
        #expect(ChapterCNN().summary.reduce(0) { $0 + $1.parameters } == 1_199_882)
        #expect(formatSummary(ChapterCNN()).hasSuffix("Total parameters: 1,199,882"))
        #expect(MLP(layerSizes: [784, 10]).parameterCount == 7850)
    }

    @Test("the MLP starts from the chapter's weights: 0.1 * randn from RandomState(0), layer by layer")
    func mlpInitialisation() throws {
        let json = try JSON.load(Fixtures.reference("numpy_randomstate0.json"))
        let store = MLP().makeParameterStore()
        MLP().initialize(store, seed: 0)
        #expect(Array(store["W1"].prefix(5)) == json["init_scale0.1_W1_784x1024_first5_row_major"].doubles.map(Float.init))
        #expect(Array(store["b1"].prefix(5)) == json["init_scale0.1_b1_first5"].doubles.map(Float.init))
        let sum = store["W1"].reduce(0.0) { $0 + Double($1) }
        #expect(abs(sum - json["init_scale0.1_W1_sum"].double) < 1e-3)
    }

    @Test("the CNN's initial weights lie within ±1/sqrt(fan_in), and the seed decides them")
    func cnnInitialisation() {
        let model = ChapterCNN()
        let a = model.makeParameterStore(), b = model.makeParameterStore(), c = model.makeParameterStore()
        model.initialize(a, seed: 1)
        model.initialize(b, seed: 1)
        model.initialize(c, seed: 2)
        expectIdentical(a.flatValues, b.flatValues, "the same seed")
        #expect(differences(a.flatValues, c.flatValues).differing > 0, "another seed, the same weights")
        for (name, fanIn) in [("conv1.weight", 9), ("conv2.bias", 288), ("fc1.weight", 9216), ("fc2.weight", 128)] {
            let bound = Float(1 / Double(fanIn).squareRoot())
            let values = a[name]
            #expect(values.allSatisfy { abs($0) <= bound }, "\(name)")
            #expect(values.map(abs).max()! > 0.95 * bound, "\(name) does not fill its range")
        }
    }

    /// Compares loss, the first row of log-probabilities, and each gradient's sum, norm and 16 entries with
    /// PyTorch float64. Tolerances: the network computes in Float; sums of up to 9,216 products carry relative
    /// errors of ~1e-6, so entries and norms are compared at 1e-4 relative to the gradient's norm, which no
    /// indexing or scaling mistake could meet.
    @Test("loss, outputs and every gradient of both models against PyTorch", arguments: ["cnn", "mlp"])
    func againstPyTorch(modelName: String) throws {
        let reference = try JSON.load(Fixtures.reference("model_reference.json"))
        let entry = reference["models"].array.first { $0["model"].string == modelName }!
        let model: Model = modelName == "cnn" ? ChapterCNN() : MLP()
        let store = model.makeParameterStore()
        model.initialize(store, seed: UInt32(entry["seed"].int))
        let labels: [Int32] = [7, 2, 1, 0, 4, 1]
        let tape = Tape()
        var firstRow: [Float] = []
        let loss = tape.valueWithGradient(at: store) { p in
            let logProbabilities = model.logProbabilities(syntheticBatch(tape, count: 6), p)
            firstRow = Array(logProbabilities.scalars.prefix(10))
            return model.loss(logProbabilities: logProbabilities, labels: labels, normalizer: 6)
        }
        #expect(abs(Double(loss) - entry["loss"].double) < 1e-5, "loss \(loss) vs \(entry["loss"].double)")
        let rows = closeness(firstRow, entry["log_probabilities_row0"].doubles, rtol: 1e-5, atol: 1e-5)
        #expect(rows.passed, "log-probabilities: \(rows)")
        var report: [String] = []
        for summary in entry["grads"].array {
            let name = summary["name"].string
            let gradient = store.gradient(name).map(Double.init)
            let norm = summary["norm"].double
            let ours = (sum: gradient.reduce(0, +), norm: gradient.reduce(0) { $0 + $1 * $1 }.squareRoot())
            let scale = max(norm, 1e-12)
            #expect(abs(ours.norm - norm) <= 1e-4 * scale, "\(name) norm \(ours.norm) vs \(norm)")
            #expect(abs(ours.sum - summary["sum"].double) <= 1e-4 * scale * Double(gradient.count).squareRoot(),
                    "\(name) sum \(ours.sum) vs \(summary["sum"].double)")
            let sampled = summary["indices"].ints.map { gradient[$0] }
            let entries = closeness(sampled, summary["values"].doubles, rtol: 0, atol: 1e-4 * scale)
            #expect(entries.passed, "\(name) entries: \(entries)")
            report.append("\(name) \(String(format: "%.1e", abs(ours.norm - norm) / scale))")
        }
        print("\(modelName) vs PyTorch: loss error \(String(format: "%.1e", abs(Double(loss) - entry["loss"].double))), "
              + "relative gradient-norm errors: " + report.joined(separator: ", "))
    }

    @Test("a CNN training step allocates no tensor buffers after the first")
    func cnnStepReusesBuffers() {
        expectStepsReuseBuffers(ChapterCNN(), batch: 8) { tape, _ in syntheticBatch(tape, count: 8) }
    }
}

/// Runs a training step on `input(tape, step)` for steps 0...3 and checks that after the first the tape creates
/// no buffer and holds no more bytes.
private func expectStepsReuseBuffers(_ model: Model, batch: Int, input: (Tape, Int) -> Tensor,
                                     sourceLocation: SourceLocation = #_sourceLocation) {
    let store = model.makeParameterStore()
    model.initialize(store, seed: 1)
    let tape = Tape()
    let labels = [Int32](repeating: 3, count: batch)
    func step(_ index: Int) {
        _ = tape.valueWithGradient(at: store) { p in
            model.loss(logProbabilities: model.logProbabilities(input(tape, index), p), labels: labels, normalizer: batch)
        }
    }
    step(0)
    let warm = (tape.bufferAllocations, tape.bufferBytes)
    for index in 1...3 { step(index) }
    #expect(tape.bufferAllocations == warm.0, sourceLocation: sourceLocation)
    #expect(tape.bufferBytes == warm.1, sourceLocation: sourceLocation)
}

/// Digit-like batches: a blob of nonzero pixels (about 20 % of the image) whose size changes from batch to batch, so
/// that successive steps have different numbers of nonzeros, as MNIST batches do.
private func sparseBatch(count: Int, seed: Int) -> [Float] {
    var pixels = [Float](repeating: 0, count: count * 784)
    for n in 0..<count {
        let radius = 5 + (n + seed) % 5
        for r in 0..<28 {
            for c in 0..<28 where (r - 14) * (r - 14) + (c - 14 + n % 3) * (c - 14 + n % 3) <= radius * radius {
                pixels[n * 784 + r * 28 + c] = Float((r * 31 + c * 17 + n + seed) % 255 + 1) / 256
            }
        }
    }
    return pixels
}

@Suite("The MLP on mostly-zero inputs", .limit(minutes: 5))
struct SparseMLPTests {
    /// An input that needs no gradient takes the sparse first layer; the same input as a variable takes sgemm.
    /// They differ only in summation order, so the gradients agree to rounding (1e-5 of each gradient's norm).
    /// Standardised inputs have a background of (0 - 0.1307) / 0.3081 instead of 0.
    @Test("the sparse first layer gives the dense path's loss and gradients", arguments: [false, true])
    func sparseMatchesDense(standardized: Bool) {
        let model = MLP()
        let store = model.makeParameterStore()
        model.initialize(store, seed: 0)
        let labels: [Int32] = (0..<32).map { Int32($0 % 10) }
        let raw = sparseBatch(count: 32, seed: 1)
        #expect(Double(raw.filter { $0 != 0 }.count) / Double(raw.count) < 0.5)
        let pixels = standardized ? raw.map { ($0 - 0.1307) / 0.3081 } : raw
        var results: [(loss: Float, gradient: [Float])] = []
        for dense in [false, true] {
            let tape = Tape()
            let loss = tape.valueWithGradient(at: store) { p in
                let input = dense ? tape.variable(pixels, shape: [32, 1, 28, 28]) : tape.constant(pixels, shape: [32, 1, 28, 28])
                return model.loss(logProbabilities: model.logProbabilities(input, p), labels: labels, normalizer: 32)
            }
            results.append((loss, store.withGradients { Array($0) }))
        }
        #expect(results[0].gradient != results[1].gradient, "both runs took the same path")
        #expect(abs(results[0].loss - results[1].loss) < 1e-5)
        for entry in store.entries {
            let sparse = Array(results[0].gradient[entry.offset..<entry.offset + entry.count])
            let dense = Array(results[1].gradient[entry.offset..<entry.offset + entry.count])
            let norm = dense.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let check = closeness(sparse, dense.map(Double.init), rtol: 0, atol: 1e-5 * norm)
            #expect(check.passed, "\(entry.name): \(check)")
        }
    }

    @Test("an MLP step on batches of changing sparsity allocates no tensor buffers after the first")
    func stepReusesBuffers() {
        expectStepsReuseBuffers(MLP(), batch: 16) { tape, step in
            tape.constant(sparseBatch(count: 16, seed: step), shape: [16, 1, 28, 28])
        }
    }
}

@Suite("Optimizers", .limit(minutes: 5))
struct OptimizerTests {
    /// The step split over threads must compute every element exactly as the one-thread step does (the split is
    /// over contiguous ranges, each element's update is independent). 100,000 parameters make three parts.
    @Test("an optimizer step on 1, 2 or 3 threads gives the same bits", arguments: ["sgd", "adadelta"])
    func threadedStep(name: String) throws {
        var random = TestRandom(seed: 11)
        let count = 100_000
        let start = random.array(count), gradients = (0..<3).map { _ in random.array(count, -0.01, 0.01) }
        func run(threads: Int) throws -> [Float] {
            let optimizer: Optimizer = name == "sgd" ? try SGD(learningRate: 0.05)
                : try Adadelta(parameterCount: count, configuration: .init(learningRate: 0.1, weightDecay: 0.01))
            var values = start
            for g in gradients {
                values.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { optimizer.step(values: v, gradients: $0, threads: threads) } }
            }
            return values + optimizer.state
        }
        let one = try run(threads: 1)
        #expect(Array(one.prefix(count)) != start, "the steps changed nothing")
        for threads in [2, 3] { expectIdentical(try run(threads: threads), one, "\(threads) threads") }
    }

    /// Adadelta updates 16 elements per vector and the last few through the lanes of one register: every element
    /// must get the same bits whichever way it was computed (each range of one element goes through the tail).
    @Test("Adadelta's vectorised step and its element-by-element tail give the same bits")
    func vectorAndTail() throws {
        var random = TestRandom(seed: 5)
        let count = 53  // three vectors and a tail of 5
        let start = random.array(count), gradients = (0..<3).map { _ in random.array(count, -0.01, 0.01) }
        func run(oneAtATime: Bool) throws -> [Float] {
            let optimizer = try Adadelta(parameterCount: count, configuration: .init(learningRate: 0.5, weightDecay: 0.01))
            var values = start
            for g in gradients {
                values.withUnsafeMutableBufferPointer { v in
                    g.withUnsafeBufferPointer { g in
                        if oneAtATime {
                            for i in 0..<count { optimizer.step(values: v, gradients: g, range: i..<(i + 1)) }
                        } else {
                            optimizer.step(values: v, gradients: g, range: 0..<count)
                        }
                    }
                }
            }
            return values + optimizer.state
        }
        let whole = try run(oneAtATime: false)
        #expect(Array(whole.prefix(count)) != start, "the steps changed nothing")
        expectIdentical(whole, try run(oneAtATime: true))
    }

    /// The step that checks the gradient as it goes: with a finite gradient it is the plain step, bit for bit, on
    /// any thread count; a NaN or infinity anywhere (first element, a block boundary, inside another thread's
    /// part, the last element) makes it say so.
    @Test("stepIfFinite steps like step when the gradient is finite and reports any NaN or infinity",
          arguments: ["sgd", "adadelta"])
    func stepIfFinite(name: String) throws {
        var random = TestRandom(seed: 17)
        let count = 100_003
        let start = random.array(count), gradient = random.array(count, -0.01, 0.01)
        func optimizer() throws -> Optimizer {
            name == "sgd" ? try SGD(learningRate: 0.05) : try Adadelta(parameterCount: count)
        }
        let plain = try optimizer()
        var expected = start
        expected.withUnsafeMutableBufferPointer { v in gradient.withUnsafeBufferPointer { plain.step(values: v, gradients: $0) } }
        for threads in [1, 2, 3] {
            let checked = try optimizer()
            var values = start
            let finite = values.withUnsafeMutableBufferPointer { v in
                gradient.withUnsafeBufferPointer { checked.stepIfFinite(values: v, gradients: $0, threads: threads) }
            }
            #expect(finite, "\(threads) threads")
            expectIdentical(values, expected, "values, \(threads) threads")
            expectIdentical(checked.state, plain.state, "optimizer state, \(threads) threads")
            // The same step with the gradient handed over a block at a time (a reducer's sum rounded on the way):
            // every element asked for exactly once, the same bits.
            let rounding = try optimizer()
            var asked = [UInt8](repeating: 0, count: count)
            values = start
            let roundedFinite = values.withUnsafeMutableBufferPointer { v in
                asked.withUnsafeMutableBufferPointer { asked in
                    rounding.stepIfFinite(values: v, threads: threads) { block, out in
                        for i in block { asked[i] &+= 1; out[i - block.lowerBound] = gradient[i] }
                    }
                }
            }
            #expect(roundedFinite && asked.allSatisfy { $0 == 1 }, "\(threads) threads")
            expectIdentical(values, expected, "values, rounded block by block, \(threads) threads")
            expectIdentical(rounding.state, plain.state, "optimizer state, rounded block by block, \(threads) threads")
            for (position, bad) in [(0, Float.nan), (4096, .infinity), (50_000, -.infinity), (count - 1, .nan)] {
                var broken = gradient
                broken[position] = bad
                var values = start
                let finite = values.withUnsafeMutableBufferPointer { v in
                    broken.withUnsafeBufferPointer { try! optimizer().stepIfFinite(values: v, gradients: $0, threads: threads) }
                }
                #expect(!finite, "\(bad) at \(position), \(threads) threads")
                let roundedFinite = values.withUnsafeMutableBufferPointer { v in
                    try! optimizer().stepIfFinite(values: v, threads: threads) { block, out in
                        for i in block { out[i - block.lowerBound] = broken[i] }
                    }
                }
                #expect(!roundedFinite, "\(bad) at \(position), \(threads) threads, rounded block by block")
            }
        }
    }

    /// Replays the reference's five fixed gradients and compares every parameter after every step. PyTorch ran in
    /// Float with the same operation order and fused multiply-adds; we measured 0 ulp at both learning rates (1 ulp at lr
    /// 1.0 with an earlier scalar loop, where one intermediate delta rounded the other way). 2 ulp allows that and nothing more: any
    /// mistake in the update is off by orders of magnitude.
    private func replay(_ name: String, _ make: (Int) throws -> Optimizer) throws {
        let cases = try JSON.load(Fixtures.reference("torch_reference.json"))["cases"].array
        let reference = cases.first { $0["name"].string == name }!
        var values = reference["inputs"]["param0"]["data"].doubles.map(Float.init)
        let gradients = reference["inputs"]["grads_per_step"]["data"].doubles.map(Float.init)
        let expected = reference["output"]["data"].doubles
        let optimizer = try make(values.count)
        var worst: Float = 0
        for step in 0..<5 {
            let g = Array(gradients[(5 * step)..<(5 * step + 5)])
            values.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { optimizer.step(values: v, gradients: $0) } }
            for (i, value) in values.enumerated() {
                let target = Float(expected[5 * step + i])
                let error = abs(value - target) / max(target.ulp, Float.leastNormalMagnitude)
                worst = max(worst, error)
                #expect(error <= 2, "\(name) step \(step + 1) parameter \(i): \(value) vs \(target)")
            }
        }
        print("\(name): largest difference from PyTorch over 5 steps: \(worst) ulp")
    }

    @Test("Adadelta lr 0.1 and 1.0, and SGD lr 0.001, match PyTorch step for step")
    func trajectories() throws {
        try replay("adadelta_lr0.1_rho0.9_eps1e-6") { try Adadelta(parameterCount: $0, configuration: .init(learningRate: 0.1)) }
        try replay("adadelta_lr1.0_rho0.9_eps1e-6") { try Adadelta(parameterCount: $0, configuration: .init(learningRate: 1.0)) }
        try replay("sgd_lr0.001") { _ in try SGD(learningRate: 0.001) }
    }

    @Test("hyper-parameters are validated, naming the hyper-parameter")
    func validation() {
        #expect(throws: SettingError(.learningRate, value: "-0.1", problem: "the learning rate must be positive and finite")) {
            try SGD(learningRate: -0.1)
        }
        #expect(throws: SettingError.self) { try SGD(learningRate: .nan) }
        #expect(throws: SettingError(.rho, value: "1.5", problem: "rho must be in [0, 1]")) {
            try Adadelta(parameterCount: 1, configuration: .init(rho: 1.5))
        }
        #expect(throws: SettingError.self) { try Adadelta(parameterCount: 1, configuration: .init(epsilon: 0)) }
        #expect(throws: SettingError.self) { try Adadelta(parameterCount: 1, configuration: .init(weightDecay: -1)) }
        #expect(Adadelta.Configuration() == Adadelta.Configuration(learningRate: 0.1, rho: 0.9, epsilon: 1e-6, weightDecay: 0))
    }

    @Test("weight decay adds decay * w to the gradient before the update")
    func weightDecay() throws {
        let plain = try Adadelta(parameterCount: 1, configuration: .init(learningRate: 1))
        let decayed = try Adadelta(parameterCount: 1, configuration: .init(learningRate: 1, weightDecay: 0.5))
        var a: [Float] = [2], b: [Float] = [2]
        let g1: [Float] = [1 + 0.5 * 2], g2: [Float] = [1]
        a.withUnsafeMutableBufferPointer { v in g1.withUnsafeBufferPointer { plain.step(values: v, gradients: $0) } }
        b.withUnsafeMutableBufferPointer { v in g2.withUnsafeBufferPointer { decayed.step(values: v, gradients: $0) } }
        #expect(a == b)
    }
}

@Suite("Fused convolution", .limit(minutes: 5))
struct FusedConvolutionTests {
    /// Outputs are bit-identical. Gradients are identical too except the conv2 bias, whose sum runs over the pooled
    /// windows in window order in the fused op and over the output rows in row order in the unfused one: the same
    /// terms, added in another order, so it agrees to Float rounding.
    @Test("the CNN's fused conv-relu-pool gives the unfused network's outputs and gradients")
    func fusedEqualsUnfused() {
        let model = ChapterCNN()
        let fused = model.makeParameterStore(), unfused = model.makeParameterStore()
        model.initialize(fused, seed: 3)
        model.initialize(unfused, seed: 3)
        let labels: [Int32] = [3, 1, 4, 1, 5]
        var outputs: [[Float]] = []
        for (store, forward) in [(fused, model.logProbabilities), (unfused, model.unfusedLogProbabilities)] {
            let tape = Tape()
            _ = tape.valueWithGradient(at: store) { p in
                let x = tape.constant([5, 1, 28, 28]) { b in for i in 0..<b.count { b[i] = Float((i * 53) % 256) / 255 - 0.3 } }
                let lp = forward(x, p)
                outputs.append(lp.scalars)
                return nllLoss(logProbabilities: lp, labels: labels)
            }
        }
        expectIdentical(outputs[0], outputs[1], "log-probabilities")
        for entry in fused.entries {
            if entry.name == "conv2.bias" {
                // Each element is a sum of 2,880 terms (5 images x 24 x 24 positions) that mostly cancel: its Float
                // rounding is bounded by the terms' magnitudes, not the result's. Measured: 0 difference above 1e-9
                // with OpenBLAS's Haswell kernels, 5.6e-9 (on a value of 8.3e-4) with its AVX-512 kernels.
                let result = closeness(fused.gradient(entry.name), unfused.gradient(entry.name), rtol: 1e-6, atol: 2e-8)
                #expect(result.passed, "\(entry.name): \(result)")
            } else {
                expectIdentical(fused.gradient(entry.name), unfused.gradient(entry.name), entry.name)
            }
        }
    }

    /// How a product uses threads belongs to its tape (`BLAS.Plan`), not to the process: while other threads run
    /// products split other ways, this one's bits do not move. Tests run in parallel in one process, so a setting
    /// that one of them could change would change the bits of the others' products.
    @Test("the CNN's gradients keep their bits while other tapes run products split other ways on other threads")
    func plansAreTheTapes() {
        let model = ChapterCNN()
        func gradients(plan: BLAS.Plan) -> [Float] {
            let store = model.makeParameterStore()
            model.initialize(store, seed: 3)
            let tape = Tape(plan: plan)
            _ = tape.valueWithGradient(at: store) { p in
                let x = tape.constant([5, 1, 28, 28]) { b in for i in 0..<b.count { b[i] = Float((i * 29) % 256) / 255 } }
                return nllLoss(logProbabilities: model.logProbabilities(x, p), labels: [0, 9, 2, 7, 5])
            }
            return store.flatGradients
        }
        let alone = gradients(plan: .serial)
        let stop = Flag()
        let others = (0..<2).map { (index: Int) -> Thread in
            Thread {
                let plan = BLAS.Plan(parts: 2 + index, fixedColumnBlock: index == 0 ? 256 : nil)
                while !stop.value {
                    let tape = Tape(plan: plan)
                    _ = matmul(tape.constant([128, 256]) { $0.update(repeating: 0.5) },
                               tape.constant([256, 512]) { $0.update(repeating: 0.25) })
                }
            }
        }
        others.forEach { $0.start() }
        for round in 0..<4 { expectIdentical(gradients(plan: .serial), alone, "round \(round)") }
        stop.set()
    }

    @Test("conv2D with relu and a pool of 2 or 3 equals the ops composed, including ragged edges",
          arguments: [(2, [2, 3, 9, 8]), (3, [1, 2, 11, 12]), (2, [1, 1, 7, 7])])
    func fusedOps(pool: Int, shape: [Int]) {
        var random = TestRandom(seed: UInt64(pool * 100 + shape[2]))
        let x = random.array(shape.reduce(1, *)), w = random.array(4 * shape[1] * 9), b = random.array(4)
        for activation in [Activation.identity, .relu] {
            var results: [[[Float]]] = []
            for fusedPath in [true, false] {
                let tape = Tape()
                let (vx, vw, vb) = (tape.variable(x, shape: shape), tape.variable(w, shape: [4, shape[1], 3, 3]), tape.variable(b, shape: [4]))
                var y: Tensor
                if fusedPath {
                    y = conv2D(vx, weight: vw, bias: vb, activation: activation, maxPool: pool)
                } else {
                    y = conv2D(vx, weight: vw, bias: vb)
                    if activation == .relu { y = relu(y) }
                    y = maxPool2D(y, kernel: pool, stride: pool)
                }
                tape.backward(from: sum(y * tape.constant(random.array(y.count), shape: y.shape)))
                random = TestRandom(seed: UInt64(pool * 100 + shape[2]))  // same upstream values for both paths
                _ = random.array(x.count + w.count + b.count)
                results.append([y.scalars, tape.gradient(of: vx), tape.gradient(of: vw), tape.gradient(of: vb)])
            }
            expectIdentical(results[0], results[1], "\(activation) pool \(pool) \(shape)")
        }
    }
}

extension ChapterCNN {
    /// The same network as `logProbabilities`, one op at a time: the reference the fused version is tested against.
    fileprivate func unfusedLogProbabilities(_ images: Tensor, _ p: Parameters) -> Tensor {
        var x = relu(conv2D(images, weight: p[conv1.index], bias: p[conv1.index + 1]))
        x = relu(conv2D(x, weight: p[conv2.index], bias: p[conv2.index + 1]))
        x = maxPool2D(x, kernel: conv2.maxPool!, stride: conv2.maxPool!)
        x = relu(linear(flatten(x), weight: p[fc1.index], bias: p[fc1.index + 1]))
        return logSoftmax(linear(x, weight: p[fc2.index], bias: p[fc2.index + 1]), axis: 1)
    }
}
