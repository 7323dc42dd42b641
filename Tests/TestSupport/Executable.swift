// Runs the built mnist-dist executable, alone or under real mpirun, with a deadline, and captures what it did.
import Foundation

/// What a run of the executable did.
public struct RunResult: CustomStringConvertible {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    /// True when the deadline passed and the run was killed.
    public let timedOut: Bool
    public let seconds: Double
    public var output: String { stdout + stderr }
    public var description: String {
        "exit \(status)\(timedOut ? " (killed after the deadline)" : "") in \(String(format: "%.1f", seconds)) s\n"
            + "--- stdout\n\(stdout.suffix(3000))\n--- stderr\n\(stderr.suffix(3000))"
    }
}

public enum MnistDist {
    /// The executable built beside the test bundle (scripts/test.sh builds both into the same directory).
    public static let executable: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("mnist-dist").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return Fixtures.packageRoot.appendingPathComponent(".build/release/mnist-dist").path
    }()

    /// mpirun's options for the tests: as root if we are, more ranks than cores, shared memory only, no binding.
    public static var mpirunOptions: [String] {
        var options = ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader"]
        if getuid() == 0 { options.append("--allow-run-as-root") }
        return options
    }

    /// Runs `mnist-dist arguments` (under `mpirun -np ranks` when `ranks` is given), killing it after `timeout`.
    /// - Parameters:
    ///   - onStart: called with the launched process's id, e.g. to signal it later.
    ///   - onLine: called with each line of standard output as it arrives, and the launched process's id: a test
    ///     acts on the run's own progress ("epoch  1/3"), not on a delay that a faster CPU outruns.
    @discardableResult
    public static func run(_ arguments: [String], ranks: Int? = nil, mpmd: [[String]]? = nil, environment: [String: String] = [:],
                           timeout: Double = 300, onStart: ((Int32) -> Void)? = nil,
                           onLine: (@Sendable (String, Int32) -> Void)? = nil) -> RunResult {
        let process = Process()
        if let mpmd {
            // mpirun -np 1 exe args : -np 1 exe args ... (one program line per rank).
            process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
            var all = mpirunOptions
            for (index, rankArguments) in mpmd.enumerated() {
                if index > 0 { all.append(":") }
                all += ["-np", "1", executable] + rankArguments
            }
            process.arguments = all
        } else if let ranks {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
            process.arguments = mpirunOptions + ["-np", "\(ranks)", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        variables["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        process.environment = variables
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let collectedOut = Collected(), collectedErr = Collected()
        let launched = LaunchedProcess()
        out.fileHandleForReading.readabilityHandler = { handle in
            let lines = collectedOut.append(handle.availableData)
            guard let onLine, !lines.isEmpty else { return }
            while launched.pid == 0 { usleep(1000) }  // output can come before `run()` has returned the id
            for line in lines { onLine(line, launched.pid) }
        }
        err.fileHandleForReading.readabilityHandler = { collectedErr.append($0.availableData) }
        let start = Date()
        // The child inherits this thread's signal mask, and test threads block signals: spawn with none blocked, or
        // mpirun and the ranks would never see the SIGTERM or SIGUSR1 a test sends.
        var none = sigset_t(), saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        do {
            try process.run()
        } catch {
            return RunResult(status: -1, stdout: "", stderr: "could not start: \(error)", timedOut: false, seconds: 0)
        }
        launched.pid = process.processIdentifier
        onStart?(process.processIdentifier)
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        collectedOut.append(out.fileHandleForReading.readDataToEndOfFile())
        collectedErr.append(err.fileHandleForReading.readDataToEndOfFile())
        return RunResult(status: process.terminationStatus, stdout: collectedOut.text, stderr: collectedErr.text,
                         timedOut: timedOut, seconds: Date().timeIntervalSince(start))
    }

    /// Process ids of running mnist-dist processes (to find ranks, or check none is left over).
    public static func runningProcesses() -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        // By the executable itself, not the command line: a process that only looks like mnist-dist (the time-limit
        // test's bystander, left behind by a crashed test process) is not one.
        return entries.compactMap(Int32.init).filter { pid in
            guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return false }
            return executable.hasSuffix("/mnist-dist")
        }
    }
}

/// Bytes collected from a pipe on another thread (a readability handler appends, the test reads).
public final class Collected: @unchecked Sendable {
    private var data = Data()
    /// Where the line not yet ended starts.
    private var lineStart = 0
    private let lock = NSLock()
    public init() {}
    /// Adds `more`; returns the lines it completed.
    @discardableResult
    public func append(_ more: Data) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        data.append(more)
        var lines: [String] = []
        while let end = data[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: data[lineStart..<end], as: UTF8.self))
            lineStart = end + 1
        }
        return lines
    }
    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The launched process's id, set before any output can arrive and read by the output handler.
private final class LaunchedProcess: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int32 = 0
    var pid: Int32 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

extension MnistDist {
    /// Runs a shell command line and returns its exit status.
    @discardableResult
    public static func shell(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        var none = sigset_t(), saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
