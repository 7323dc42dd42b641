// The training loop's orchestration in one process: ranks as threads (ThreadGroup) training small synthetic data,
// the agreement on failures, and the checkpoint and stop decisions. The same things run under real mpirun in the
// end-to-end suites; here they are fast and need no launcher.
import Distributed
import Foundation
import MNISTData
import Checkpoints
import Reporting
import Support
import Testing
import TestSupport
import Training

/// 320 training and 64 test images of random pixels with labels that follow a pixel sum, so there is something to learn.
let syntheticData: ProvidedData = {
    func dataset(_ name: String, count: Int, seed: UInt64) -> Dataset {
        var state = seed
        var pixels = [UInt8](repeating: 0, count: count * 784), labels = [UInt8](repeating: 0, count: count)
        for image in 0..<count {
            var sum = 0
            for i in 0..<784 where i % 3 == 0 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                pixels[image * 784 + i] = UInt8(truncatingIfNeeded: state >> 56)
                sum += Int(pixels[image * 784 + i])
            }
            labels[image] = UInt8(sum % 10)
        }
        return try! Dataset(name: name, pixels: pixels, labels: labels, rows: 28, columns: 28)
    }
    let split = DataSplit(kind: .chapter, train: dataset("synthetic train", count: 320, seed: 1),
                          test: dataset("synthetic test", count: 64, seed: 2), chapterGenerator: nil)
    return ProvidedData(split: split, order: .seeded(3), description: "synthetic data")
}()

/// An MLP 784-24-10 (or wider) with SGD (or another optimizer), batch 48 (7 steps an epoch, the last one short), 2 epochs.
func smallConfiguration(hidden: Int = 24, optimizer: OptimizerKind = .sgd) -> TrainingConfiguration {
    var configuration = TrainingConfiguration()
    configuration.model = .mlp
    configuration.optimizer = optimizer
    configuration.hiddenSizes = [hidden]
    configuration.learningRate = 0.05
    configuration.batchSize = 48
    configuration.epochs = 2
    return configuration
}

/// Trains on `ranks` thread ranks with `threads` workers each; returns each rank's summary, or the error it ended with.
/// With `hosts`, the ranks are spread over that many simulated hosts (`ThreadGroup`).
func trainOnThreads(ranks: Int, threads: Int, reduction: ReductionPrecision = .double, microBatch: Int = Defaults.microBatch,
                    hidden: Int = 24, optimizer: OptimizerKind = .sgd, hosts: Int = 1,
                    adjust: @escaping @Sendable (inout RunOptions) -> Void = { _ in }) -> [Result<RunSummary, RunError>] {
    ThreadGroup.run(ranks: ranks, hosts: hosts) { communicator in
        var options = RunOptions()
        options.threads = threads
        options.threadMode = .workers
        adjust(&options)
        let console = Console(rank: communicator.rank, ranks: communicator.size, quiet: true, progress: .none)
        var configuration = smallConfiguration(hidden: hidden, optimizer: optimizer)
        configuration.gradientSum = reduction
        configuration.microBatch = microBatch
        let trainer = Trainer(configuration: configuration, options: options, communicator: communicator,
                              console: console, data: syntheticData)
        do { return .success(try trainer.run()) } catch let error as RunError { return .failure(error) } catch {
            return .failure(RunError(.software, "\(error)"))
        }
    }
}

@Suite("Orchestration on thread ranks", .serialized, .limit(minutes: 5))
struct OrchestrationTests {
    @Test("N thread ranks with one worker each train what one rank with N workers trains, bit for bit", arguments: [2, 3, 4])
    func rankCountEquivalence(ranks: Int) throws {
        let alone = try #require(try trainOnThreads(ranks: 1, threads: ranks).first?.get())
        let together = trainOnThreads(ranks: ranks, threads: 1)
        for result in together {
            let summary = try result.get()
            #expect(summary.parameterChecksum == alone.parameterChecksum)
            #expect(summary.history.map(\.trainLoss) == alone.history.map(\.trainLoss))
        }
        // Two simulated hosts, each summing in its shared memory and all-reducing its ranks' slices with the other's,
        // after backward or (--overlap) per bucket during it.
        if ranks % 2 == 0 {
            for result in trainOnThreads(ranks: ranks, threads: 1, hosts: 2) {
                #expect(try result.get().parameterChecksum == alone.parameterChecksum, "2 hosts x \(ranks / 2) ranks")
            }
            for result in trainOnThreads(ranks: ranks, threads: 1, hosts: 2, adjust: { $0.overlap = true }) {
                #expect(try result.get().parameterChecksum == alone.parameterChecksum, "2 hosts x \(ranks / 2) ranks, --overlap")
            }
        }
        // The test would notice a reducer that did nothing: one rank alone trains something else.
        let single = try #require(try trainOnThreads(ranks: 1, threads: 1).first?.get())
        #expect(single.parameterChecksum != alone.parameterChecksum || ranks == 1)
    }

