// --allreduce exact under real mpirun: one model whatever the rank and thread count, and across a resume.
import Autodiff
import Foundation
import Support
import Testing
import TestSupport
import Training

extension EndToEnd {
    @Suite("The exact sum under mpirun", .limit(minutes: 8))
    struct ExactSumTests {
        /// Trains one epoch with the exact sum and returns the run's parameter checksum from its metrics.
        static func checksum(model: String, ranks: Int?, threads: Int, extra: [String] = [], environment: [String: String] = [:],
                             directory: URL) throws -> String {
            let metrics = directory.appendingPathComponent("metrics-\(ranks ?? 0)-\(threads)-\(extra.count).jsonl").path
            let run = MnistDist.run(["train", "--model", model, "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                     "--allreduce", "exact", "--threads", "\(threads)", "--metrics", metrics,
                                     "--progress", "none", "--quiet"] + extra, ranks: ranks, environment: environment)
            #expect(run.status == 0, "-np \(ranks ?? 0) x \(threads): \(run)")
            let last = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
            let summary = try JSON.parse(last)
            #expect(run.stdout.contains("parameter checksum \(summary["parameter_checksum"].string)"))
            return summary["parameter_checksum"].string
        }

        @Test("-np 1, 2, 3, 4 x --threads 1, 2 (and 3), both thread modes, and all-reducing with --overlap at -np 3 and 5 (a rank with no micro-batch): one checksum, CNN and MLP; a resume at another count ends on it too",
              arguments: ["mlp", "cnn"])
        func oneModel(model: String) throws {
            let directory = Fixtures.makeTemporaryDirectory("exact-\(model)")
            defer { Fixtures.removeTemporary(directory) }
            var checksums: [String: String] = [:]
            for (ranks, threads) in [(nil, 1), (nil, 2), (nil, 3), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2)] as [(Int?, Int)] {
                checksums["-np \(ranks ?? 1) x \(threads)"] = try Self.checksum(model: model, ranks: ranks, threads: threads, directory: directory)
            }
            // The thread mode the model does not default to (workers split the batch; split cuts each product).
            let other = model == "mlp" ? "workers" : "split"
            for ranks in [nil, 2] as [Int?] {
                checksums["-np \(ranks ?? 1) x 2 --thread-mode \(other)"] =
                    try Self.checksum(model: model, ranks: ranks, threads: 2, extra: ["--thread-mode", other], directory: directory)
            }
            // Without room for the host's shared memory the ranks all-reduce, each bucket's sum started in the last
            // micro-batch's backward (FixedPointSum's overlap; with the memory, one host shares the step instead).
            for ranks in [3, 5] {
                checksums["-np \(ranks) x 1 --overlap"] = try Self.checksum(model: model, ranks: ranks, threads: 1, extra: ["--overlap"],
                                                                            environment: ["OMPI_MCA_osc_sm_backing_directory": "/nonexistent-mnist-dist"],
                                                                            directory: directory)
            }
            #expect(Set(checksums.values).count == 1, "\(checksums)")
            print("\(model) --allreduce exact: \(checksums.count) rank and thread counts, one checksum \(checksums.values.first ?? "?")")

            // Stopped after 20 steps at -np 3 x 1 thread, resumed in one process with 2 threads.
            let checkpoints = directory.appendingPathComponent("ckpt").path
            let stopped = MnistDist.run(["train", "--model", model, "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                         "--allreduce", "exact", "--threads", "1", "--stop-after", "20", "--checkpoint-dir", checkpoints,
                                         "--progress", "none", "--quiet"], ranks: 3)
            #expect(stopped.status == ExitCode.stopped.rawValue, "\(stopped)")
            let resumed = try Self.checksum(model: model, ranks: nil, threads: 2, extra: ["--resume", checkpoints], directory: directory)
            #expect(resumed == checksums.values.first)
        }

        @Test("--precision bf16: one checksum at -np 1-4, CNN and MLP, other than Float's; a Float checkpoint resumed in bf16 says so",
              .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"), arguments: ["mlp", "cnn"])
        func bf16(model: String) throws {
            let directory = Fixtures.makeTemporaryDirectory("exact-bf16-\(model)")
            defer { Fixtures.removeTemporary(directory) }
            var checksums: [String: String] = [:]
            for (ranks, threads) in [(nil, 1), (nil, 2), (2, 1), (3, 1), (4, 1)] as [(Int?, Int)] {
                checksums["-np \(ranks ?? 1) x \(threads)"] = try Self.checksum(model: model, ranks: ranks, threads: threads,
                                                                               extra: ["--precision", "bf16"], directory: directory)
            }
            #expect(Set(checksums.values).count == 1, "\(checksums)")
            let float = try Self.checksum(model: model, ranks: nil, threads: 2, directory: directory)
            #expect(!checksums.values.contains(float), "bf16 trained the Float model: \(float)")
            print("\(model) --allreduce exact --precision bf16: one checksum \(checksums.values.first ?? "?") at \(checksums.count) layouts; Float's \(float)")

            let checkpoints = directory.appendingPathComponent("ckpt").path
            let stopped = MnistDist.run(["train", "--model", model, "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                         "--stop-after", "5", "--checkpoint-dir", checkpoints, "--progress", "none", "--quiet"])
            #expect(stopped.status == ExitCode.stopped.rawValue, "\(stopped)")
            let resumed = MnistDist.run(["train", "--model", model, "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                         "--resume", checkpoints, "--precision", "bf16", "--progress", "none"])
            #expect(resumed.status == 0, "\(resumed)")
            #expect(resumed.stdout.contains("the checkpoint was trained with --precision float; this run goes on with --precision bf16"),
                    "\(resumed)")
        }

        @Test("on one host the ranks sum and step in memory they share; without room for it, they all-reduce: the same bits, for the exact and the Double sum")
        func hostSharedOrAllReduced() throws {
            let directory = Fixtures.makeTemporaryDirectory("exact-shared")
            defer { Fixtures.removeTemporary(directory) }
            var checksums: [String] = []
            // The window's file goes to the test's own directory, not /dev/shm, which a container may keep at 64 MB.
            for sum in ["exact", "double"] {
                for (backing, expected) in [(directory.path, "in memory the host's 3 ranks share, each rank summing and stepping 1/3"),
                                            ("/nonexistent-mnist-dist", "one all-reduce after backward (too little room in /nonexistent-mnist-dist")] {
                    let metrics = directory.appendingPathComponent("metrics-\(checksums.count).jsonl").path
                    let run = MnistDist.run(["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                             "--allreduce", sum, "--threads", "1", "--metrics", metrics, "--progress", "none"],
                                            ranks: 3, environment: ["OMPI_MCA_osc_sm_backing_directory": backing])
                    #expect(run.status == 0, "\(run)")
                    #expect(run.stdout.contains(expected), "\(run.stdout)")
                    let last = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
                    checksums.append(try JSON.parse(last)["parameter_checksum"].string)
                }
            }
            #expect(checksums.count == 4 && checksums[0] == checksums[1] && checksums[2] == checksums[3], "\(checksums)")
        }
    }
}
