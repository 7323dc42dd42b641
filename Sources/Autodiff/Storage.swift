// Float buffers and the per-tape arena that hands them out again, step after step, without allocating.
//
// A training step asks for the same sequence of buffers every time (the model's graph does not change), so the
// arena remembers the buffers of the previous step by position and returns them again. A buffer that someone
// still holds (a tensor kept from an earlier step) is never reused: it is replaced, and the holder keeps its data.
import Support

/// A block of Floats, 64-byte aligned, freed when the last tensor using it goes away.
public final class TensorStorage {
    /// Start of the buffer; valid for as long as this object lives.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of Floats the buffer holds.
    public let capacity: Int

    /// Whether this object allocated the buffer (and frees it).
    private let owned: Bool

    /// A new buffer of `capacity` Floats, not initialised.
    public init(capacity: Int) {
        require(capacity >= 0, "TensorStorage: capacity \(capacity)")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1) * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(capacity, 1))
        self.capacity = capacity
        owned = true
    }

    /// `capacity` Floats at `pointer`, which someone else allocated and frees, after this object is gone (a
    /// micro-batch's gradient in memory the ranks of a host share).
    public init(borrowing pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        require(capacity >= 0, "TensorStorage: capacity \(capacity)")
        self.pointer = pointer
        self.capacity = capacity
        owned = false
    }

    /// A new buffer of `capacity` zeros.
    public convenience init(zeros capacity: Int) {
        self.init(capacity: capacity)
        pointer.initialize(repeating: 0, count: capacity)
    }

    deinit { if owned { pointer.deallocate() } }
}

/// Hands out buffers in the order they are requested, reusing last step's buffer at the same position.
final class Arena {
    private var slots: [TensorStorage] = []
    private var cursor = 0
    /// Buffers created since the arena was made; constant from step to step once the arena is warm.
    private(set) var allocations = 0

    /// Starts a new step: the next request gets the first buffer again.
    func reset() { cursor = 0 }

    /// A buffer of at least `count` Floats, not initialised.
    func allocate(_ count: Int) -> TensorStorage {
        defer { cursor += 1 }
        if cursor < slots.count {
            if slots[cursor].capacity >= count && isKnownUniquelyReferenced(&slots[cursor]) {
                return slots[cursor]
            }
            // Too small, or still held by a tensor from an earlier step: replace it (the holder keeps the old one).
            slots[cursor] = TensorStorage(capacity: max(count, slots[cursor].capacity))
        } else {
            slots.append(TensorStorage(capacity: count))
        }
        allocations += 1
        return slots[cursor]
    }

    /// Bytes held by the arena's buffers.
    var bytes: Int { slots.reduce(0) { $0 + $1.capacity * MemoryLayout<Float>.stride } }
}
