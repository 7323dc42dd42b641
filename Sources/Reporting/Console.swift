// What a run prints: rank 0 reports (every rank, prefixed, with --verbose), errors go to stderr, and the progress of
// an epoch is a bar updated in place when a person watches a terminal, or plain lines (about ten an epoch) in a log.
import Foundation
import Support

/// How progress within an epoch is shown.
public enum ProgressStyle: String, CaseIterable, Sendable, CustomStringConvertible {
    /// A bar when the output goes to a person's terminal (`Terminal.isInteractive`), lines otherwise.
    case auto
    case bar
    case lines
    case none
    public var description: String { rawValue }
}

/// Rank-aware printing.
public final class Console: @unchecked Sendable {
    public let rank: Int
    public let ranks: Int
    public let verbose: Bool
    public let quiet: Bool
    public let progress: ProgressStyle
    private var barVisible = false
    private var lastLineFraction = -1.0

    public init(rank: Int, ranks: Int, verbose: Bool = false, quiet: Bool = false, progress: ProgressStyle = .auto) {
        self.rank = rank
        self.ranks = ranks
        self.verbose = verbose
        self.quiet = quiet
        if progress == .auto {
            self.progress = Terminal.isInteractive() && !quiet ? .bar : .lines
        } else {
            self.progress = progress
        }
    }

    /// Whether this rank prints reports.
    public var speaks: Bool { rank == 0 || verbose }

    private var prefix: String { verbose && ranks > 1 ? "[rank \(rank)] " : "" }

    /// A report line (results, summaries) from rank 0, or from every rank with --verbose.
    public func report(_ line: String) {
        guard speaks else { return }
        clearBar()
        emit(prefix + line)
    }

    /// A detail line, suppressed by --quiet.
    public func info(_ line: String) {
        guard !quiet else { return }
        report(line)
    }

    /// A line from every rank when --verbose (per-rank diagnostics), otherwise nothing.
    public func detail(_ line: String) {
        guard verbose else { return }
        clearBar()
        emit(prefix + line)
    }

    /// An error or warning on stderr, from whichever rank has it.
    public func error(_ line: String) {
        clearBar()
        FileHandle.standardError.write(Data(((ranks > 1 ? "[rank \(rank)] " : "") + line + "\n").utf8))
    }

    /// Progress within an epoch: `batch` of `batches` batches of epoch `epoch` of `epochs` (counted from 1) done.
    public func progress(epoch: (Int, of: Int), batch: (Int, of: Int), figures: ProgressFigures) {
        guard rank == 0, !quiet else { return }
        let ((epoch, epochs), (batch, batches)) = (epoch, batch)
        let fraction = Double(batch) / Double(max(batches, 1))
        let numbers = String(format: "loss %.4f  %6.0f samples/s  ETA %@", figures.loss, figures.samplesPerSecond,
                             formatDuration(figures.secondsLeft))
        switch progress {
        case .bar:
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "epoch \(epoch)/\(epochs) \(bar) \(batch)/\(batches)  \(numbers)"
            FileHandle.standardOutput.write(Data(("\r" + line + "\u{1B}[K").utf8))
            barVisible = batch < batches
            if !barVisible { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        case .lines:
            // About ten lines an epoch.
            if fraction - lastLineFraction >= 0.1 || batch == batches || batch == 1 {
                lastLineFraction = batch == batches ? -1 : fraction
                emit("epoch \(epoch)/\(epochs) batch \(batch)/\(batches)  \(numbers)")
            }
        case .none, .auto:
            break
        }
    }

    /// Prints a line and flushes it: output reaches a pipe (mpirun, tee, CI logs) as it is printed.
    private func emit(_ line: String) {
        print(line)
        fflush(nil)
    }

    private func clearBar() {
        if barVisible {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
            barVisible = false
        }
    }
}

/// The figures of a progress line: the epoch's mean loss so far, its speed, and the time it has left.
public struct ProgressFigures {
    public let loss: Double
    public let samplesPerSecond: Double
    public let secondsLeft: Double
    public init(loss: Double, samplesPerSecond: Double, secondsLeft: Double) {
        self.loss = loss
        self.samplesPerSecond = samplesPerSecond
        self.secondsLeft = secondsLeft
    }
}

/// Whether standard output reaches a person's terminal.
///
/// Alone, that is `isatty`. Under Open MPI it is not: mpirun gives every rank a pseudo-terminal of its own, even
/// when mpirun's own output goes to a file, so `isatty` is always true there and a log would fill with one bar
/// frame per step. There the answer is whether mpirun's own standard output is a terminal: the rank finds its
/// launcher among its ancestors (mpirun, mpiexec, orterun, prterun) and reads where that process's descriptor 1
/// points. A rank started by a remote daemon (orted, prted) or one whose launcher cannot be found prints lines.
/// Slurm's srun passes output through pipes (a terminal only with --pty), so `isatty` answers rightly under it.
public enum Terminal {
    public static func isInteractive(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard isatty(STDOUT_FILENO) == 1 else { return false }
        guard environment["OMPI_COMM_WORLD_SIZE"] != nil else { return true }
        var pid = getppid()
        for _ in 0..<8 where pid > 1 {
            let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if ["mpirun", "mpiexec", "orterun", "prterun"].contains(name) { return isTerminal(process: pid, descriptor: 1) }
            if ["orted", "prted"].contains(name) { return false }
            pid = parent(of: pid)
        }
        return false
    }

    /// Whether another process's descriptor points at a terminal (a pseudo-terminal or a console).
    static func isTerminal(process: pid_t, descriptor: Int32) -> Bool {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process)/fd/\(descriptor)") else {
            return false
        }
        return target.hasPrefix("/dev/pts/") || target.hasPrefix("/dev/tty") || target == "/dev/console"
    }

    /// The parent of a process (/proc/PID/stat's fourth field; the name before it may hold spaces).
    static func parent(of pid: pid_t) -> pid_t {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) ?? 0 : 0
    }
}
