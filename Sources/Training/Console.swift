// What a run prints: rank 0 reports (every rank, prefixed, with --verbose), errors go to stderr, and the progress of
// an epoch is a bar updated in place on a terminal or plain lines elsewhere (as under mpirun, which pipes output).
import Foundation

/// How progress within an epoch is shown.
public enum ProgressStyle: String, CaseIterable, Sendable, CustomStringConvertible {
    /// A bar when standard output is a terminal, lines otherwise.
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
            self.progress = isatty(STDOUT_FILENO) == 1 && !quiet ? .bar : .lines
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

    /// Progress within an epoch.
    public func progress(epoch: Int, epochs: Int, batch: Int, batches: Int, loss: Double, samplesPerSecond: Double,
                         secondsLeft: Double) {
        guard rank == 0, !quiet else { return }
        let fraction = Double(batch) / Double(max(batches, 1))
        let numbers = String(format: "loss %.4f  %6.0f samples/s  ETA %@", loss, samplesPerSecond, formatDuration(secondsLeft))
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

/// 75 -> "1:15", 4000 -> "1:06:40".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite && seconds >= 0 else { return "--:--" }
    let total = Int(seconds.rounded())
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
}
