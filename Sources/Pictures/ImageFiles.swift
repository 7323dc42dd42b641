// Reading single grayscale images for `predict`: PNG (8-bit gray, gray+alpha, RGB or RGBA, not interlaced) and
// PGM (binary P5 or text P2, 8-bit).
import Foundation
import MNISTData
import Support

/// A grayscale image: bytes 0 (black) to 255 (white), row-major.
public struct GrayImage: Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    /// Reads a PNG or PGM file (told apart by their signatures).
    /// - Throws: `DataError` naming the file: missing, unreadable, or not an image this reader takes.
    public static func read(path: String) throws(DataError) -> GrayImage {
        let bytes: [UInt8]
        do { bytes = try readFile(path) } catch {
            throw DataError(file: path, problem: "\(error)", kind: error.code == ENOENT ? .missing : .malformed)
        }
        do {
            if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(bytes) }
            if bytes.starts(with: Array("P5".utf8)) || bytes.starts(with: Array("P2".utf8)) { return try decodePGM(bytes) }
            throw ImageError("is neither a PNG nor a PGM image")
        } catch let error as ImageError {
            throw DataError(file: path, problem: error.description)
        } catch {
            throw DataError(file: path, problem: "\(error)")
        }
    }

    struct ImageError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func decodePNG(_ bytes: [UInt8]) throws -> GrayImage {
        var position = 8
        var width = 0, height = 0, colorType = -1
        var data: [UInt8] = []
        func uint32(_ at: Int) -> Int { Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]) }
        while position + 12 <= bytes.count {
            let length = uint32(position)
            let type = String(decoding: bytes[(position + 4)..<(position + 8)], as: UTF8.self)
            guard length <= bytes.count - position - 12 else { throw ImageError("PNG chunk \(type) is truncated") }
            let body = Array(bytes[(position + 8)..<(position + 8 + length)])
            let crc = UInt32(uint32(position + 8 + length))
            guard Zlib.crc32(Array(bytes[(position + 4)..<(position + 8 + length)])) == crc else {
                throw ImageError("PNG chunk \(type) fails its CRC")
            }
            switch type {
            case "IHDR":
                guard body.count == 13 else { throw ImageError("PNG header is malformed") }
                width = Int(body[0]) << 24 | Int(body[1]) << 16 | Int(body[2]) << 8 | Int(body[3])
                height = Int(body[4]) << 24 | Int(body[5]) << 16 | Int(body[6]) << 8 | Int(body[7])
                guard body[8] == 8 else { throw ImageError("PNG bit depth \(body[8]) is not supported (8 only)") }
                guard body[12] == 0 else { throw ImageError("interlaced PNG is not supported") }
                colorType = Int(body[9])
                guard [0, 2, 4, 6].contains(colorType) else { throw ImageError("PNG colour type \(colorType) is not supported") }
                guard width > 0, height > 0, width <= 4096, height <= 4096 else { throw ImageError("PNG size \(width)x\(height)") }
            case "IDAT":
                data += body
            case "IEND":
                position = bytes.count
                continue
            default:
                break
            }
            position += 12 + length
        }
        guard colorType >= 0 else { throw ImageError("PNG has no header chunk") }
        let channels = [0: 1, 2: 3, 4: 2, 6: 4][colorType]!
        let stride = width * channels
        let raw: [UInt8]
        do { raw = try Zlib.decompress(data, limit: height * (stride + 1)) } catch { throw ImageError("PNG image data: \(error)") }
        guard raw.count == height * (stride + 1) else { throw ImageError("PNG image data is \(raw.count) bytes, expected \(height * (stride + 1))") }
        // Undo the per-row filters (None, Sub, Up, Average, Paeth).
        var rows = [UInt8](repeating: 0, count: height * stride)
        for row in 0..<height {
            let filter = raw[row * (stride + 1)]
            for i in 0..<stride {
                let x = Int(raw[row * (stride + 1) + 1 + i])
                let a = i >= channels ? Int(rows[row * stride + i - channels]) : 0
                let b = row > 0 ? Int(rows[(row - 1) * stride + i]) : 0
                let c = row > 0 && i >= channels ? Int(rows[(row - 1) * stride + i - channels]) : 0
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw ImageError("PNG row \(row) has an unknown filter \(filter)")
                }
                rows[row * stride + i] = UInt8((x + predicted) & 0xff)
            }
        }
        // To gray: colour as luminance, alpha composited over white.
        var gray = [UInt8](repeating: 0, count: width * height)
        for i in 0..<(width * height) {
            let p = rows[(i * channels)..<((i + 1) * channels)].map(Double.init)
            let luminance = channels >= 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0]
            let alpha = channels == 2 ? p[1] / 255 : channels == 4 ? p[3] / 255 : 1
            gray[i] = UInt8(max(0, min(255, (luminance * alpha + 255 * (1 - alpha)).rounded())))
        }
        return GrayImage(width: width, height: height, pixels: gray)
    }

    static func decodePGM(_ bytes: [UInt8]) throws -> GrayImage {
        // Header: magic, width, height, maxval, separated by whitespace, with # comments.
        var position = 2
        func token() throws -> Int {
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: "#") {
                    while position < bytes.count && bytes[position] != 0x0A { position += 1 }
                } else if [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) {
                    position += 1
                } else { break }
            }
            let start = position
            while position < bytes.count && (0x30...0x39).contains(bytes[position]) { position += 1 }
            guard position > start, let value = Int(String(decoding: bytes[start..<position], as: UTF8.self)) else {
                throw ImageError("PGM header is malformed")
            }
            return value
        }
        let binary = bytes[1] == UInt8(ascii: "5")
        let width = try token(), height = try token(), maxValue = try token()
        guard width > 0, height > 0, width <= 4096, height <= 4096 else { throw ImageError("PGM size \(width)x\(height)") }
        guard maxValue > 0 && maxValue < 256 else { throw ImageError("PGM maximum value \(maxValue) is not supported (8-bit only)") }
        var values: [Int] = []
        if binary {
            position += 1  // the single whitespace after maxval
            guard bytes.count - position >= width * height else { throw ImageError("PGM pixel data is truncated") }
            values = bytes[position..<(position + width * height)].map(Int.init)
        } else {
            for _ in 0..<(width * height) { values.append(try token()) }
        }
        return GrayImage(width: width, height: height, pixels: values.map { UInt8(min(255, $0 * 255 / maxValue)) })
    }
}
