// Tensor: a shaped, row-major view of Float storage, optionally tracked by a tape for reverse-mode gradients.
//
// Shape legend used in comments throughout the engine:
//   N batch (images or rows), C input channels, O output channels, H x W input height and width,
//   KH x KW kernel, OH x OW output height and width, K = C*KH*KW patch length, P = OH*OW output positions.
import Support

/// An n-dimensional array of `Float`, contiguous and row-major (images are N, C, H, W).
///
/// A tensor made by a `Tape` lives in that tape's arena and may carry a gradient node; a tensor made with
/// `init(shape:scalars:)` belongs to no tape and never does. Tensors are cheap to copy: they share storage.
public struct Tensor {
    /// Sizes, outermost first; `[]` for a scalar.
    public let shape: [Int]
    let storage: TensorStorage
    let offset: Int
    /// The tape that made this tensor and records ops on it, if any.
    public unowned let tape: Tape?
    /// Index of this tensor's gradient slot on `tape`, or -1 when no gradient flows into it.
    let node: Int32
    /// The tape step this tensor belongs to (a tracked tensor may not be used after `Tape.reset()`).
    let generation: UInt32

    init(shape: [Int], storage: TensorStorage, offset: Int = 0, tape: Tape?, node: Int32 = -1, generation: UInt32 = 0) {
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.tape = tape
        self.node = node
        self.generation = generation
    }

    /// A tensor with the given values, outside any tape (for inputs, tests and results).
    /// - Precondition: `scalars.count` is the product of `shape`.
    public init(shape: [Int], scalars: [Float]) {
        require(shape.allSatisfy { $0 >= 0 } && scalars.count == shape.reduce(1, *),
                     "Tensor(shape:scalars:): shape \(shape) needs \(shape.reduce(1, *)) values, got \(scalars.count)")
        let storage = TensorStorage(capacity: scalars.count)
        scalars.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: scalars.count) }
        self.init(shape: shape, storage: storage, tape: nil)
    }

    /// A tensor of zeros outside any tape.
    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(zeros: shape.reduce(1, *)), tape: nil)
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// True when gradients flow into this tensor during `Tape.backward`.
    public var requiresGradient: Bool { node >= 0 }

    /// The first element; valid while `storage` is alive, which holds for as long as this tensor value is used.
    var pointer: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// The values, copied out, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// The single value of a one-element tensor.
    public var scalar: Float {
        require(count == 1, "Tensor.scalar: tensor of shape \(shape) has \(count) elements")
        return pointer.pointee
    }

    /// Calls `body` with the tensor's values (read-only).
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeBufferPointer(start: pointer, count: count)) }
    }

    /// Calls `body` with the tensor's values, writable (for filling inputs; never change a tensor an op has read).
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeMutableBufferPointer(start: pointer, count: count)) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = count <= 8 ? scalars.map { "\($0)" }.joined(separator: ", ")
            : scalars.prefix(6).map { "\($0)" }.joined(separator: ", ") + ", ..."
        return "Tensor(\(shape): [\(values)])"
    }
}

/// Formats a shape for messages: `[128, 1, 28, 28]`.
func describe(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
