// The IDX file format (LeCun's MNIST format), raw or gzip-compressed, validated before anything large is allocated.
//
// Layout: 2 zero bytes, a type byte (0x08 = unsigned byte), a dimension count d, then d big-endian UInt32 sizes,
// then the payload, row-major. MNIST images are 0x00000803 (count, rows, columns); labels 0x00000801 (count).
#if canImport(Deflate)  // absent when scripts/fuzz.sh compiles Deflate's sources together with this module's
import Deflate
#endif
import Support

/// An n-dimensional array of unsigned bytes read from an IDX file.
public struct IDXArray: Equatable {
    /// Sizes, outermost first (images: count, rows, columns).
    public let dimensions: [Int]
    /// The payload, row-major.
    public let bytes: [UInt8]
}

/// What an IDX file is expected to hold.
public enum IDXKind: Sendable {
    case images
    case labels

    /// The four magic bytes read as a big-endian number.
    public var magic: UInt32 { self == .images ? 0x0000_0803 : 0x0000_0801 }
    var dimensionCount: Int { self == .images ? 3 : 1 }
    var noun: String { self == .images ? "images" : "labels" }
}

public enum IDX {
    /// The largest expansion deflate can achieve (about 1032:1), used to refuse a header that claims more data than
    /// a compressed file of the given size could possibly hold, before allocating for it.
    static let maximumDeflateRatio = 1032

    /// Reads an IDX file of the given kind. Gzip is recognised by its magic bytes, not by the file name.
    /// - Throws: `FileError` naming the file and the problem.
    public static func read(path: String, kind: IDXKind) throws(FileError) -> IDXArray {
        let file = try FileSource(path: path)
        return try read(from: file, size: file.size, name: path, kind: kind)
    }

    /// Reads IDX data of the given kind from `source`, which holds `size` bytes in all.
    public static func read(from source: ByteSource, size: Int, name: String, kind: IDXKind) throws(FileError) -> IDXArray {
        let fail = { (problem: String) in FileError(file: name, problem: problem) }
        // Peek at the first two bytes to tell gzip from raw IDX.
        var lead = [UInt8](repeating: 0, count: 2)
        let leadCount = try readFully(source, into: &lead, name: name)
        let isGzip = leadCount == 2 && lead[0] == 0x1f && lead[1] == 0x8b
        let raw = PrefixedSource(prefix: Array(lead[..<leadCount]), rest: source)
        let input: ByteSource
        if isGzip {
            do {
                input = try GzipSource(decoder: GzipDecoder(source: raw))
            } catch {
                throw fail(error.description)
            }
        } else {
            input = raw
        }

        // Header: magic (4 bytes), then one UInt32 per dimension.
        var magicBytes = [UInt8](repeating: 0, count: 4)
        let got = try readFully(input, into: &magicBytes, name: name)
        if got < 4 {
            throw fail(got == 0 ? "is empty" : "is too short to be an IDX file (\(got) bytes)")
        }
        let magic = bigEndianUInt32(magicBytes, at: 0)
        if magic != kind.magic {
            throw fail(describeWrongMagic(magic, expected: kind))
        }
        var dimensionBytes = [UInt8](repeating: 0, count: 4 * kind.dimensionCount)
        if try readFully(input, into: &dimensionBytes, name: name) < dimensionBytes.count {
            throw fail("is truncated inside its header")
        }
        let dimensions = (0..<kind.dimensionCount).map { Int(bigEndianUInt32(dimensionBytes, at: 4 * $0)) }
        let headerSize = 4 + dimensionBytes.count

        // Payload size, with overflow checked (three UInt32 sizes can exceed Int.max).
        var payload = 1
        for dimension in dimensions {
            let (product, overflow) = payload.multipliedReportingOverflow(by: dimension)
            if overflow { throw fail("header claims an impossible size \(dimensions)") }
            payload = product
        }
        let claim = describeClaim(dimensions, kind: kind)

        // Refuse a header that the file cannot back, before allocating `payload` bytes.
        if isGzip {
            let ceiling = size.multipliedReportingOverflow(by: maximumDeflateRatio)
            if !ceiling.overflow && payload > ceiling.partialValue + 4096 {
                throw fail("header claims \(claim) (\(payload) bytes), more than a \(size)-byte gzip file can hold")
            }
        } else {
            let available = size - headerSize
            if payload > available {
                throw fail("is truncated: header claims \(claim) (\(payload) bytes) but only \(available) bytes follow it")
            }
            if payload < available {
                throw fail("is overlong: \(available - payload) bytes follow the \(claim) its header describes")
            }
        }

        var bytes = [UInt8](repeating: 0, count: payload)
        let read = try readFully(input, into: &bytes, name: name)
        if read < payload {
            throw fail("is truncated: header claims \(claim) (\(payload) bytes) but the data ends after \(read)")
        }
        // Read to the very end: for gzip this is what checks the trailer's CRC and length.
        var probe = [UInt8](repeating: 0, count: 4096)
        let extra = try readFully(input, into: &probe, name: name)
        if extra > 0 {
            throw fail("is overlong: data continues after the \(claim) its header describes")
        }
        return IDXArray(dimensions: dimensions, bytes: bytes)
    }

