// The tape: buffers reused between steps, and the messages a shape mismatch stops with.
import Autodiff
import Foundation
import Testing
import TestSupport

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
