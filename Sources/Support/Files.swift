// Whole-file reads and atomic, durable writes, with errors in plain words.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call on a file: what failed, and why in the C library's words (from errno).
public struct SystemError: Error, CustomStringConvertible {
    public let description: String
    /// The errno it came from.
    public let code: Int32
    public init(_ operation: String, _ code: Int32 = errno) {
        self.code = code
        let reason: String
        switch code {
        case ENOSPC: reason = "no space left on the device"
        case EFBIG: reason = "file too large (a file size limit is in force)"
        case EDQUOT: reason = "disk quota exceeded"
        case EACCES, EPERM: reason = "permission denied"
        case EROFS: reason = "read-only file system"
        case ENOENT: reason = "no such file or directory"
        case EISDIR: reason = "is a directory"
        default: reason = String(cString: strerror(code))
        }
        description = "\(operation): \(reason)"
    }
}

/// The bytes of the file at `path`.
public func readFile(_ path: String) throws(SystemError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("cannot open it") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw SystemError("cannot read its size") }
    guard (info.st_mode & S_IFMT) != S_IFDIR else { throw SystemError("cannot read it", EISDIR) }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var filled = 0
    while filled < bytes.count {
        let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            if count == 0 { bytes.removeLast(bytes.count - filled); break }
            throw SystemError("read failed")
        }
        filled += count
    }
    return bytes
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the new one, also after a
/// crash: temporary file in the same directory, write, fsync, rename over `path`, fsync the directory.
public func writeFileAtomically(_ bytes: [UInt8], to path: String) throws(SystemError) {
    let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
    var template = Array("\(directory)/.\((path as NSString).lastPathComponent).tmp-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw SystemError("cannot create a file in \(directory)") }
    let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var committed = false
    defer {
        if !committed { unlink(temporary) }
    }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            let code = errno
            close(fd)
            throw SystemError("writing failed", code)
        }
        written += count
    }
    guard fsync(fd) == 0 else {
        let code = errno
        close(fd)
        throw SystemError("flushing to disk failed", code)
    }
    guard close(fd) == 0 else { throw SystemError("closing failed") }
    fchmodAt(temporary)
    guard rename(temporary, path) == 0 else { throw SystemError("cannot move the new file into place") }
    committed = true
    let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryDescriptor >= 0 {
        fsync(directoryDescriptor)
        close(directoryDescriptor)
    }
}

/// mkstemp creates files readable by the owner only; a checkpoint is as readable as any other output.
private func fchmodAt(_ path: String) {
    let mask = umask(0)
    umask(mask)
    chmod(path, 0o666 & ~mask)
}

/// An error's text: its description when it has one.
public func describe(_ error: Error) -> String {
    String(describing: error)
}