    // MARK: Helpers

    /// Reads until `buffer` is full or the source ends; returns the count read.
    private static func readFully(_ source: ByteSource, into buffer: inout [UInt8], name: String) throws(FileError) -> Int {
        var filled = 0
        while filled < buffer.count {
            let count: Int
            do {
                count = try buffer.withUnsafeMutableBytes { all in
                    try source.read(into: UnsafeMutableRawBufferPointer(rebasing: all[filled...]))
                }
            } catch let error as FileError {
                throw error
            } catch {
                throw FileError(file: name, problem: "\(error)")
            }
            if count == 0 { break }
            filled += count
        }
        return filled
    }

    private static func bigEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (UInt32(bytes[offset]) << 24) | (UInt32(bytes[offset + 1]) << 16) | (UInt32(bytes[offset + 2]) << 8)
            | UInt32(bytes[offset + 3])
    }

    private static func describeWrongMagic(_ magic: UInt32, expected kind: IDXKind) -> String {
        let found = "0x" + String(magic, radix: 16, uppercase: true).leftPadded(to: 8)
        let wanted = "0x" + String(kind.magic, radix: 16, uppercase: true).leftPadded(to: 8)
        let other: IDXKind = kind == .images ? .labels : .images
        if magic == other.magic {
            return "holds \(other.noun) (magic \(found)), but \(kind.noun) were expected (magic \(wanted))"
        }
        if magic >> 16 == 0, (magic >> 8) & 0xff != 0x08, (magic >> 8) & 0xff >= 0x09 {
            return "is an IDX file of type 0x\(String((magic >> 8) & 0xff, radix: 16, uppercase: true)), "
                + "but only unsigned bytes (0x08) are supported"
        }
        return "is not an IDX \(kind == .images ? "image" : "label") file (magic \(found), expected \(wanted))"
    }

    private static func describeClaim(_ dimensions: [Int], kind: IDXKind) -> String {
        switch kind {
        case .images: return "\(dimensions[0]) images of \(dimensions[1])x\(dimensions[2])"
        case .labels: return "\(dimensions[0]) labels"
        }
    }
}

/// Bytes already peeked at, followed by the rest of a source.
private final class PrefixedSource: ByteSource {
    private var prefix: [UInt8]
    private let rest: ByteSource

    init(prefix: [UInt8], rest: ByteSource) {
        self.prefix = prefix
        self.rest = rest
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if !prefix.isEmpty {
            let count = min(prefix.count, buffer.count)
            prefix.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: count) }
            prefix.removeFirst(count)
            return count
        }
        return try rest.read(into: buffer)
    }
}

/// Decompressed bytes of a gzip decoder, as a source.
private final class GzipSource: ByteSource {
    private let decoder: GzipDecoder
    init(decoder: GzipDecoder) { self.decoder = decoder }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try decoder.read(into: buffer) }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
