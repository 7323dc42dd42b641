// Forward values and every gradient against PyTorch (float64) in Tests/References/torch_reference.json.
//
// Each reference case used loss = sum(output * upstream), so the input gradients are vector-Jacobian products with
// `upstream`; we build the same loss on our tape and compare. Tolerance: our inputs are the reference's float64
// values rounded to Float (relative error 6e-8) and every op computes in Float, so results carry errors of order
// 1e-7 x the magnitude of the values summed; 2e-5 (absolute plus relative) is far above that and far below any
// real mistake (a wrong index or sign gives errors of order 1).
import Autodiff
import Testing
import TestSupport

private let tolerance = (rtol: 2e-5, atol: 2e-5)

private struct ReferenceCase: Sendable {
    let name: String
    let json: JSON
    func input(_ key: String) -> (scalars: [Float], shape: [Int]) {
        (json["inputs"][key]["data"].doubles.map(Float.init), json["inputs"][key]["shape"].ints)
    }
    var output: [Double] { json["output"]["data"].doubles }
    var outputShape: [Int] { json["output"]["shape"].ints }
    var upstream: [Float] { json["upstream"].doubles.map(Float.init) }
    func grad(_ key: String) -> [Double] { json["grads"][key].doubles }
    func param(_ key: String) -> JSON { json["params"][key] }
}

private let cases: [String: ReferenceCase] = {
    let root = try! JSON.load(Fixtures.reference("torch_reference.json"))
    return Dictionary(uniqueKeysWithValues: root["cases"].array.map { ($0["name"].string, ReferenceCase(name: $0["name"].string, json: $0)) })
}()

/// Runs `op` on the case's inputs (in `inputNames` order) on a tape, backpropagates sum(output * upstream), and
/// compares output and gradients with the reference. Prints the largest errors (quoted in the issue notes).
private func check(_ name: String, inputs inputNames: [String], _ op: ([Tensor]) -> Tensor) {
    let reference = cases[name]!
    let tape = Tape()
    let variables = inputNames.map { key in
        let (scalars, shape) = reference.input(key)
        return tape.variable(scalars, shape: shape)
    }
    let output = op(variables)
    #expect(output.shape == reference.outputShape, "\(name): output shape")
    let forward = closeness(output.scalars, reference.output, rtol: tolerance.rtol, atol: tolerance.atol)
    #expect(forward.passed, "\(name) forward: \(forward)")
    var report = "\(name): forward \(String(format: "%.2g", forward.maxAbsoluteError))"
    if !reference.upstream.isEmpty {
        let loss = sum(output * tape.constant(reference.upstream, shape: output.shape))
        tape.backward(from: loss)
        for (key, variable) in zip(inputNames, variables) {
            let gradient = closeness(tape.gradient(of: variable), reference.grad(key), rtol: tolerance.rtol, atol: tolerance.atol)
            #expect(gradient.passed, "\(name) d\(key): \(gradient)")
            report += ", d\(key) \(String(format: "%.2g", gradient.maxAbsoluteError))"
        }
    }
    print("max |error| vs PyTorch float64 — \(report)")
}

@Suite("Ops against PyTorch", .limit(minutes: 5))
struct TorchReferenceTests {
    @Test("conv2d: stride 1 / padding 0, stride 2 / padding 1, stride 1 / padding 1",
          arguments: ["conv2d_s1_p0", "conv2d_s2_p1", "conv2d_s1_p1"])
    func convolution(name: String) {
        let c = cases[name]!
        let stride = c.param("stride").int, pad = c.param("padding").int
        check(name, inputs: ["input", "weight", "bias"]) {
            conv2D($0[0], weight: $0[1], bias: $0[2], stride: stride, padding: .explicit(rows: pad, columns: pad))
        }
    }

    @Test("max_pool2d 2x2/2 and 3x3/2", arguments: ["max_pool2d_k2_s2", "max_pool2d_k3_s2"])
    func pooling(name: String) {
        let c = cases[name]!
        check(name, inputs: ["input"]) { maxPool2D($0[0], kernel: c.param("kernel").int, stride: c.param("stride").int) }
    }

    @Test("linear (weight out x in)")
    func linearLayer() {
        check("linear_weight_out_by_in", inputs: ["input", "weight", "bias"]) { linear($0[0], weight: $0[1], bias: $0[2]) }
    }

    @Test("tanh and relu")
    func activations() {
        check("tanh", inputs: ["input"]) { tanh($0[0]) }
        check("relu", inputs: ["input"]) { relu($0[0]) }
    }

    @Test("log_softmax over dim 1 with logits of size ~100")
    func logSoftmaxLarge() {
        check("log_softmax_dim1_large_logits", inputs: ["input"]) { logSoftmax($0[0], axis: 1) }
    }

    @Test("nll_loss (mean) and the chapter's one-hot loss")
    func losses() {
        let nllTargets = cases["nll_loss_mean"]!.param("targets").ints.map(Int32.init)
        check("nll_loss_mean", inputs: ["input"]) { reshape(nllLoss(logProbabilities: $0[0], labels: nllTargets), [1]) }
        let oneHotTargets = cases["onehot_mean_loss"]!.param("targets").ints.map(Int32.init)
        check("onehot_mean_loss", inputs: ["input"]) { reshape(oneHotLoss(logProbabilities: $0[0], labels: oneHotTargets), [1]) }
    }

    @Test("numpy convolve: full, same (even window), valid", arguments: ConvolveMode.allCases)
    func numpyConvolve(mode: ConvolveMode) {
        check("numpy_convolve_\(mode.rawValue)", inputs: ["a", "v"]) { convolve($0[0], $0[1], mode: mode) }
    }
}
