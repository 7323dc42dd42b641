// Long runs and failures: resume (bit-identical at the same split, any rank count), clean stops on signals, a rank
// killed mid-epoch, divergence, unwritable or full checkpoint directories, and every kind of bad input — each with
// one clear line, a non-zero exit, every rank ended, nothing half-written.
import Checkpoints
import Foundation
import MNISTData
import Support
import Testing
import TestSupport
import Training

/// Arguments for a short CNN run of 3 epochs of 16 steps (batch 512) on the chapter split.
private func cnnRun(_ extra: [String]) -> [String] {
    ["train", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "3", "--batch-size", "512", "--progress", "none"] + extra
}

/// True for the line rank 0 prints when the first epoch has ended: two epochs of training are still to come, so a
/// signal sent then lands in training on any CPU (a fixed delay lands after the end on a fast one).
private func firstEpochEnded(_ line: String) -> Bool { line.hasPrefix("epoch  1/") }

/// The seconds an epoch line says its epoch took ("... test 0.7430  2.48 s  3225 samples/s ...").
private func epochSeconds(_ line: String) -> Double? {
    let words = line.split(separator: " ")
    return words.indices.dropFirst().first { words[$0] == "s" }.flatMap { Double(words[$0 - 1]) }
}

/// Runs `action` once, the first time it is asked to (from the output handler, which sees every line).
private final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func callAsFunction(_ action: () -> Void) {
        let first = lock.withLock { () -> Bool in defer { done = true }; return !done }
        if first { action() }
    }
}

/// When a process was stopped, and which (set from the stopping thread, read after the run).
private final class Stopwatch: @unchecked Sendable {
    private let lock = NSLock()
    private var stoppedAt: Date?
    private var stoppedPID: Int32?
    func mark(_ pid: Int32) { lock.withLock { (stoppedAt, stoppedPID) = (Date(), pid) } }
    var pid: Int32? { lock.withLock { stoppedPID } }
    var seconds: Double { lock.withLock { stoppedAt.map { Date().timeIntervalSince($0) } ?? .nan } }
}

/// True if this process may mount a tmpfs (root with CAP_SYS_ADMIN).
private let canMount: Bool = {
    let directory = Fixtures.makeTemporaryDirectory("mount")
    defer { Fixtures.removeTemporary(directory) }
    let mount = MnistDist.shell("mount -t tmpfs -o size=1m tmpfs '\(directory.path)' && umount '\(directory.path)'")
    return mount == 0
}()

extension EndToEnd {
    @Suite("Long runs and failures", .limit(minutes: 5))
    struct FaultTests {
        @Test("interrupted at step 20 and resumed, a run ends bit-identical to the uninterrupted one; also resumed under -np 2")
        func resumeIdentical() throws {
            let directory = Fixtures.makeTemporaryDirectory("resume")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            let whole = MnistDist.run(cnnRun(["--threads", "2", "--save", path("whole.ckpt")]))
            #expect(whole.status == 0, "\(whole)")
            // Stopped mid-epoch 2, resumed in one process.
            let first = MnistDist.run(cnnRun(["--threads", "2", "--checkpoint-dir", path("a"), "--stop-after", "20"]))
            #expect(first.status == ExitCode.stopped.rawValue && first.stderr.contains("stopped after step 20"), "\(first)")
            let resumed = MnistDist.run(cnnRun(["--threads", "2", "--checkpoint-dir", path("a"), "--resume", path("a"), "--save", path("a.ckpt")]))
            #expect(resumed.status == 0, "\(resumed)")
            #expect(resumed.stdout.contains("  resume   "), "\(resumed)")
            let reference = try Checkpoint.read(path: path("whole.ckpt"))
            let a = try Checkpoint.read(path: path("a.ckpt"))
            expectIdentical(a.parameters, reference.parameters, "parameters")
            expectIdentical(a.optimizerState, reference.optimizerState, "optimizer state")
            #expect(a.history.map(\.testAccuracy) == reference.history.map(\.testAccuracy))
            #expect(a.history.map(\.trainLoss) == reference.history.map(\.trainLoss), "the resumed epoch's loss includes its first part")
            // Resumed under mpirun -np 2 (one thread each: the same split of every batch) from the same checkpoint.
            let b = path("b")
            try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: CheckpointDirectory(path: path("a")).file(step: 20), toPath: b + "/checkpoint-000000020.ckpt")
            let distributed = MnistDist.run(cnnRun(["--threads", "1", "--resume", b, "--save", path("b.ckpt")]), ranks: 2)
            #expect(distributed.status == 0, "\(distributed)")
            expectIdentical(try Checkpoint.read(path: path("b.ckpt")).parameters, reference.parameters, "resumed under -np 2")
        }

