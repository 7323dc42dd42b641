// How a run ends when it cannot finish: an exit code from a documented table, and one message.

/// The exit codes of mnist-dist (documented in the README, "Long runs and failures").
public enum ExitCode: Int32, Sendable, CaseIterable {
    case success = 0
    /// An invalid option or value (swift-argument-parser's usage code).
    case usage = 64
    /// A data or checkpoint file is malformed, or does not fit the run.
    case badInput = 65
    /// A data or checkpoint file is missing.
    case missingInput = 66
    /// The ranks disagree (options, data, parameters) or MPI failed.
    case ranksDisagree = 69
    /// A bug: an internal error.
    case software = 70
    /// A checkpoint or output could not be written (permissions, disk full).
    case cannotWrite = 73
    /// Stopped by a signal after writing a checkpoint: resume with --resume.
    case stopped = 75
    /// The loss or a gradient became infinite or NaN.
    case diverged = 76
    /// A rank did not arrive at a collective within the stall deadline; the last checkpoint is intact.
    case stalled = 79

    public var meaning: String {
        switch self {
        case .success: return "finished"
        case .usage: return "invalid option or value"
        case .badInput: return "malformed or unsuitable data or checkpoint file"
        case .missingInput: return "missing data or checkpoint file"
        case .ranksDisagree: return "ranks disagree, or MPI failed"
        case .software: return "internal error"
        case .cannotWrite: return "cannot write a checkpoint or output"
        case .stopped: return "stopped by a signal; a checkpoint was written, resume with --resume"
        case .diverged: return "training diverged (loss or gradient not finite, or the loss exploded)"
        case .stalled: return "a rank stalled (named in the message); the last checkpoint is intact, resume from it"
        }
    }
}

/// A run that ends early. `message` is nil on ranks that stay silent because another rank reported the problem.
public struct RunError: Error, CustomStringConvertible {
    public let code: ExitCode
    public let message: String?
    public init(_ code: ExitCode, _ message: String?) {
        self.code = code
        self.message = message
    }
    public var description: String { message ?? "(reported by another rank)" }
}

extension RunError {
    /// The exit code of a file's problem comes from its kind.
    public init(_ error: FileError) {
        let code: ExitCode = switch error.kind {
        case .missing: .missingInput
        case .malformed: .badInput
        case .unwritable: .cannotWrite
        }
        self.init(code, error.description)
    }
}