    /// The batch is split the same way throughout (three parts: three ranks, or three workers of one rank), so
    /// the resumed run must end bit for bit where the uninterrupted one does.
    @Test("a run stopped after 9 steps on 3 ranks, resumed on 1 rank with 3 workers, ends where an uninterrupted run ends")
    func stopAndResume() throws {
        let directory = Fixtures.makeTemporaryDirectory("orchestration-resume")
        defer { Fixtures.removeTemporary(directory) }
        let uninterrupted = try #require(try trainOnThreads(ranks: 1, threads: 3).first?.get())
        let stopped = trainOnThreads(ranks: 3, threads: 1) {
            $0.checkpointDirectory = directory.path
            $0.stopAfterSteps = 9
        }
        for (rank, result) in stopped.enumerated() {
            guard case .failure(let error) = result else { Issue.record("rank \(rank) did not stop"); continue }
            #expect(error.code == .stopped)
            // One message, from rank 0, saying where, why, and how to continue.
            #expect((error.message != nil) == (rank == 0))
        }
        let message = try #require(stopped.first.flatMap { if case .failure(let e) = $0 { e.message } else { nil } })
        #expect(message.hasPrefix("stopped after step 9 (epoch 2, batch 2 of 7): --stop-after 9 reached; checkpoint written to "))
        #expect(message.hasSuffix("continue with --resume \(directory.path)"))
        let resumed = trainOnThreads(ranks: 1, threads: 3) { $0.resume = directory.path }
        for result in resumed {
            #expect(try result.get().parameterChecksum == uninterrupted.parameterChecksum)
        }
    }

    /// Adadelta keeps state; where the host's ranks share the step, each steps a slice of it in their shared memory,
    /// rank 0 writes the whole of it into a checkpoint and back on resume.
    @Test("Adadelta's state, sharded: stopped on 3 ranks and resumed on 1, or the other way, or on 2 hosts x 2 ranks and resumed on 2 ranks, ends where an uninterrupted run ends",
          arguments: [(3, 1, 1), (1, 3, 1), (4, 2, 2)])
    func shardedStateResumes(first: Int, second: Int, hosts: Int) throws {
        let directory = Fixtures.makeTemporaryDirectory("orchestration-sharded")
        defer { Fixtures.removeTemporary(directory) }
        let uninterrupted = try #require(try trainOnThreads(ranks: 3, threads: 1, optimizer: .adadelta).first?.get())
        let alone = try #require(try trainOnThreads(ranks: 1, threads: 3, optimizer: .adadelta).first?.get())
        #expect(alone.parameterChecksum == uninterrupted.parameterChecksum, "3 ranks sharing the step train what 3 workers do")
        let stopped = trainOnThreads(ranks: first, threads: max(1, 3 / first), optimizer: .adadelta, hosts: hosts) {
            $0.checkpointDirectory = directory.path
            $0.stopAfterSteps = 9
        }
        for result in stopped {
            guard case .failure(let error) = result else { Issue.record("a rank did not stop"); continue }
            #expect(error.code == .stopped)
        }
        let expected = first * max(1, 3 / first) == 3 ? uninterrupted
            : try #require(try trainOnThreads(ranks: first, threads: 1, optimizer: .adadelta, hosts: hosts).first?.get())
        for result in trainOnThreads(ranks: second, threads: first * max(1, 3 / first) / second, optimizer: .adadelta,
                                     adjust: { $0.resume = directory.path }) {
            #expect(try result.get().parameterChecksum == expected.parameterChecksum)
        }
        // Not a checksum that cannot change: SGD trains another model.
        #expect(try trainOnThreads(ranks: 3, threads: 1).first?.get().parameterChecksum != uninterrupted.parameterChecksum)
    }