        @Test("resumed with a different split of the batch (-np 3), the MLP ends within 1e-5 of the uninterrupted run")
        func resumeOtherRankCount() throws {
            let directory = Fixtures.makeTemporaryDirectory("resume3")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            let mlp = ["--model", "mlp", "--normalize", "none"]
            #expect(MnistDist.run(cnnRun(mlp + ["--save", path("whole.ckpt")])).status == 0)
            #expect(MnistDist.run(cnnRun(mlp + ["--checkpoint-dir", path("c"), "--stop-after", "25"])).status == 75)
            let resumed = MnistDist.run(cnnRun(mlp + ["--resume", path("c"), "--save", path("c.ckpt")]), ranks: 3)
            #expect(resumed.status == 0, "\(resumed)")
            let difference = E2E.relativeDifference(try Checkpoint.read(path: path("c.ckpt")).parameters,
                                                    try Checkpoint.read(path: path("whole.ckpt")).parameters)
            print("mlp resumed under -np 3: max difference \(difference) of the largest parameter")
            #expect(difference <= 1e-5)
        }

        @Test("a checkpoint of another model, or a damaged one, is refused with what differs or what is wrong")
        func refusedCheckpoints() throws {
            let directory = Fixtures.makeTemporaryDirectory("refuse")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            #expect(MnistDist.run(cnnRun(["--checkpoint-dir", path("cnn"), "--stop-after", "3"])).status == 75)
            let file = CheckpointDirectory(path: path("cnn")).file(step: 3)
            let otherModel = MnistDist.run(cnnRun(["--model", "mlp", "--resume", file]), ranks: 2)
            #expect(otherModel.status == ExitCode.badInput.rawValue, "\(otherModel)")
            #expect(otherModel.stderr.contains("the checkpoint was made with model cnn, but this run has model mlp"), "\(otherModel)")
            #expect(otherModel.stderr.components(separatedBy: "made with").count == 2, "printed once")
            let otherData = MnistDist.run(cnnRun(["--normalize", "none", "--resume", file]))
            #expect(otherData.stderr.contains("made with normalization standard, but this run has normalization none"), "\(otherData)")
            var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path("truncated.ckpt")))
            bytes[bytes.count / 3] ^= 0x04
            try bytes.write(to: URL(fileURLWithPath: path("flipped.ckpt")))
            for (name, problem) in [("truncated.ckpt", "damaged or truncated (CRC-32 mismatch"), ("flipped.ckpt", "CRC-32 mismatch")] {
                let run = MnistDist.run(cnnRun(["--resume", path(name)]), ranks: 2)
                #expect(run.status == ExitCode.badInput.rawValue && run.stderr.contains("\(name): is \(problem)") || run.stderr.contains(problem),
                        "\(run)")
            }
        }

        @Test("SIGTERM in one process: it stops after the step, writes a checkpoint, exits 75, and resumes to the same result")
        func sigterm() throws {
            let directory = Fixtures.makeTemporaryDirectory("sigterm")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            let once = Once()
            let run = MnistDist.run(cnnRun(["--threads", "2", "--checkpoint-dir", path("d")]), timeout: 120, onLine: { line, pid in
                if firstEpochEnded(line) { once { kill(pid, SIGTERM) } }
            })
            #expect(run.status == ExitCode.stopped.rawValue, "\(run)")
            #expect(run.stderr.contains("SIGTERM received"), "\(run)")
            let resumed = MnistDist.run(cnnRun(["--threads", "2", "--resume", path("d"), "--save", path("d.ckpt")]))
            #expect(resumed.status == 0, "\(resumed)")
            let whole = MnistDist.run(cnnRun(["--threads", "2", "--save", path("whole.ckpt")]))
            #expect(whole.status == 0, "\(whole)")
            expectIdentical(try Checkpoint.read(path: path("d.ckpt")).parameters, try Checkpoint.read(path: path("whole.ckpt")).parameters,
                            "resumed after SIGTERM")
        }

        @Test("SIGUSR1 to mpirun reaches every rank: they stop at the same step, one checkpoint, exit 75")
        func sigusr1UnderMPI() throws {
            let directory = Fixtures.makeTemporaryDirectory("sigusr1")
            defer { Fixtures.removeTemporary(directory) }
            let once = Once()
            let run = MnistDist.run(cnnRun(["--checkpoint-dir", directory.path]), ranks: 2, timeout: 120, onLine: { line, pid in
                if firstEpochEnded(line) { once { kill(pid, SIGUSR1) } }  // pid: mpirun's, which passes it on
            })
            #expect(run.status == ExitCode.stopped.rawValue, "\(run)")
            #expect(run.stderr.contains("SIGUSR1 received"), "\(run)")
            let files = CheckpointDirectory(path: directory.path).files()
            #expect(!files.isEmpty)
            for file in files { #expect(throws: Never.self) { try Checkpoint.read(path: file) } }
            usleep(300_000)
            #expect(MnistDist.runningProcesses().isEmpty)
        }

        @Test("a rank killed mid-epoch: the job ends, the checkpoints all verify, and resuming gives the uninterrupted result")
        func killedRankThenResume() throws {
            let directory = Fixtures.makeTemporaryDirectory("killed")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            let once = Once()
            let start = Date()
            let run = MnistDist.run(cnnRun(["--threads", "1", "--checkpoint-dir", path("e"), "--checkpoint-every", "5"]), ranks: 2,
                                    timeout: 120, onLine: { line, _ in
                if firstEpochEnded(line) { once { if let victim = MnistDist.runningProcesses().max() { kill(victim, SIGKILL) } } }
            })
            #expect(run.status != 0 && !run.timedOut, "\(run)")
            #expect(Date().timeIntervalSince(start) < 60)
            usleep(300_000)
            #expect(MnistDist.runningProcesses().isEmpty)
            let files = CheckpointDirectory(path: path("e")).files()
            #expect(!files.isEmpty, "no checkpoint before the kill")
            for file in files { #expect(throws: Never.self) { try Checkpoint.read(path: file) } }
            let resumed = MnistDist.run(cnnRun(["--threads", "1", "--resume", path("e"), "--save", path("e.ckpt")]), ranks: 2)
            #expect(resumed.status == 0, "\(resumed)")
            let whole = MnistDist.run(cnnRun(["--threads", "2", "--thread-mode", "workers", "--save", path("whole.ckpt")]))
            #expect(whole.status == 0, "\(whole)")
            expectIdentical(try Checkpoint.read(path: path("e.ckpt")).parameters, try Checkpoint.read(path: path("whole.ckpt")).parameters,
                            "resumed after the kill")
        }

        @Test("a rank stopped with SIGSTOP: within seconds of the deadline the job ends with exit 79 naming that rank and its pid; the checkpoints verify and resume to the uninterrupted result")
        func stalledRank() throws {
            let directory = Fixtures.makeTemporaryDirectory("stalled")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            // The stop lands wherever the rank is: in a step (the ranks share the host's step, whose barriers the
            // roll call covers), or inside a transfer every rank had arrived at (the watchdog holds the roll call
            // there); either way the rank is named. It lands a third of an epoch after the first epoch's line, timed
            // by that line's own epoch seconds: in the second epoch's steps on any CPU.
            func stopOneRank(checkpoints: String) throws -> (run: RunResult, stopped: Stopwatch, victim: pid_t) {
                let stopped = Stopwatch(), once = Once()
                let run = MnistDist.run(cnnRun(["--threads", "1", "--checkpoint-dir", checkpoints, "--checkpoint-every", "4",
                                                "--stall-timeout", "4"]), ranks: 2, timeout: 120, onLine: { line, _ in
                    guard firstEpochEnded(line) else { return }
                    let epochSeconds = epochSeconds(line) ?? 1
                    once {
                        Thread.detachNewThread {
                            usleep(UInt32(epochSeconds / 3 * 1e6))
                            if let victim = MnistDist.runningProcesses().max() {
                                stopped.mark(victim)
                                kill(victim, SIGSTOP)
                            }
                        }
                    }
                })
                return (run, stopped, try #require(stopped.pid, "\(run)"))
            }
            let directoryName = "c1"
            let (run, stopped, victim) = try stopOneRank(checkpoints: path(directoryName))
            defer { kill(victim, SIGCONT); kill(victim, SIGKILL) }
            #expect(run.status == ExitCode.stalled.rawValue && !run.timedOut, "\(run)")
            let waited = stopped.seconds
            #expect(waited < 25, "ended \(waited) s after the stop (deadline about 5 s, roll call 2 s)")
            // The deadline: --stall-timeout 4, or 10 times the slowest step when that is longer.
            #expect(run.stderr.contains(", pid \(victim)) did not arrive within the stall deadline (")
                    || run.stderr.contains(", pid \(victim)) froze during a transfer every rank had arrived at"), "\(run)")
            #expect(run.stderr.split(separator: "\n").filter { $0.contains("did not arrive") || $0.contains("froze during") }.count == 1,
                    "said once: \(run)")
            // Where the stop lands decides where the other rank waits: in a step, or in an epoch's end (its
            // evaluation and checkpoint are collectives too; one run here stopped the rank there).
            #expect(run.stderr.contains("was in step ") || run.stderr.contains("was in the end of epoch "),
                    "the waiting rank says where it waited: \(run)")
            usleep(500_000)
            #expect(MnistDist.runningProcesses().isEmpty, "the stopped rank was ended too")
            let files = CheckpointDirectory(path: path(directoryName)).files()
            #expect(!files.isEmpty, "no checkpoint before the stop")
            for file in files { #expect(throws: Never.self) { try Checkpoint.read(path: file) } }
            let resumed = MnistDist.run(cnnRun(["--threads", "1", "--resume", path(directoryName), "--save", path("resumed.ckpt")]), ranks: 2)
            #expect(resumed.status == 0, "\(resumed)")
            let whole = MnistDist.run(cnnRun(["--threads", "1", "--save", path("whole.ckpt")]), ranks: 2)
            #expect(whole.status == 0, "\(whole)")
            expectIdentical(try Checkpoint.read(path: path("resumed.ckpt")).parameters,
                            try Checkpoint.read(path: path("whole.ckpt")).parameters, "resumed after the stall")
        }

        /// The rank is stopped by a fault injected with LD_PRELOAD (Fixtures/stop-at-finalize.c) as it enters
        /// MPI_Finalize: past the barrier that ends the run, so the other rank passes it too and waits in
        /// MPI_Finalize, which only the watchdog's deadline ends. Stopping rank 0 or rank 1 leaves the other one to
        /// notice.
        @Test("a rank that freezes after the run's last line, entering MPI_Finalize: the job ends within the deadline, exit 79, the saved model intact",
              arguments: [1, 0])
        func frozenAtExit(rank: Int) throws {
            let directory = Fixtures.makeTemporaryDirectory("exit-stall")
            defer { Fixtures.removeTemporary(directory) }
            let library = directory.appendingPathComponent("libstop-at-finalize.so").path
            let source = Fixtures.packageRoot.appendingPathComponent("Tests/EndToEndTests/Fixtures/stop-at-finalize.c").path
            // cc, or the clang that comes with the Swift toolchain.
            try #require(MnistDist.shell("\"$(command -v cc || command -v clang)\" -shared -fPIC -o '\(library)' '\(source)' -ldl") == 0,
                         "no C compiler could build \(source)")
            let model = directory.appendingPathComponent("model.ckpt").path
            let lastLine = Stopwatch()
            let run = MnistDist.run(["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                     "--batch-size", "500", "--threads", "1", "--progress", "none", "--stall-timeout", "4",
                                     "--save", model],
                                    ranks: 2, environment: ["LD_PRELOAD": library, "MNIST_DIST_TEST_STOP_RANK": "\(rank)"],
                                    timeout: 120, onLine: { line, _ in
                if line.hasPrefix("parameter checksum") { lastLine.mark(0) }
            })
            #expect(run.status == ExitCode.stalled.rawValue && !run.timedOut, "\(run)")
            #expect(lastLine.pid != nil, "the run printed its last line before the stop: \(run)")
            #expect(lastLine.seconds < 20, "ended \(lastLine.seconds) s after the last line (deadline 4 s)")
            #expect(run.stderr.contains("every rank reached the end, but MPI_Finalize has not returned after"), "\(run)")
            #expect(run.stderr.contains("the run had finished, and the files it wrote are complete"), "\(run)")
            #expect(throws: Never.self) { try Checkpoint.read(path: model) }
            usleep(500_000)
            #expect(MnistDist.runningProcesses().isEmpty, "the stopped rank was ended too")
        }

        /// The rank is stopped by a fault injected with LD_PRELOAD (Fixtures/stop-in-transfer.c) as it enters the
        /// all-reduce of epoch 2's evaluation (its 100 values are the confusion matrix), after every rank arrived: the
        /// other rank is inside the transfer, where only the watchdog sees the deadline pass. The watchdog holds the
        /// roll call, and the frozen rank is named.
        @Test("a rank that freezes inside a transfer every rank had arrived at: the watchdog's roll call names it, exit 79 within seconds of the deadline; the checkpoint resumes to the uninterrupted result")
        func frozenMidTransfer() throws {
            let directory = Fixtures.makeTemporaryDirectory("transfer-stall")
            defer { Fixtures.removeTemporary(directory) }
            let path = { (name: String) in directory.appendingPathComponent(name).path }
            let library = path("libstop-in-transfer.so")
            let source = Fixtures.packageRoot.appendingPathComponent("Tests/EndToEndTests/Fixtures/stop-in-transfer.c").path
            try #require(MnistDist.shell("mpicc -shared -fPIC -o '\(library)' '\(source)' -ldl") == 0, "mpicc could not build \(source)")
            let arguments = ["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "3",
                             "--batch-size", "500", "--threads", "1", "--progress", "none"]
            let stopped = Stopwatch()
            let run = MnistDist.run(arguments + ["--stall-timeout", "4", "--checkpoint-dir", path("ckpt")], ranks: 2,
                                    environment: ["LD_PRELOAD": library, "MNIST_DIST_TEST_STOP_RANK": "1",
                                                  "MNIST_DIST_TEST_STOP_VALUES": "100", "MNIST_DIST_TEST_STOP_CALL": "2"],
                                    timeout: 120, onLine: { line, _ in
                if line.hasPrefix("epoch  1/3") { stopped.mark(0) }
            })
            let victim = MnistDist.runningProcesses().max()
            defer { if let victim { kill(victim, SIGCONT); kill(victim, SIGKILL) } }
            #expect(run.status == ExitCode.stalled.rawValue && !run.timedOut, "\(run)")
            #expect(stopped.pid != nil && stopped.seconds < 25, "ended \(stopped.seconds) s after epoch 1 (deadline 4 s, roll call 2 s)")
            #expect(run.stderr.contains("error: rank 1 (host ") && run.stderr.contains(" froze during a transfer every rank had arrived at"),
                    "the frozen rank is named: \(run)")
            #expect(run.stderr.contains("rank 0 (host ") && run.stderr.contains("every rank had arrived; the transfer had run"),
                    "the live rank says where it waited: \(run)")
            usleep(500_000)
            #expect(MnistDist.runningProcesses().isEmpty, "the stopped rank was ended too")
            let files = CheckpointDirectory(path: path("ckpt")).files()
            #expect(!files.isEmpty, "no checkpoint before the stop")
            for file in files { #expect(throws: Never.self) { try Checkpoint.read(path: file) } }
            let resumed = MnistDist.run(arguments + ["--resume", path("ckpt"), "--save", path("resumed.ckpt")], ranks: 2)
            #expect(resumed.status == 0, "\(resumed)")
            let whole = MnistDist.run(arguments + ["--save", path("whole.ckpt")], ranks: 2)
            #expect(whole.status == 0, "\(whole)")
            expectIdentical(try Checkpoint.read(path: path("resumed.ckpt")).parameters,
                            try Checkpoint.read(path: path("whole.ckpt")).parameters, "resumed after the frozen transfer")
        }

        @Test("a learning rate of 1e6: stops at the step the loss or gradient turns non-finite, with a hint; checkpoints stay good")
        func divergence() throws {
            let directory = Fixtures.makeTemporaryDirectory("diverge")
            defer { Fixtures.removeTemporary(directory) }
            // A relu network: its activations grow without bound (the tanh MLP saturates and stays finite).
            let run = MnistDist.run(cnnRun(["--optimizer", "sgd", "--lr", "1e6", "--checkpoint-dir", directory.path,
                                            "--checkpoint-every", "1"]), ranks: 2)
            #expect(run.status == ExitCode.diverged.rawValue, "\(run)")
            #expect(run.stderr.contains("training diverged at step "), "\(run)")
            #expect(run.stderr.contains("Try a smaller learning rate (--lr, now 1000000)"), "\(run)")
            #expect(run.stderr.components(separatedBy: "diverged").count == 2, "printed once")
            for file in CheckpointDirectory(path: directory.path).files() {
                let checkpoint = try Checkpoint.read(path: file)
                #expect(checkpoint.parameters.allSatisfy { $0.isFinite }, "\(file) holds non-finite parameters")
            }
        }

        @Test("the tanh MLP at --lr 1e6 stays finite but its loss explodes: it stops within a few steps, saying so, instead of training on at a loss of millions")
        func explodingLoss() throws {
            let run = MnistDist.run(["train", "--model", "mlp", "--lr", "1e6", "--data-dir", E2E.mnist, "--split", "chapter",
                                     "--epochs", "1", "--progress", "none"], ranks: 2)
            #expect(run.status == ExitCode.diverged.rawValue, "\(run)")
            #expect(run.stderr.contains("the loss exploded (mean loss "), "\(run)")
            #expect(run.stderr.contains("above 230 = 100 x ln 10"), "\(run)")
            #expect(run.stderr.contains("Try a smaller learning rate (--lr, now 1000000)"), "\(run)")
            #expect(run.stderr.components(separatedBy: "diverged").count == 2, "printed once: \(run)")
            // A large but workable learning rate trains on.
            let fast = MnistDist.run(["train", "--model", "mlp", "--lr", "0.05", "--data-dir", E2E.mnist, "--split", "chapter",
                                      "--epochs", "1", "--progress", "none", "--quiet"])
            #expect(fast.status == 0, "\(fast)")
        }

        @Test("a file size limit (a full disk, as any user sees it): a clear error, exit 73, the previous checkpoint intact")
        func fileSizeLimit() throws {
            let directory = Fixtures.makeTemporaryDirectory("fsize")
            defer { Fixtures.removeTemporary(directory) }
            #expect(MnistDist.run(cnnRun(["--checkpoint-dir", directory.path, "--stop-after", "2"])).status == 75)
            let before = try Data(contentsOf: URL(fileURLWithPath: CheckpointDirectory(path: directory.path).file(step: 2)))
            // ulimit -f is in 1 KB blocks: 1 MB is less than a CNN checkpoint (4.8 MB).
            let status = MnistDist.shell("ulimit -f 1024; exec '\(MnistDist.executable)' \(cnnRun(["--checkpoint-dir", directory.path, "--resume", directory.path, "--checkpoint-every", "1", "--progress", "none"]).map { "'\($0)'" }.joined(separator: " ")) 2> '\(directory.path)/err.txt'")
            #expect(status == ExitCode.cannotWrite.rawValue)
            let message = (try? String(contentsOfFile: directory.path + "/err.txt", encoding: .utf8)) ?? ""
            #expect(message.contains("file too large"), "\(message)")
            expectIdentical(try Data(contentsOf: URL(fileURLWithPath: CheckpointDirectory(path: directory.path).file(step: 2))), before,
                            "the checkpoint's bytes")
            #expect(CheckpointDirectory(path: directory.path).files().count == 1, "no partial file left: \(CheckpointDirectory(path: directory.path).files())")
        }

        @Test("a full (20 MB tmpfs) or read-only checkpoint directory: a clear error; the previous checkpoint survives",
              .enabled(if: canMount))
        func fullAndReadOnlyDirectory() throws {
            let directory = Fixtures.makeTemporaryDirectory("tmpfs")
            defer {
                _ = MnistDist.shell("umount '\(directory.path)' 2>/dev/null")
                Fixtures.removeTemporary(directory)
            }
            // A CNN checkpoint with Adadelta's state is 14.4 MB: one fits, a second cannot be written beside it.
            #expect(MnistDist.shell("mount -t tmpfs -o size=20m tmpfs '\(directory.path)'") == 0)
            let full = MnistDist.run(cnnRun(["--checkpoint-dir", directory.path, "--checkpoint-every", "1"]), ranks: 2)
            #expect(full.status == ExitCode.cannotWrite.rawValue, "\(full)")
            #expect(full.stderr.contains("no space left on the device"), "\(full)")
            let files = CheckpointDirectory(path: directory.path).files()
            #expect(files.count == 1)
            #expect(throws: Never.self) { try Checkpoint.read(path: files[0]) }
            #expect(MnistDist.shell("mount -o remount,ro '\(directory.path)'") == 0)
            let readOnly = MnistDist.run(cnnRun(["--checkpoint-dir", directory.path]))
            #expect(readOnly.status == ExitCode.cannotWrite.rawValue, "\(readOnly)")
            #expect(readOnly.stderr.contains("the checkpoint directory is not writable"), "\(readOnly)")
        }

        /// A directory with the t10k pair as given (raw bytes, named as the real files).
        private func dataDirectory(images: [UInt8], labels: [UInt8]) -> URL {
            let directory = Fixtures.makeTemporaryDirectory("bad")
            _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("t10k-images-idx3-ubyte.gz").path, contents: Data(images))
            _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("t10k-labels-idx1-ubyte.gz").path, contents: Data(labels))
            return directory
        }

        @Test("bad data under mpirun -np 2: one clear line naming the file, a non-zero exit, every rank ended",
              arguments: [("wrong magic", "is not an IDX image file (magic 0x4E4F5045"),
                          ("truncated gzip", "the gzip stream is truncated"), ("corrupt gzip", "the gzip data is corrupt"),
                          ("count mismatch", "holds 30 images but"), ("label above 9", "label 12 at index 4 is not a digit class 0-9"),
                          ("empty dataset", "the training set is empty"), ("32x32 images", "images are 32x32, but the cnn takes 28x28"),
                          ("billions of images", "header claims 2147483648 images")])
        func badData(kind: String, expected: String) {
            let labels30 = IDXBuilder.gzip(IDXBuilder.labels((0..<30).map { UInt8($0 % 10) }))
            let images30 = IDXBuilder.gzip(IDXBuilder.images(count: 30))
            let files: (images: [UInt8], labels: [UInt8])
            switch kind {
            case "wrong magic": files = (Array("NOPE, not an IDX file at all".utf8), labels30)
            case "truncated gzip": files = (Array(images30.prefix(images30.count / 2)), labels30)
            case "corrupt gzip": files = ({ var b = images30; b[b.count - 6] ^= 0xff; return b }(), labels30)
            case "count mismatch": files = (images30, IDXBuilder.gzip(IDXBuilder.labels([1, 2, 3])))
            case "label above 9": files = (images30, IDXBuilder.gzip(IDXBuilder.labels([1, 2, 3, 4, 12] + [UInt8](repeating: 0, count: 25))))
            case "empty dataset": files = (IDXBuilder.gzip(IDXBuilder.images(count: 0)), IDXBuilder.gzip(IDXBuilder.labels([])))
            case "32x32 images": files = (IDXBuilder.gzip(IDXBuilder.images(count: 30, rows: 32, columns: 32)), labels30)
            default: files = (IDXBuilder.gzip(IDXBuilder.file(magic: 0x803, dimensions: [1 << 31, 28, 28], payload: [UInt8](repeating: 1, count: 2048))), labels30)
            }
            let directory = dataDirectory(images: files.images, labels: files.labels)
            defer { Fixtures.removeTemporary(directory) }
            let run = MnistDist.run(["train", "--data-dir", directory.path, "--split", "chapter", "--epochs", "1", "--progress", "none"],
                                    ranks: 2, timeout: 60)
            #expect(!run.timedOut && run.status != 0, "\(kind): \(run)")
            #expect(run.stderr.contains(expected), "\(kind): \(run)")
            #expect(run.stderr.components(separatedBy: "error:").count == 2, "\(kind): printed once: \(run.stderr)")
            #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Backtrac"), "\(kind): no crash")
            usleep(200_000)
            #expect(MnistDist.runningProcesses().isEmpty)
        }

        @Test("a hostfile naming a host that does not exist ends promptly with a non-zero exit")
        func unknownHost() throws {
            let directory = Fixtures.makeTemporaryDirectory("hostfile")
            defer { Fixtures.removeTemporary(directory) }
            let hostfile = directory.appendingPathComponent("hosts").path
            try "no-such-host.invalid slots=1\n".write(toFile: hostfile, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
            process.arguments = MnistDist.mpirunOptions + ["--hostfile", hostfile, "-np", "1", MnistDist.executable, "--help"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let start = Date()
            try process.run()
            while process.isRunning && Date().timeIntervalSince(start) < 60 { usleep(100_000) }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            #expect(Date().timeIntervalSince(start) < 60)
            #expect(process.terminationStatus != 0)
        }
    }
}
