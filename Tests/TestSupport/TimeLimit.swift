// A time limit that holds even for a test that never returns. Swift Testing's own `.timeLimit` cancels a test's task,
// which a test blocked in a system call, a busy loop or a wait for a child process never notices, so the run would
// wait for it as long as CI lets it. Here a watchdog on a dispatch queue times each test case; past its limit it names
// the test on standard error, ends the processes the tests started (a hung mpirun and its ranks would otherwise run on
// as orphans) and the test process, so that the run fails at once with the culprit named.
import Foundation
import Testing

/// Ends the process (after saying why) unless cancelled within `seconds`.
public final class Watchdog: @unchecked Sendable {
    // @unchecked Sendable: `cancelled` is read and written under `lock` only.
    private let lock = NSLock()
    private var cancelled = false

    /// Starts the watch; `onExpiry` runs on a dispatch queue's thread when the time is up and nobody cancelled it.
    /// - Parameter onExpiry: by default, prints `message` to standard error and ends the process with exit 124
    ///   (the code `timeout` uses), flushing what the tests printed first.
    public init(seconds: Double, message: String, onExpiry: (@Sendable () -> Void)? = nil) {
        let expire = onExpiry ?? { Watchdog.endProcess(message) }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            if !lock.withLock({ cancelled }) { expire() }
        }
    }

    /// Stops the watch: the expiry will not run.
    public func cancel() { lock.withLock { cancelled = true } }

    /// Prints `message` on standard error, kills every process this one started and theirs (a hung mpirun and the
    /// ranks it started), and ends the process with exit 124. Nothing else is touched: another test run's processes
    /// on the same machine go on.
    public static func endProcess(_ message: String) -> Never {
        fflush(nil)
        FileHandle.standardError.write(Data(("\n" + message + "\n").utf8))
        for pid in descendants() { kill(pid, SIGKILL) }
        _exit(124)
    }

    /// The processes this one started, and theirs, read from /proc (each /proc/PID/stat names its parent).
    static func descendants() -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries.compactMap(Int32.init) {
            // "pid (command) state ppid ...": the command may hold spaces and parentheses, so read after the last ')'.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(pid) }
        }
        var found: [Int32] = [], queue = [getpid()]
        while let next = queue.popLast() {
            let direct = children[next] ?? []
            found += direct
            queue += direct
        }
        return found
    }
}

/// A time limit for each test case of a test or, on a suite, of every test in it: past it the test process ends,
/// naming the test (see `Watchdog`).
public struct TimeLimit: TestTrait, SuiteTrait, TestScoping {
    public let seconds: Double

    public var isRecursive: Bool { true }

    /// Each test case is timed on its own; a suite's time is its tests'.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> TimeLimit? {
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?,
                             performing function: @Sendable () async throws -> Void) async throws {
        let place = "\(test.sourceLocation.fileName):\(test.sourceLocation.line)"
        let watchdog = Watchdog(seconds: seconds, message: "error: the test \"\(test.displayName ?? test.name)\" (\(place)) ran "
                                + "past its time limit of \(Self.describe(seconds)); ending the test process (exit 124)")
        defer { watchdog.cancel() }
        try await function()
    }

    static func describe(_ seconds: Double) -> String {
        if seconds >= 60 && seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60)) min" }
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}

extension Trait where Self == TimeLimit {
    /// Every test case under this trait must end within `minutes`, or the test process ends naming it.
    public static func limit(minutes: Double) -> TimeLimit { TimeLimit(seconds: minutes * 60) }
    /// Every test case under this trait must end within `seconds`, or the test process ends naming it.
    public static func limit(seconds: Double) -> TimeLimit { TimeLimit(seconds: seconds) }
}
