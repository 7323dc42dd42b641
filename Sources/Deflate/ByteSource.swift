// Byte sources for the IDX reader: a file read with read(2) in chunks, and a buffer in memory (for tests and the fuzzer).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Support

/// Something that hands out bytes in order, like a file.
public protocol ByteSource: AnyObject {
    /// Copies up to `buffer.count` bytes into `buffer`; returns how many (0 at the end).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A file opened for reading; closed when the source is released.
public final class FileSource: ByteSource {
    public let path: String
    private let descriptor: Int32
    /// The file's size in bytes when it was opened.
    public let size: Int

    public init(path: String) throws(FileError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw FileError(file: path, problem: Self.describeOpenError(code), kind: code == ENOENT ? .missing : .malformed)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw FileError(file: path, problem: "cannot read its size (\(String(cString: strerror(code))))")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw FileError(file: path, problem: "is a directory, not a data file")
        }
        self.descriptor = fd
        self.size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            throw FileError(file: path, problem: "read failed (\(String(cString: strerror(errno))))")
        }
    }

    private static func describeOpenError(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file"
        case EACCES: return "permission denied (the file is not readable)"
        default: return "cannot open it (\(String(cString: strerror(code))))"
        }
    }
}

/// Bytes already in memory.
public final class MemorySource: ByteSource {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var size: Int { bytes.count }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - position)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { all in
            buffer.baseAddress!.copyMemory(from: all.baseAddress! + position, byteCount: count)
        }
        position += count
        return count
    }
}
