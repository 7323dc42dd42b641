// The IDX reader on every malformed-input case, with tiny files built in memory (raw and gzip) and on disk.
import Deflate
import Foundation
import MNISTData
import Testing
import TestSupport
import Support

/// Reads `bytes` as IDX of `kind`; returns the error's problem text, or nil if it read cleanly.
private func problem(_ bytes: [UInt8], _ kind: IDXKind = .images) -> String? {
    do {
        _ = try IDX.read(from: MemorySource(bytes), size: bytes.count, name: "f", kind: kind)
        return nil
    } catch {
        return error.problem
    }
}

@Suite("IDX reader", .limit(minutes: 5))
struct IDXReaderTests {
    @Test("raw and gzip files of the same data read identically")
    func rawAndGzip() throws {
        let raw = IDXBuilder.images(count: 3, rows: 4, columns: 5)
        let a = try IDX.read(from: MemorySource(raw), size: raw.count, name: "raw", kind: .images)
        let gz = IDXBuilder.gzip(raw)
        let b = try IDX.read(from: MemorySource(gz), size: gz.count, name: "gz", kind: .images)
        #expect(a.dimensions == [3, 4, 5])
        #expect(a.bytes == Array(raw[16...]))
        #expect(a == b)
    }

    @Test("concatenated gzip members are read as one stream, as gzip -d does")
    func multiMemberGzip() throws {
        let raw = IDXBuilder.labels([1, 2, 3, 4, 5, 6])
        let joined = IDXBuilder.gzip(Array(raw[..<7])) + IDXBuilder.gzip(Array(raw[7...]))
        let read = try IDX.read(from: MemorySource(joined), size: joined.count, name: "f", kind: .labels)
        #expect(read.bytes == [1, 2, 3, 4, 5, 6])
    }

    @Test("empty and too-short files")
    func shortFiles() {
        #expect(problem([]) == "is empty")
        #expect(problem([0, 0, 8]) == "is too short to be an IDX file (3 bytes)")
        #expect(problem([0, 0, 8, 3, 0, 0, 0, 1, 0, 0]) == "is truncated inside its header")
        #expect(problem(IDXBuilder.gzip([0, 0, 8, 3, 0, 0])) == "is truncated inside its header")
    }

    @Test("wrong magic numbers are named, and labels are told from images")
    func wrongMagic() {
        #expect(problem(Array("GIF89a and more bytes".utf8)) == "is not an IDX image file (magic 0x47494638, expected 0x00000803)")
        #expect(problem(IDXBuilder.labels([1, 2])) == "holds labels (magic 0x00000801), but images were expected (magic 0x00000803)")
        #expect(problem(IDXBuilder.images(count: 1, rows: 1, columns: 1), .labels)
            == "holds images (magic 0x00000803), but labels were expected (magic 0x00000801)")
        let floats = IDXBuilder.file(magic: 0x0D03, dimensions: [1, 1, 1], payload: [0, 0, 0, 0])
        #expect(problem(floats) == "is an IDX file of type 0xD, but only unsigned bytes (0x08) are supported")
    }

    @Test("truncated and overlong payloads, raw and gzip")
    func payloadLength() {
        let good = IDXBuilder.images(count: 2, rows: 3, columns: 3)
        let short = Array(good.dropLast(5))
        let long = good + [9, 9]
        #expect(problem(short) == "is truncated: header claims 2 images of 3x3 (18 bytes) but only 13 bytes follow it")
        #expect(problem(long) == "is overlong: 2 bytes follow the 2 images of 3x3 its header describes")
        #expect(problem(IDXBuilder.gzip(short)) == "is truncated: header claims 2 images of 3x3 (18 bytes) but the data ends after 13")
        #expect(problem(IDXBuilder.gzip(long)) == "is overlong: data continues after the 2 images of 3x3 its header describes")
    }

    @Test("a header claiming 2^31 images in a tiny file fails before allocating")
    func hugeClaim() {
        // 2^31 images of 28x28 would be 1.7 TB: an attempt to allocate it would crash the test process.
        let lie = IDXBuilder.file(magic: 0x803, dimensions: [1 << 31, 28, 28], payload: [UInt8](repeating: 7, count: 2000))
        #expect(problem(lie) == "is truncated: header claims 2147483648 images of 28x28 (1683627180032 bytes) but only 2000 bytes follow it")
        let gz = IDXBuilder.gzip(lie)
        #expect(problem(gz)?.hasPrefix("header claims 2147483648 images of 28x28 (1683627180032 bytes), more than a ") == true)
        let maximal = IDXBuilder.file(magic: 0x803, dimensions: [UInt32.max, UInt32.max, UInt32.max], payload: [])
        #expect(problem(maximal) == "header claims an impossible size [4294967295, 4294967295, 4294967295]")
    }

    @Test("corrupt, truncated and mis-checksummed gzip streams")
    func corruptGzip() {
        let raw = IDXBuilder.images(count: 20, rows: 28, columns: 28)
        let gz = IDXBuilder.gzip(raw)
        // Cut inside the deflate data.
        #expect(problem(Array(gz.prefix(gz.count / 2))) == "the gzip stream is truncated (it ends before its end marker)")
        // Cut inside the 8-byte trailer.
        #expect(problem(Array(gz.dropLast(3))) == "the gzip stream is truncated (it ends before its end marker)")
        // Flip a bit in the stored CRC: zlib reports the data check.
        var badCRC = gz
        badCRC[gz.count - 6] ^= 0x01
        #expect(problem(badCRC) == "the gzip data is corrupt (incorrect data check)")
        // Flip bits inside the compressed data: some error, never a crash or a wrong success.
        for position in stride(from: 12, to: gz.count - 8, by: 97) {
            var damaged = gz
            damaged[position] ^= 0x5a
            let found = problem(damaged)
            #expect(found != nil, "flipping byte \(position) went unnoticed")
        }
        // A bad gzip header.
        var badMethod = gz
        badMethod[2] = 7
        #expect(problem(badMethod)?.hasPrefix("the gzip data is corrupt") == true)
        // Trailing bytes after the stream.
        #expect(problem(gz + [1, 2, 3]) == "unexpected data after the end of the gzip stream")
    }
}

