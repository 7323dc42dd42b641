// The two kinds of user-facing problem every module can meet: a file that is missing, malformed or cannot be
// written, and a setting out of range. The command line turns each into one line and an exit code.

/// A problem with a file mnist-dist reads or writes: which file, and what is wrong with it.
public struct FileError: Error, CustomStringConvertible, Equatable {
    /// What kind of problem, for the exit code (never read from the wording).
    public enum Kind: Sendable { case missing, malformed, unwritable }

    /// The file (path or name) the problem is in.
    public let file: String
    /// What is wrong, as a phrase that follows the file name.
    public let problem: String
    public let kind: Kind

    public init(file: String, problem: String, kind: Kind = .malformed) {
        self.file = file
        self.problem = problem
        self.kind = kind
    }

    public var description: String { "\(file): \(problem)" }
}

/// A setting out of range: its name as checkpoints record it (snake_case, never a command-line spelling), the
/// value, and what is allowed.
public struct SettingError: Error, CustomStringConvertible, Equatable {
    public let setting: String
    public let value: String
    public let problem: String

    public init(setting: String, value: String, problem: String) {
        self.setting = setting
        self.value = value
        self.problem = problem
    }

    public var description: String { "\(setting) \(value): \(problem)" }
}
