// Tiny IDX and gzip files built in memory, for the reader's malformed-input tests and the fuzz corpus.
import Deflate
import MNISTData

public enum IDXBuilder {
    /// An IDX file: the magic (big-endian), each dimension (big-endian UInt32), then `payload`.
    public static func file(magic: UInt32, dimensions: [UInt32], payload: [UInt8]) -> [UInt8] {
        var bytes = bigEndian(magic)
        for dimension in dimensions { bytes += bigEndian(dimension) }
        return bytes + payload
    }

    /// `count` images of `rows` x `columns` with pixel values that vary with position.
    public static func images(count: Int, rows: Int = 28, columns: Int = 28) -> [UInt8] {
        let payload = (0..<(count * rows * columns)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        return file(magic: 0x803, dimensions: [UInt32(count), UInt32(rows), UInt32(columns)], payload: payload)
    }

    /// A label file with the given labels.
    public static func labels(_ labels: [UInt8]) -> [UInt8] {
        file(magic: 0x801, dimensions: [UInt32(labels.count)], payload: labels)
    }

    /// `bytes` as a single-member gzip file (zlib's deflate, wrapped in gzip's header and CRC-32/length trailer).
    public static func gzip(_ bytes: [UInt8]) -> [UInt8] {
        let zlibFormat = Zlib.compress(bytes)
        let deflate = zlibFormat[2..<(zlibFormat.count - 4)]  // drop zlib's 2-byte header and Adler-32 trailer
        let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
        return header + deflate + littleEndian(Zlib.crc32(bytes)) + littleEndian(UInt32(truncatingIfNeeded: bytes.count))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * $0)) } }
    private static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(8 * $0)) } }
}
