// All of a model's parameters in one contiguous buffer, and their gradients in a second buffer of the same layout.
//
// After llm.c: every parameter is a view (name, shape, offset) into `values`; its gradient is the same range of
// `gradients`. Averaging gradients over ranks is then one all-reduce of one buffer, and an optimizer step is one
// flat loop.
import Support

/// A model's parameters as named views into one flat buffer, with a gradient buffer of the same layout.
public final class ParameterStore {
    /// One parameter: where it sits in the flat buffers.
    public struct Entry: Equatable, Sendable {
        public let name: String
        public let shape: [Int]
        /// First element in the flat buffers.
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// The parameter's elements in the flat buffers.
        public var range: Range<Int> { offset..<(offset + count) }
    }

    public let entries: [Entry]
    /// Total number of parameters.
    public let count: Int
    let valueStorage: TensorStorage
    let gradientStorage: TensorStorage

    /// A store for parameters of the given names and shapes, in that order, all zero.
    /// - Parameter memory: where the values and the gradient live, as many Floats each as the layout has, kept by
    ///   the caller (memory the host's ranks share); nil allocates them.
    /// - Precondition: names are unique and shapes non-empty.
    public init(_ layout: [(name: String, shape: [Int])],
                memory: (values: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)? = nil) {
        var offset = 0
        var entries: [Entry] = []
        for (name, shape) in layout {
            require(!entries.contains { $0.name == name }, "ParameterStore: duplicate parameter name \(name)")
            require(shape.allSatisfy { $0 > 0 }, "ParameterStore: parameter \(name) has shape \(describe(shape))")
            entries.append(Entry(name: name, shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        self.entries = entries
        count = offset
        valueStorage = memory.map { TensorStorage(borrowing: $0.values, capacity: offset) } ?? TensorStorage(zeros: offset)
        gradientStorage = memory.map { TensorStorage(borrowing: $0.gradients, capacity: offset) } ?? TensorStorage(zeros: offset)
    }

    /// The entry called `name`.
    public func entry(_ name: String) -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            fatalError("ParameterStore: no parameter named \(name) (have \(entries.map(\.name)))")
        }
        return entry
    }

    /// Calls `body` with the flat parameter values.
    public func withValues<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(valueStorage) {
            try body(UnsafeMutableBufferPointer(start: valueStorage.pointer, count: count))
        }
    }

    /// Calls `body` with the flat gradients (same layout as the values).
    public func withGradients<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(gradientStorage) {
            try body(UnsafeMutableBufferPointer(start: gradientStorage.pointer, count: count))
        }
    }

    /// Calls `body` with the flat values and gradients together (an optimizer step).
    public func withValuesAndGradients<R>(
        _ body: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try withValues { values in try withGradients { gradients in try body(values, gradients) } }
    }

    /// A copy of all values, in layout order.
    public var flatValues: [Float] {
        get { withValues { Array($0) } }
        set {
            require(newValue.count == count, "ParameterStore.flatValues: \(newValue.count) values for \(count) parameters")
            withValues { buffer in _ = buffer.update(from: newValue) }
        }
    }

    /// The storage of the flat gradients (worker threads add their partial gradients into it).
    public var gradientBuffer: TensorStorage { gradientStorage }

    /// A copy of all gradients, in layout order.
    public var flatGradients: [Float] { withGradients { Array($0) } }

    /// The values of the parameter called `name`, row-major.
    public subscript(name: String) -> [Float] {
        get {
            let e = entry(name)
            return withValues { Array($0[e.offset..<(e.offset + e.count)]) }
        }
        set {
            let e = entry(name)
            require(newValue.count == e.count, "ParameterStore[\(name)]: \(newValue.count) values for shape \(describe(e.shape))")
            withValues { buffer in
                for (i, v) in newValue.enumerated() { buffer[e.offset + i] = v }
            }
        }
    }

    /// The gradient of the parameter called `name`, row-major.
    public func gradient(_ name: String) -> [Float] {
        let e = entry(name)
        return withGradients { Array($0[e.offset..<(e.offset + e.count)]) }
    }
}

extension Tape {
    /// Runs `body` as a new step with the store's parameters bound as tracked tensors (in `store.entries` order),
    /// backpropagates from the scalar it returns, and leaves the gradient in `store`'s gradient buffer.
    /// - Returns: the value of the scalar.
    /// - Parameter gradients: where the gradient goes instead of the store's gradient buffer, if given.
    public func valueWithGradient(at store: ParameterStore, gradients: TensorStorage? = nil,
                                  _ body: ([Tensor]) -> Tensor) -> Float {
        reset()
        let wasRecording = isRecording
        isRecording = true
        defer { isRecording = wasRecording }
        let loss = body(bind(store, gradients: gradients))
        backward(from: loss)
        return loss.scalar
    }

    /// Runs `body` as a new step without recording (evaluation); its result is valid until the next step.
    public func value<Result>(at store: ParameterStore, _ body: ([Tensor]) -> Result) -> Result {
        reset()
        let wasRecording = isRecording
        isRecording = false
        defer { isRecording = wasRecording }
        return body(bind(store))
    }
}

/// The value of `f` at `inputs` and its gradient with respect to each input, on a tape of its own.
///
/// - Parameters:
///   - inputs: the point, as (values, shape) pairs.
///   - plan: how the tape's products run (threads, precision).
///   - f: a scalar function of tensors built from the engine's ops.
/// - Returns: f's value and one gradient array per input.
public func valueWithGradient(at inputs: [(scalars: [Float], shape: [Int])], plan: BLAS.Plan = .serial,
                              of f: ([Tensor]) -> Tensor) -> (value: Float, gradients: [[Float]]) {
    let tape = Tape(plan: plan)
    let variables = inputs.map { tape.variable($0.scalars, shape: $0.shape) }
    let value = f(variables)
    tape.backward(from: value)
    return (value.scalar, variables.map { tape.gradient(of: $0) })
}