    /// The hidden layer of 512 makes the first product (16 x 784 x 512 per micro-batch) large enough to be split
    /// over threads in split mode, so the fixed column cuts are exercised too.
    @Test("--allreduce exact: one checksum for 1-4 ranks x 1-3 threads, in every thread mode")
    func exactAtAnyCount() throws {
        var checksums: [String: UInt64] = [:]
        for ranks in 1...4 {
            for threads in 1...3 {
                for mode in [ThreadMode.workers, .split, .blas] where ranks * threads <= 6 {
                    // 3 micro-batches of 16 in a 48-sample batch: ranks 4 and up have none
                    let results = trainOnThreads(ranks: ranks, threads: threads, reduction: .exact, microBatch: 16, hidden: 512) {
                        $0.threadMode = mode
                    }
                    for result in results { checksums["-np \(ranks) x \(threads) \(mode)"] = try result.get().parameterChecksum }
                }
            }
        }
        // Hosts sharing their ranks' steps, and all-reducing slices after backward or (--overlap) per bucket during it.
        for (ranks, hosts) in [(4, 2), (6, 3), (6, 2)] {
            for overlap in [false, true] {
                for result in trainOnThreads(ranks: ranks, threads: 1, reduction: .exact, microBatch: 16, hidden: 512, hosts: hosts,
                                             adjust: { $0.overlap = overlap }) {
                    checksums["\(hosts) hosts x \(ranks / hosts) ranks\(overlap ? ", --overlap" : "")"] = try result.get().parameterChecksum
                }
            }
        }
        #expect(Set(checksums.values).count == 1, "\(checksums)")
        // Several micro-batches a rank (the batch's 6 micro-batches of 8 samples over 4 ranks: 2, 2, 1, 1), summed per
        // bucket during the last one's backward.
        let eights = try #require(try trainOnThreads(ranks: 1, threads: 1, reduction: .exact, microBatch: 8, hidden: 512).first?.get())
        for result in trainOnThreads(ranks: 4, threads: 1, reduction: .exact, microBatch: 8, hidden: 512, hosts: 2,
                                     adjust: { $0.overlap = true }) {
            #expect(try result.get().parameterChecksum == eights.parameterChecksum, "2 hosts x 2 ranks, micro-batches of 8, --overlap")
        }
        // Not a checksum that cannot change: the Double sum over workers gives another model.
        let double = try #require(try trainOnThreads(ranks: 1, threads: 2, hidden: 512).first?.get())
        #expect(double.parameterChecksum != checksums.values.first)
    }

    @Test("ranks started with different options stop before training, rank 0 naming the first setting that differs")
    func disagreement() {
        let outcomes = ThreadGroup.run(ranks: 3) { communicator -> (ExitCode?, String?) in
            var configuration = smallConfiguration()
            if communicator.rank == 2 { configuration.learningRate = 0.5 }
            let trainer = Trainer(configuration: configuration, options: RunOptions(), communicator: communicator,
                                  console: Console(rank: communicator.rank, ranks: 3, quiet: true, progress: .none),
                                  data: syntheticData)
            do { _ = try trainer.run(); return (nil, nil) } catch let error as RunError { return (error.code, error.message) } catch {
                return (.software, "\(error)")
            }
        }
        #expect(outcomes.map(\.0) == [.ranksDisagree, .ranksDisagree, .ranksDisagree])
        #expect(outcomes[0].1 == "the ranks do not agree on learning_rate (rank 0 has 0.05); every rank must run the same options on the same data")
        #expect(outcomes[1].1 == nil && outcomes[2].1 == nil)
    }

    @Test("a failure on one rank ends every rank with its code; only that rank carries the message")
    func agreement() {
        let outcomes = ThreadGroup.run(ranks: 3) { communicator -> (ExitCode?, String?, Int?) in
            do {
                let value = try communicator.agree { () throws -> Int in
                    if communicator.rank == 1 { throw RunError(.missingInput, "rank 1 has no data") }
                    if communicator.rank == 2 { throw RunError(.badInput, "rank 2 has bad data") }
                    return communicator.rank
                }
                return (nil, nil, value)
            } catch let error as RunError {
                return (error.code, error.message, nil)
            } catch {
                return (.software, "\(error)", nil)
            }
        }
        #expect(outcomes.map(\.0) == [.missingInput, .missingInput, .missingInput])
        #expect(outcomes.map(\.1) == [nil, "rank 1 has no data", nil])
        let fine = ThreadGroup.run(ranks: 2) { communicator in (try? communicator.agree { communicator.rank * 10 }) ?? -1 }
        #expect(fine == [0, 10])
    }
}

