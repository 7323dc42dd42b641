// The tape: records each op's pullback as it runs, then replays them in reverse to propagate gradients.
//
// Every op computes its output, keeps what its backward needs (captured in the pullback closure), and records the
// pullback against its output's gradient slot. `backward(from:)` seeds the loss's gradient and calls the pullbacks
// from last to first; a pullback *adds into* its inputs' gradients, so a tensor used twice needs nothing special.
//
// To avoid clearing every gradient buffer each step, the first contribution to a gradient overwrites it and later
// ones add (BLAS's beta = 0 or 1); a gradient that receives no contribution is never read.
import Support

/// Records operations for reverse-mode differentiation and owns the memory of one step's tensors.
///
/// Use one tape per kind of step (training, evaluation): it reuses last step's buffers, so after the first step
/// a step of the same shapes allocates no tensor memory.
public final class Tape {
    struct GradientSlot {
        /// Where the gradient lives (nil until first written, unless it was given, as for parameters).
        var storage: TensorStorage?
        var offset: Int
        let count: Int
        /// False until the first contribution, which overwrites instead of adding.
        var written: Bool
    }

    struct Pullback {
        let output: Int32
        /// Receives the output's gradient and adds into the inputs' gradients.
        let body: (Tape, UnsafeMutablePointer<Float>) -> Void
        /// Parameters (indices in the bound store) among the op's inputs.
        let parameters: [Int]
    }

    let arena = Arena()
    private(set) var slots: [GradientSlot] = []
    private var pullbacks: [Pullback] = []
    private(set) var generation: UInt32 = 0
    /// Parameter gradient slots bound in this step (they must be zeroed if nothing reaches them).
    private var parameterSlots: Range<Int32> = 0..<0
    /// The parameters among the inputs of the op whose output was made last (handed to its pullback record).
    private var lastParameterInputs: [Int] = []

    /// When false, ops run without recording anything (evaluation); outputs still come from the arena.
    public var isRecording: Bool
    /// How this tape's products use threads, forward and backward.
    public let plan: BLAS.Plan
    /// During `backward`, the `progress` it was given (nil otherwise): a pullback that works through chunks (a
    /// convolution, an image at a time) calls it between them, so that a reduction started during backward is not
    /// left waiting for the whole pullback.
    public private(set) var progress: (() -> Void)?

    public init(recording: Bool = true, plan: BLAS.Plan = .serial) {
        isRecording = recording
        self.plan = plan
    }

    /// Starts a new step: forgets the recorded ops and makes last step's buffers available again.
    ///
    /// Tensors of earlier steps stay valid as values (their buffers are not reused while held) but may no longer
    /// take part in gradient computation.
    public func reset() {
        pullbacks.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        parameterSlots = 0..<0
        arena.reset()
        generation &+= 1
    }

    /// Tensor buffers this tape has created so far; it stops growing once steps repeat the same shapes.
    public var bufferAllocations: Int { arena.allocations }
    /// Bytes held in this tape's buffers.
    public var bufferBytes: Int { arena.bytes }

    // MARK: Making tensors

