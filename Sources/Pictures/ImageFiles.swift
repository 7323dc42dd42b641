// Reading single pictures as grey for `predict`: PNG (every colour type and bit depth) and JPEG through
// ImageDecoding.swift (libpng, libjpeg-turbo), and PGM (binary P5 or text P2, 8-bit) here.
import Foundation
import Support

/// A grayscale image: bytes 0 (black) to 255 (white), row-major.
public struct GrayImage: Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        require(pixels.count == width * height, "GrayImage: \(pixels.count) pixels for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Reads a PNG, JPEG or PGM file (told apart by their signatures, not their names).
    /// - Throws: `FileError` naming the file: missing, unreadable, or not an image this reader takes.
    public static func read(path: String) throws(FileError) -> GrayImage {
        let bytes: [UInt8]
        do { bytes = try readFile(path) } catch {
            throw FileError(file: path, problem: "\(error)", kind: error.code == ENOENT ? .missing : .malformed)
        }
        return try decode(bytes, name: path)
    }

    /// A PNG, JPEG or PGM picture from its bytes; `name` is what a `FileError` calls it.
    public static func decode(_ bytes: [UInt8], name path: String) throws(FileError) -> GrayImage {
        do {
            if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try ImageDecoding.png(bytes) }
            if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try ImageDecoding.jpeg(bytes) }
            if bytes.starts(with: Array("P5".utf8)) || bytes.starts(with: Array("P2".utf8)) { return try decodePGM(bytes) }
            throw ImageError("is not a PNG, JPEG or PGM image")
        } catch let error as ImageError {
            throw FileError(file: path, problem: error.description)
        } catch {
            throw FileError(file: path, problem: "\(error)")
        }
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

/// Why a picture could not be read (the reader adds the file's name).
struct ImageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