@Suite("Checkpoint and stop decisions", .limit(minutes: 5))
struct StopPolicyTests {
    let directory = CheckpointDirectory(path: "/tmp/ckpt")

    @Test("after a step: periodic checkpoints, a stop with a checkpoint, nothing on an epoch's last step")
    func afterStep() {
        let policy = StopPolicy(directory: directory, every: 5, stopAfter: nil)
        #expect(policy.afterStep(4, lastOfEpoch: false, stopAgreed: false) == .init(checkpoint: false, stop: false))
        #expect(policy.afterStep(5, lastOfEpoch: false, stopAgreed: false) == .init(checkpoint: true, stop: false))
        #expect(policy.afterStep(6, lastOfEpoch: false, stopAgreed: true) == .init(checkpoint: true, stop: true))
        #expect(policy.afterStep(10, lastOfEpoch: true, stopAgreed: true) == .init(checkpoint: false, stop: false))
        let nowhere = StopPolicy(directory: nil, every: nil, stopAfter: nil)
        #expect(nowhere.afterStep(6, lastOfEpoch: false, stopAgreed: true) == .init(checkpoint: false, stop: true))
    }

    @Test("at an epoch's end: always a checkpoint with a directory; no stop after the last epoch")
    func afterEpoch() {
        let policy = StopPolicy(directory: directory, every: nil, stopAfter: nil)
        #expect(policy.afterEpoch(0, of: 3, stopAgreed: false) == .init(checkpoint: true, stop: false))
        #expect(policy.afterEpoch(1, of: 3, stopAgreed: true) == .init(checkpoint: true, stop: true))
        #expect(policy.afterEpoch(2, of: 3, stopAgreed: true) == .init(checkpoint: true, stop: false))
        #expect(StopPolicy(directory: nil, every: nil, stopAfter: nil).afterEpoch(0, of: 3, stopAgreed: true)
                == .init(checkpoint: false, stop: true))
    }

    @Test("--stop-after asks to stop from its step on; the message names the reason and the way back")
    func messages() {
        let policy = StopPolicy(directory: directory, every: nil, stopAfter: 12)
        #expect(!policy.stopRequested(afterStep: 11) && policy.stopRequested(afterStep: 12))
        #expect(policy.stopMessage(at: "after step 12", step: 12, checkpoint: "/tmp/ckpt/c.ckpt", signal: nil)
                == "stopped after step 12: --stop-after 12 reached; checkpoint written to /tmp/ckpt/c.ckpt; continue with --resume /tmp/ckpt")
        #expect(policy.stopMessage(at: "at the end of epoch 1", step: 5, checkpoint: nil, signal: SIGUSR1)
                == "stopped at the end of epoch 1: SIGUSR1 received; no --checkpoint-dir was given, so nothing was saved")
        #expect(policy.reason(step: 5, signal: nil) == "a stop signal reached another rank")
    }

    @Test("a step diverges on a non-finite loss or gradient, or a mean loss above 100 ln 10; healthy losses pass")
    func divergence() {
        #expect(StopPolicy.divergence(meanLoss: .nan, gradientFinite: true) == "the loss is not finite")
        #expect(StopPolicy.divergence(meanLoss: .infinity, gradientFinite: true) == "the loss is not finite")
        #expect(StopPolicy.divergence(meanLoss: 2.3, gradientFinite: false) == "the gradient is not finite")
        #expect(StopPolicy.divergence(meanLoss: 231, gradientFinite: true)?.hasPrefix("the loss exploded (mean loss 231 ") == true)
        #expect(StopPolicy.divergence(meanLoss: 75_707_916, gradientFinite: true)?.contains("75,707,916") == true)
        for healthy in [0.0, 2.302585, 4.5, 50, 230] {
            #expect(StopPolicy.divergence(meanLoss: healthy, gradientFinite: true) == nil, "\(healthy)")
        }
        #expect(abs(StopPolicy.explodingLoss - 230.2585) < 1e-4)
    }
}