    /// A tensor of the given shape from this tape's arena, not initialised, that no gradient flows into.
    func uninitialized(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, storage: arena.allocate(count), tape: self, generation: generation)
    }

    /// A constant (no gradient) filled by `fill` with its `shape.reduce(1, *)` values.
    public func constant(_ shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) -> Void) -> Tensor {
        let tensor = uninitialized(shape)
        fill(UnsafeMutableBufferPointer(start: tensor.pointer, count: tensor.count))
        return tensor
    }

    /// A constant (no gradient) with the given values.
    public func constant(_ scalars: [Float], shape: [Int]) -> Tensor {
        require(scalars.count == shape.reduce(1, *),
                     "Tape.constant: shape \(describe(shape)) needs \(shape.reduce(1, *)) values, got \(scalars.count)")
        return constant(shape) { buffer in
            scalars.withUnsafeBufferPointer { buffer.baseAddress!.update(from: $0.baseAddress!, count: scalars.count) }
        }
    }

    /// A leaf tensor whose gradient this tape collects (read it with `gradient(of:)` after `backward`).
    public func variable(_ scalars: [Float], shape: [Int]) -> Tensor {
        let value = constant(scalars, shape: shape)
        return Tensor(shape: shape, storage: value.storage, tape: self, node: newSlot(count: value.count),
                      generation: generation)
    }

    /// Views of the store's parameters, tracked, whose gradients land at the same offsets in `gradients` (by
    /// default the store's own gradient buffer; a worker thread passes a buffer of its own).
    /// - Precondition: `gradients` holds at least `store.count` Floats.
    public func bind(_ store: ParameterStore, gradients: TensorStorage? = nil) -> [Tensor] {
        let destination = gradients ?? store.gradientStorage
        require(destination.capacity >= store.count,
                "Tape.bind: gradient buffer of \(destination.capacity) Floats for \(store.count) parameters")
        let first = Int32(slots.count)
        let tensors = store.entries.map { entry in
            slots.append(GradientSlot(storage: destination, offset: entry.offset, count: entry.count, written: false))
            return Tensor(shape: entry.shape, storage: store.valueStorage, offset: entry.offset, tape: self,
                          node: Int32(slots.count - 1), generation: generation)
        }
        parameterSlots = first..<Int32(slots.count)
        return tensors
    }

    // MARK: What ops use

    /// A new gradient slot for an op output of `count` elements.
    func newSlot(count: Int) -> Int32 {
        slots.append(GradientSlot(storage: nil, offset: 0, count: count, written: false))
        return Int32(slots.count - 1)
    }

    /// The output of an op on `inputs`: from the inputs' tape when they have one (tracked if the tape records and
    /// any input needs a gradient), otherwise a fresh untracked tensor.
    static func output(_ op: String, shape: [Int], inputs: Tensor...) -> Tensor {
        output(op, shape: shape, inputList: inputs)
    }

    static func output(_ op: String, shape: [Int], inputList inputs: [Tensor]) -> Tensor {
        var tape: Tape?
        var tracked = false
        for input in inputs {
            guard let owner = input.tape else { continue }
            if let seen = tape {
                require(seen === owner, "\(op): inputs come from different tapes")
            }
            tape = owner
            if input.node >= 0 {
                require(input.generation == owner.generation,
                             "\(op): a tracked tensor from an earlier step was used after Tape.reset()")
                tracked = true
            }
        }
        guard let tape else {
            return Tensor(shape: shape, storage: TensorStorage(capacity: shape.reduce(1, *)), tape: nil)
        }
        var tensor = tape.uninitialized(shape)
        tape.lastParameterInputs = inputs.compactMap { input in
            tape.parameterSlots.contains(input.node) && input.tape === tape ? Int(input.node - tape.parameterSlots.lowerBound) : nil
        }
        if tracked && tape.isRecording {
            tensor = Tensor(shape: shape, storage: tensor.storage, tape: tape, node: tape.newSlot(count: tensor.count),
                            generation: tape.generation)
        }
        return tensor
    }

    /// Records `body` as the pullback of `output` (nothing happens if the output is not tracked).
    func record(_ output: Tensor, _ body: @escaping (Tape, UnsafeMutablePointer<Float>) -> Void) {
        guard output.node >= 0 else { return }
        pullbacks.append(Pullback(output: output.node, body: body, parameters: lastParameterInputs))
    }

    /// Calls `body` with the buffer that receives `input`'s gradient and whether to add to it (false: overwrite,
    /// this is the first contribution). Does nothing when no gradient flows into `input`.
    @inline(__always)
    func withGradient(of input: Tensor, _ body: (UnsafeMutablePointer<Float>, _ accumulate: Bool) -> Void) {
        guard let (pointer, accumulate) = gradientDestination(of: input) else { return }
        body(pointer, accumulate)
    }

    /// The buffer that receives `input`'s gradient and whether to add to it, or nil when no gradient flows into
    /// `input`. The slot counts as written from now on, so the caller must write every element (or add to them).
    /// The pointer stays valid until the next `reset()`: the tape holds the buffer for the whole step.
    func gradientDestination(of input: Tensor) -> (UnsafeMutablePointer<Float>, accumulate: Bool)? {
        guard input.node >= 0 else { return nil }
        let index = Int(input.node)
        if slots[index].storage == nil {
            slots[index].storage = arena.allocate(slots[index].count)
            slots[index].offset = 0
        }
        let accumulate = slots[index].written
        slots[index].written = true
        return (slots[index].storage!.pointer + slots[index].offset, accumulate)
    }

    // MARK: Backward

    /// Propagates gradients from `loss` (seeded with `seed`, usually 1) back to every tracked tensor.
    ///
    /// Parameters bound with `bind(_:)` that the loss does not depend on get a zero gradient.
    /// - Parameters:
    ///   - parameterReady: called with a bound parameter's index as soon as its gradient is final (after the last
    ///     pullback that adds into it), so that its all-reduce can start while backward goes on.
    ///   - progress: called after every pullback, and inside a long one between the chunks it works through (a
    ///     convolution's images; the tape holds it as `progress` meanwhile), to let communication started during
    ///     backward progress.
    /// - Precondition: `loss` has one element and is tracked by this tape.
    public func backward(from loss: Tensor, seed: Float = 1, parameterReady: ((Int) -> Void)? = nil,
                         progress: (() -> Void)? = nil) {
        require(loss.count == 1, "Tape.backward: the loss must be a scalar, not shape \(describe(loss.shape))")
        require(loss.tape === self && loss.node >= 0 && loss.generation == generation,
                     "Tape.backward: the loss is not tracked by this tape's current step")
        withGradient(of: loss) { gradient, _ in gradient.pointee = seed }
        self.progress = progress
        defer { self.progress = nil }
        // A parameter's gradient is final after the earliest-recorded pullback that uses it (backward runs them
        // from last to first).
        var finalAfter = [Int](repeating: -1, count: parameterSlots.count)
        if parameterReady != nil {
            for (index, pullback) in pullbacks.enumerated() {
                for parameter in pullback.parameters where finalAfter[parameter] < 0 { finalAfter[parameter] = index }
            }
        }
        for (index, pullback) in pullbacks.enumerated().reversed() {
            let slot = slots[Int(pullback.output)]
            if slot.written, let storage = slot.storage {  // otherwise no gradient reached this output
                withExtendedLifetime(storage) { pullback.body(self, storage.pointer + slot.offset) }
            }
            if let parameterReady {
                for parameter in pullback.parameters where finalAfter[parameter] == index {
                    zeroIfUnwritten(parameterSlots.lowerBound + Int32(parameter))
                    parameterReady(parameter)
                }
            }
            progress?()
        }
        for index in parameterSlots where !slots[Int(index)].written {
            zeroIfUnwritten(index)
            if parameterReady != nil && finalAfter[Int(index - parameterSlots.lowerBound)] < 0 {
                parameterReady?(Int(index - parameterSlots.lowerBound))  // never used: zero, and ready now
            }
        }
        // The closures hold the step's buffers; release them now so the arena can reuse them next step.
        pullbacks.removeAll(keepingCapacity: true)
    }

    /// Zeroes a parameter's gradient if no pullback wrote it (the loss does not depend on it).
    private func zeroIfUnwritten(_ index: Int32) {
        let slot = slots[Int(index)]
        guard !slot.written else { return }
        (slot.storage!.pointer + slot.offset).update(repeating: 0, count: slot.count)
        slots[Int(index)].written = true
    }

    /// The gradient collected for a tracked tensor (zeros if none reached it).
    public func gradient(of tensor: Tensor) -> [Float] {
        require(tensor.node >= 0 && tensor.tape === self, "Tape.gradient(of:): the tensor is not tracked by this tape")
        let slot = slots[Int(tensor.node)]
        guard slot.written, let storage = slot.storage else { return [Float](repeating: 0, count: slot.count) }
        return Array(UnsafeBufferPointer(start: storage.pointer + slot.offset, count: slot.count))
    }
}

/// Writes `value(i)` for i in 0..<count into `destination`, adding when `accumulate` is true.
@inline(__always)
func store(_ destination: UnsafeMutablePointer<Float>, count: Int, accumulate: Bool, _ value: (Int) -> Float) {
    if accumulate {
        for i in 0..<count { destination[i] += value(i) }
    } else {
        for i in 0..<count { destination[i] = value(i) }
    }
}