@Suite("Dataset files", .limit(minutes: 5))
struct DatasetFileTests {
    /// Writes `files` into a new directory and returns it.
    private func directory(_ files: [String: [UInt8]]) -> URL {
        let url = Fixtures.makeTemporaryDirectory("idx")
        for (name, bytes) in files {
            _ = FileManager.default.createFile(atPath: url.appendingPathComponent(name).path, contents: Data(bytes))
        }
        return url
    }

    @Test("images and labels of different counts")
    func countMismatch() throws {
        let url = directory(["i": IDXBuilder.images(count: 3, rows: 2, columns: 2), "l": IDXBuilder.labels([1, 2])])
        defer { Fixtures.removeTemporary(url) }
        let error = #expect(throws: FileError.self) {
            try Dataset.load(name: "t", imagesPath: url.appendingPathComponent("i").path, labelsPath: url.appendingPathComponent("l").path)
        }
        #expect(error?.problem.hasSuffix("holds 3 images but \(url.path)/l holds 2 labels") == true)
    }

    @Test("a label above 9 is named with its index")
    func badLabel() throws {
        let url = directory(["i": IDXBuilder.images(count: 3, rows: 2, columns: 2), "l": IDXBuilder.labels([1, 12, 2])])
        defer { Fixtures.removeTemporary(url) }
        let error = #expect(throws: FileError.self) {
            try Dataset.load(name: "t", imagesPath: url.appendingPathComponent("i").path, labelsPath: url.appendingPathComponent("l").path)
        }
        #expect(error?.file == url.appendingPathComponent("l").path)
        #expect(error?.problem == "label 12 at index 1 is not a digit class 0-9")
    }

    @Test("missing files, directories and unreadable files")
    func missingAndUnreadable() throws {
        let url = directory(["i": IDXBuilder.images(count: 1, rows: 2, columns: 2)])
        defer { Fixtures.removeTemporary(url) }
        #expect(throws: FileError(file: url.path + "/nothing", problem: "no such file", kind: .missing)) {
            try IDX.read(path: url.path + "/nothing", kind: .images)
        }
        #expect(throws: FileError(file: url.path, problem: "is a directory, not a data file")) {
            try IDX.read(path: url.path, kind: .images)
        }
        // Root reads any file whatever its mode, so this case exists only for other users.
        if getuid() != 0 {
            let path = url.appendingPathComponent("i").path
            chmod(path, 0)
            #expect(throws: FileError(file: path, problem: "permission denied (the file is not readable)")) {
                try IDX.read(path: path, kind: .images)
            }
        }
    }

    @Test("a directory without data says how to get it")
    func emptyDirectory() throws {
        let url = directory([:])
        defer { Fixtures.removeTemporary(url) }
        let error = #expect(throws: FileError.self) { try DatasetFiles.load(.mnist, directory: url.path, split: nil) }
        #expect(error?.file == url.path + "/t10k-images-idx3-ubyte.gz")
        #expect(error?.problem.contains("scripts/fetch-mnist.sh") == true)
        let standard = #expect(throws: FileError.self) { try DatasetFiles.load(.mnist, directory: url.path, split: .standard) }
        #expect(standard?.problem.hasPrefix("missing") == true)
    }

    @Test("an empty dataset loads as empty (the trainer refuses it)")
    func emptyDataset() throws {
        let url = directory(["i": IDXBuilder.images(count: 0, rows: 28, columns: 28), "l": IDXBuilder.labels([])])
        defer { Fixtures.removeTemporary(url) }
        let dataset = try Dataset.load(name: "t", imagesPath: url.appendingPathComponent("i").path, labelsPath: url.appendingPathComponent("l").path)
        #expect(dataset.count == 0)
    }
}
