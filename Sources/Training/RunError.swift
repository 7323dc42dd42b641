// How a run ends when it cannot finish: an exit code from a documented table, and one message.
import Distributed

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
        case .diverged: return "training diverged (loss or gradient not finite)"
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

extension Communicator {
    /// Runs `body` on every rank and agrees on the outcome, so that a failure on some ranks (a missing file on
    /// one host) ends every rank the same way instead of leaving the others waiting in a collective.
    ///
    /// If any rank's `body` throws, every rank throws a `RunError` with the code of the lowest failing rank; only
    /// that rank's error carries the message, so it is printed once.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var failure = RunError(.software, nil)
        do {
            result = try body()
        } catch let error as RunError {
            failure = error
        } catch {
            failure = RunError(.software, "\(error)")
        }
        let failing: Int64
        let code: Int64
        do {
            failing = try allReduce(result == nil ? Int64(rank) : Int64(size), .min)
            code = try allReduce(result == nil && Int64(rank) == failing ? Int64(failure.code.rawValue) : 0, .max)
        } catch {
            throw RunError(.ranksDisagree, "\(error)")
        }
        if failing == Int64(size), let result { return result }
        throw RunError(ExitCode(rawValue: Int32(code)) ?? .software, Int64(rank) == failing ? failure.message : nil)
    }
}
