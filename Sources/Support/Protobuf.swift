// Protocol-buffer messages written by hand: the few wire types TensorBoard's event files and ONNX models need.

/// A protocol-buffer message under construction: fields appended in the order written (any order is valid).
public struct ProtobufMessage {
    public init() {}

    public private(set) var bytes: [UInt8] = []

    public mutating func int(_ field: Int, _ value: Int) {
        key(field, wireType: 0)
        varint(UInt64(bitPattern: Int64(value)))
    }

    public mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt64(i)))) }
    }

    public mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt32(i)))) }
    }

    public mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(value.count))
        bytes += value
    }

    public mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    public mutating func message(_ field: Int, _ value: ProtobufMessage) { bytes(field, value.bytes) }

    private mutating func key(_ field: Int, wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
