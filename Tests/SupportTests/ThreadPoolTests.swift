// The shared helpers: the thread pool that runs every parallel loop, and the small numeric helpers.
import Dispatch
import Foundation
import Support
import Testing
import TestSupport

@Suite("Helpers", .limit(minutes: 1))
struct HelperTests {
    @Test("argmax takes the first of equal largest values, as numpy's and PyTorch's do")
    func argmaxTies() {
        let values: [Float] = [0, 3, 3, 1, /* row 1 */ -1, -2, -1, -5]
        values.withUnsafeBufferPointer { buffer in
            #expect(argmax(buffer, row: 0, classes: 4) == 1)
            #expect(argmax(buffer, row: 1, classes: 4) == 0)
        }
    }

    @Test("a file error names the file and its problem; a setting error the setting and its value")
    func errorWording() {
        #expect(FileError(file: "a.ckpt", problem: "is truncated").description == "a.ckpt: is truncated")
        #expect(SettingError(setting: "learning_rate", value: "-1", problem: "must be positive").description
                == "learning_rate -1: must be positive")
    }

    @Test("a failed system call says what failed and why, in words")
    func systemError() {
        #expect(throws: SystemError.self) { try readFile("/no/such/file") }
        do { _ = try readFile("/no/such/file") } catch {
            #expect(error.description == "cannot open it: no such file or directory")
        }
    }
}

/// The pool that runs the parallel loops: every part runs once per loop, whatever the timing, whether its threads
/// spin or have parked, and when loops overlap (two callers, or a part that starts a loop of its own).
@Suite("ThreadPool", .limit(minutes: 5))
struct ThreadPoolTests {
    /// Runs `loops` loops of `parts` parts on the shared pool and returns how often each part of each loop ran.
    private func counts(loops: Int, parts: Int, threads: Int?, pauseMicroseconds: UInt32 = 0) -> [Int] {
        let runs = UnsafeMutableBufferPointer<Int>.allocate(capacity: loops * parts)
        defer { runs.deallocate() }
        runs.initialize(repeating: 0)
        for loop in 0..<loops {
            ThreadPool.shared.run(parts: parts, threads: threads) { part in runs[loop * parts + part] += 1 }
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
        return Array(runs)
    }

    @Test("each part of each loop runs exactly once", arguments: [(1, nil), (2, nil), (3, 2), (17, 2), (64, 4), (5, 1)] as [(Int, Int?)])
    func everyPartOnce(parts: Int, threads: Int?) {
        let runs = counts(loops: 20_000 / parts, parts: parts, threads: threads)
        #expect(runs.allSatisfy { $0 == 1 }, "\(runs.filter { $0 != 1 }.count) parts ran other than once")
    }

    /// A pause longer than the spin lets the threads park; the next loop must wake them (or run without them).
    @Test("loops after the threads have parked still run every part once")
    func afterParking() {
        let pause = UInt32(ThreadPool.spinNanoseconds / 1000 * 3)
        let runs = counts(loops: 30, parts: 4, threads: 4, pauseMicroseconds: pause)
        #expect(runs.allSatisfy { $0 == 1 })
    }

    @Test("loops from several threads at once, and a loop inside a part, run every part once")
    func overlapping() {
        let callers = 4, loops = 2_000, parts = 6
        let runs = UnsafeMutableBufferPointer<Int>.allocate(capacity: callers * loops * parts * parts)
        defer { runs.deallocate() }
        runs.initialize(repeating: 0)
        let shared = UncheckedSendable(runs)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for loop in 0..<loops {
                ThreadPool.shared.run(parts: parts) { outer in
                    ThreadPool.shared.run(parts: parts) { inner in
                        shared.value[((caller * loops + loop) * parts + outer) * parts + inner] += 1
                    }
                }
            }
        }
        #expect(runs.allSatisfy { $0 == 1 })
    }

    @Test("a loop of no parts runs nothing; one part runs on the caller")
    func trivialLoops() {
        ThreadPool.shared.run(parts: 0) { _ in Issue.record("a part of an empty loop ran") }
        let caller = pthread_self()
        var same = false
        ThreadPool.shared.run(parts: 1) { _ in same = pthread_equal(pthread_self(), caller) != 0 }
        #expect(same)
    }
}
