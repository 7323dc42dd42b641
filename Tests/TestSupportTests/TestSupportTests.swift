// The test helpers that keep the suite from hanging: buffer comparisons that report counts (never a diff), and
// time limits that end a test which never returns.
import Foundation
import Testing
import TestSupport

@Suite("Buffer comparisons", .limit(minutes: 5))
struct DifferencesTests {
    @Test("identical buffers, and the count, first indices and largest difference of ones that differ")
    func counts() {
        #expect(differences([Float](repeating: 1, count: 1000), [Float](repeating: 1, count: 1000)).none)
        var a = [Float](repeating: 0.5, count: 1000), b = a
        for index in [3, 10, 11, 12, 500, 999] { b[index] += 1e-3 }
        b[500] = 2
        let d = differences(a, b)
        #expect(!d.none && d.differing == 6 && d.first == [3, 10, 11, 12, 500])
        #expect(d.largest?.index == 500 && d.largest?.expected == 2)
        #expect(d.description.hasPrefix("6 of 1000 elements differ, first at 3, 10, 11, 12, 500, …; largest |difference| 1.5 at 500"),
                "\(d)")
        a.append(0)
        #expect(differences(a, b).description.hasPrefix("lengths differ: 1001 against 1000 expected"))
    }

    @Test("Floats by bit pattern: -0 is not +0, a NaN is the same NaN")
    func bitPatterns() {
        #expect(differences([Float(-0.0)], [Float(0.0)]).differing == 1)
        #expect(differences([Float.nan], [Float.nan]).none)
        #expect(differences([Double(-0.0)], [0.0]).differing == 1)
        #expect(differences(Data([1, 2, 3]), Data([1, 2, 4])).first == [2])
    }

    @Test("a million elements that all differ are counted, not diffed")
    func large() {
        let count = 1_200_000
        let a = (0..<count).map { Float($0) }, b = (0..<count).map { Float($0) + 0.5 }
        let d = differences(a, b)
        #expect(d.differing == count && d.first == Array(0..<5))
    }
}

/// Set by `hungTestStops` for the run of the test binary it starts: the one test that hangs on purpose.
private let hangOnPurpose = ProcessInfo.processInfo.environment["MNIST_DIST_TEST_HANG"] == "1"

@Suite("Time limits", .limit(minutes: 5))
struct TimeLimitTests {
    @Test("a watchdog that is not cancelled expires once its time is up; a cancelled one never does")
    func watchdog() async throws {
        let fired = Flag(), cancelledFired = Flag()
        let started = Date()
        _ = Watchdog(seconds: 0.2, message: "") { fired.set() }
        let cancelled = Watchdog(seconds: 0.2, message: "") { cancelledFired.set() }
        cancelled.cancel()
        while !fired.value && Date().timeIntervalSince(started) < 10 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(fired.value && Date().timeIntervalSince(started) >= 0.2)
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(!cancelledFired.value)
    }

    @Test("stands still, on purpose, when MNIST_DIST_TEST_HANG=1 (hungTestStops runs it)",
          .enabled(if: hangOnPurpose), .limit(seconds: 2))
    func hangs() throws {
        let child = Process()  // a process of the test's own, which the time limit must end too
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["600"]
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        FileHandle.standardError.write(Data("child pid \(child.processIdentifier)\n".utf8))
        while true { sleep(1) }
    }

    @Test("a test that never returns is stopped at its limit: exit 124, the test named, its child process ended, no other")
    func hungTestStops() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--testing-library", "swift-testing", "--filter", "TimeLimitTests/hangs"]
        process.environment = ProcessInfo.processInfo.environment.merging(["MNIST_DIST_TEST_HANG": "1"]) { $1 }
        let errors = Pipe(), collected = Collected()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        // Read as it comes, not to the end: a child left running would hold the pipe open for ever.
        errors.fileHandleForReading.readabilityHandler = { collected.append($0.availableData) }
        // A process of this test's own, not the hung test's, that looks like a run of mnist-dist (another test's, or
        // another test run's): the time limit must leave it alone.
        let directory = Fixtures.makeTemporaryDirectory("bystander")
        defer { Fixtures.removeTemporary(directory) }
        let disguised = directory.appendingPathComponent("mnist-dist")
        try FileManager.default.createSymbolicLink(at: disguised, withDestinationURL: URL(fileURLWithPath: "/bin/sleep"))
        let bystander = Process()
        bystander.executableURL = disguised
        bystander.arguments = ["600"]
        bystander.standardOutput = FileHandle.nullDevice
        bystander.standardError = FileHandle.nullDevice
        try bystander.run()
        defer { kill(bystander.processIdentifier, SIGKILL) }  // SIGTERM: blocked, as in every thread of the tests
        let started = Date()
        try process.run()
        process.waitUntilExit()
        usleep(200_000)
        errors.fileHandleForReading.readabilityHandler = nil
        let message = collected.text
        #expect(process.terminationStatus == 124, "\(message)")
        #expect(message.contains("error: the test \"stands still, on purpose, when MNIST_DIST_TEST_HANG=1 (hungTestStops runs it)\" "
                                 + "(TestSupportTests.swift:"), "\(message)")
        #expect(message.contains("ran past its time limit of 2 s; ending the test process (exit 124)"), "\(message)")
        #expect(Date().timeIntervalSince(started) < 60)
        let child = try #require(message.split(separator: "\n").first { $0.hasPrefix("child pid ") }.flatMap { Int32($0.dropFirst(10)) },
                                 "\(message)")
        let state = (try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8))?.split(separator: ")").last?
            .split(separator: " ").first
        #expect(state == nil || state == "Z", "the hung test's child (pid \(child)) is still running")
        #expect(bystander.isRunning, "a process the hung test did not start was ended too")
    }
}
