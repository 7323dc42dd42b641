// Checkpoint files: read and verified, written atomically, kept in a directory of which the newest K survive.
import Foundation
import Support

extension Checkpoint {
    /// Reads and verifies the checkpoint at `path`.
    public static func read(path: String) throws(FileError) -> Checkpoint {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path)
        } catch {
            throw FileError(file: path, problem: error.description, kind: error.code == ENOENT ? .missing : .malformed)
        }
        return try decode(bytes, name: path)
    }

    /// Writes the checkpoint to `path` atomically: a temporary file in the same directory, flushed and fsynced,
    /// renamed over `path`, then the directory fsynced. On failure the temporary file is removed and whatever was at
    /// `path` is untouched.
    public func write(to path: String) throws(FileError) {
        do {
            try writeFileAtomically(encoded(), to: path)
        } catch {
            throw FileError(file: path, problem: error.description, kind: .unwritable)
        }
    }
}

/// A directory of numbered checkpoints, of which the newest K are kept.
public struct CheckpointDirectory: Sendable {
    public let path: String
    public let keep: Int

    public init(path: String, keep: Int = Defaults.checkpointsKept) {
        self.path = path
        self.keep = keep
    }

    /// The file name for a checkpoint taken after `step` steps.
    public func file(step: Int) -> String { "\(path)/checkpoint-\(String(format: "%09d", step)).ckpt" }

    /// Checkpoint files in the directory, oldest first (by step).
    public func files() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".ckpt") }.sorted().map { "\(path)/\($0)" }
    }

    /// Creates the directory if needed and checks that it is writable.
    public func prepare() throws(FileError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw FileError(file: path, problem: "cannot create the checkpoint directory (\(describe(error)))",
                                  kind: .unwritable)
        }
        guard access(path, W_OK) == 0 else {
            throw FileError(file: path, problem: "the checkpoint directory is not writable (\(String(cString: strerror(errno))))",
                                  kind: .unwritable)
        }
    }

    /// Writes `checkpoint` as the newest file, then removes all but the newest `keep`.
    public func save(_ checkpoint: Checkpoint) throws(FileError) -> String {
        let target = file(step: checkpoint.step)
        try checkpoint.write(to: target)
        let all = files()
        for old in all.dropLast(keep) { unlink(old) }
        return target
    }
}

/// Where `--resume` points: a checkpoint file, or a directory whose newest valid checkpoint is taken.
public func loadCheckpoint(from path: String, warn: (String) -> Void) throws(FileError) -> (Checkpoint, String) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw FileError(file: path, problem: "no such file or directory", kind: .missing)
    }
    guard isDirectory.boolValue else { return (try Checkpoint.read(path: path), path) }
    let files = CheckpointDirectory(path: path).files()
    guard !files.isEmpty else { throw FileError(file: path, problem: "holds no checkpoint-*.ckpt files") }
    for file in files.reversed() {
        do {
            return (try Checkpoint.read(path: file), file)
        } catch {
            warn("skipping \(error.description)")
        }
    }
    throw FileError(file: path, problem: "none of its \(files.count) checkpoints verifies")
}

