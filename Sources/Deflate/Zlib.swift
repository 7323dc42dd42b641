// The one file that talks to zlib: streaming gzip decompression, CRC-32, and zlib-format compression.
//
// Everything else in the project (IDX reading, checkpoints, PNG files) goes through these three entry points, and
// this module (with the byte sources the gzip reader reads from) is what they import for it.
import CZlib
import Support

/// zlib's facilities as the rest of the project uses them.
public enum Zlib {
    /// CRC-32 (the polynomial of gzip, PNG and zip) of `bytes`, continuing from `initial`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var crc = UInt(initial)
        var rest = bytes
        // zlib takes a 32-bit length; feed larger buffers in pieces.
        while !rest.isEmpty {
            let piece = min(rest.count, 1 << 30)
            crc = CZlib.crc32(crc, rest.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(piece))
            rest = UnsafeRawBufferPointer(rebasing: rest[piece...])
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// CRC-32 of a byte array.
    public static func crc32(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, initial: initial) }
    }

    /// Compresses `bytes` into the zlib format (RFC 1950), as PNG's IDAT chunks need.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        require(czlib_deflate_init(&stream, level) == Z_OK, "zlib deflateInit failed")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(bytes.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let produced: Int = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let status = deflate(&stream, Z_FINISH)
                require(status == Z_STREAM_END, "zlib deflate did not finish within deflateBound")
                return out.count - Int(stream.avail_out)
            }
        }
        output.removeLast(output.count - produced)
        return output
    }
}

/// A pull-based gzip decoder over any byte source: `read(into:)` fills a buffer with decompressed bytes.
///
/// Concatenated gzip members are decoded one after another, as `gzip -d` does. A CRC or length mismatch in a
/// member's trailer, a stream that ends early, and bytes after the last member that are not another gzip member
/// are reported as `GzipError`s.
public final class GzipDecoder {
    private var stream = z_stream()
    private let source: ByteSource
    private var input: [UInt8]
    private var inputStart = 0
    private var inputEnd = 0
    private var sourceExhausted = false
    private var finished = false

    public init(source: ByteSource, chunkSize: Int = 1 << 16) throws(GzipError) {
        self.source = source
        self.input = [UInt8](repeating: 0, count: chunkSize)
        // 15 + 16: a 32 KiB window, gzip framing only (no raw zlib, no auto-detect).
        guard czlib_inflate_init2(&stream, 15 + 16) == Z_OK else { throw GzipError("zlib could not start a decoder") }
    }

    deinit { inflateEnd(&stream) }

    /// Fills `buffer` as far as the data allows; returns the number of bytes written (0 only at the end).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(GzipError) -> Int {
        guard !finished, buffer.count > 0 else { return 0 }
        var written = 0
        while written < buffer.count {
            if inputStart == inputEnd && !sourceExhausted { try refill() }
            if inputStart == inputEnd && sourceExhausted {
                throw GzipError("the gzip stream is truncated (it ends before its end marker)")
            }
            let status: Int32 = input.withUnsafeMutableBufferPointer { inputBuffer in
                stream.next_in = inputBuffer.baseAddress! + inputStart
                stream.avail_in = uInt(inputEnd - inputStart)
                stream.next_out = (buffer.baseAddress! + written).assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(buffer.count - written)
                let status = inflate(&stream, Z_NO_FLUSH)
                let consumed = (inputEnd - inputStart) - Int(stream.avail_in)
                inputStart += consumed
                written = buffer.count - Int(stream.avail_out)
                return status
            }
            switch status {
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: either the output is full (loop ends) or the input ran out (refill above).
                continue
            case Z_STREAM_END:
                if try !startNextMember() {
                    finished = true
                    return written
                }
            case Z_DATA_ERROR:
                let detail = stream.msg.map { String(cString: $0) } ?? "invalid compressed data"
                throw GzipError("the gzip data is corrupt (\(detail))")
            case Z_MEM_ERROR:
                throw GzipError("zlib ran out of memory")
            default:
                throw GzipError("zlib failed with status \(status)")
            }
        }
        return written
    }

    private func refill() throws(GzipError) {
        let count: Int
        do {
            count = try input.withUnsafeMutableBytes { try source.read(into: $0) }
        } catch {
            throw GzipError("reading failed: \(error)")
        }
        inputStart = 0
        inputEnd = count
        if count == 0 { sourceExhausted = true }
    }

    /// After a member ends: true if another gzip member follows (decoder reset), false at the clean end of input.
    private func startNextMember() throws(GzipError) -> Bool {
        if inputStart == inputEnd && !sourceExhausted { try refill() }
        if inputStart == inputEnd { return false }
        // Another member must start with the gzip magic; anything else is trailing garbage.
        if inputEnd - inputStart >= 2 && !(input[inputStart] == 0x1f && input[inputStart + 1] == 0x8b) {
            throw GzipError("unexpected data after the end of the gzip stream")
        }
        guard inflateReset(&stream) == Z_OK else { throw GzipError("zlib could not reset the decoder") }
        return true
    }
}

/// A problem decoding gzip data.
public struct GzipError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
