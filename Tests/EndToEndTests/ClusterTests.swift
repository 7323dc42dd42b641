// A simulated cluster (scripts/cluster-sim.sh: network namespaces on a bridge, TCP between them): training across
// hosts equals the single-host run, and losing a host ends the job promptly. Needs root and `ip netns`.
import Checkpoints
import Foundation
import Support
import Synchronization
import Testing
import TestSupport
import Training

/// True where network namespaces can be made (root, with the capability).
let canMakeNamespaces: Bool = {
    guard getuid() == 0 else { return false }
    return MnistDist.shell("ip netns add mnist-probe && ip netns delete mnist-probe") == 0
}()

extension EndToEnd {
    @Suite("Simulated cluster", .enabled(if: canMakeNamespaces), .limit(minutes: 5))
    struct ClusterTests {
        private var script: String { Fixtures.packageRoot.appendingPathComponent("scripts/cluster-sim.sh").path }

        /// Runs mnist-dist with `arguments` on the simulated cluster that scripts/cluster-sim.sh sets up with
        /// `simulation` (its options), under `timeout` seconds if given, its output into the file `log`; returns the
        /// exit status and that output.
        private func onSimulatedCluster(_ simulation: String, _ arguments: [String], log: String,
                                        timeout: Int? = nil) -> (status: Int32, log: String) {
            let status = MnistDist.shell((timeout.map { "timeout \($0) " } ?? "") + "'\(script)' \(simulation) -- '\(MnistDist.executable)' "
                                         + arguments.map { "'\($0)'" }.joined(separator: " ") + " > '\(log)' 2>&1")
            return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }

        @Test("two hosts over TCP train bit for bit what one process with two workers trains; by default the hosts, sharing this machine's cores, take half of them each")
        func acrossHosts() throws {
            let directory = Fixtures.makeTemporaryDirectory("cluster")
            defer { Fixtures.removeTemporary(directory) }
            let arguments = E2E.steps(20, model: "cnn", directory: directory.appendingPathComponent("hosts"), extra: ["--threads", "1"])
            let (status, log) = onSimulatedCluster("--hosts 2 --rate 1gbit", arguments, log: directory.path + "/log")
            #expect(status == ExitCode.stopped.rawValue, "\(log)")
            #expect(log.contains("2 hosts"), "\(log)")
            let single = MnistDist.run(E2E.steps(20, model: "cnn", directory: directory.appendingPathComponent("single"),
                                                 extra: ["--threads", "2", "--thread-mode", "workers"]))
            #expect(single.status == ExitCode.stopped.rawValue)
            expectIdentical(try E2E.parameters(in: directory.appendingPathComponent("hosts"), step: 20),
                            try E2E.parameters(in: directory.appendingPathComponent("single"), step: 20), "2 hosts against 2 workers")
            #expect(MnistDist.shell("ip netns list | grep -q mnist-host") != 0, "the namespaces were not removed")

            // Without --threads, each host's rank counts the other host's too: they share this machine's cores.
            let defaults = E2E.steps(1, model: "cnn", directory: directory.appendingPathComponent("defaults")).filter { $0 != "--quiet" }
            let byDefault = onSimulatedCluster("--hosts 2", defaults, log: directory.path + "/log-defaults")
            #expect(byDefault.status == ExitCode.stopped.rawValue, "\(byDefault.log)")
            let share = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
            #expect(byDefault.log.contains("\(share) worker thread\(share == 1 ? "" : "s") per rank"), "\(byDefault.log)")
        }

        @Test("two hosts of two ranks each (shared memory on a host, each rank's slice all-reduced with its peer, after backward or per bucket during it): the exact sum gives one process's bits, the Double sum four workers'")
        func twoRanksPerHost() throws {
            let directory = Fixtures.makeTemporaryDirectory("cluster-2x2")
            defer { Fixtures.removeTemporary(directory) }
            for (sum, threads) in [("exact", "2"), ("double", "4")] {
                let single = directory.appendingPathComponent("\(sum)-single")
                let alone = MnistDist.run(E2E.steps(20, model: "mlp", directory: single,
                                                    extra: ["--threads", threads, "--thread-mode", "workers", "--allreduce", sum]))
                #expect(alone.status == ExitCode.stopped.rawValue, "\(alone)")
                for overlap in sum == "exact" ? ["--no-overlap", "--overlap"] : ["--no-overlap"] {
                    let name = "\(sum)\(overlap)", hosts = directory.appendingPathComponent("\(sum)\(overlap)-hosts")
                    // Without --quiet: the start block says how the slices are all-reduced.
                    let arguments = E2E.steps(20, model: "mlp", directory: hosts, extra: ["--threads", "1", "--allreduce", sum, overlap])
                        .filter { $0 != "--quiet" }
                    let (status, text) = onSimulatedCluster("--hosts 2 --ranks-per-host 2", arguments, log: directory.path + "/log-\(name)")
                    #expect(status == ExitCode.stopped.rawValue, "\(text)")
                    #expect(text.contains("2 hosts (10.77.0.11-12) of 2 ranks"), "\(text)")
                    #expect(text.contains("all-reducing that slice with its peers on the 1 other host"), "\(text)")
                    #expect(text.contains("started per bucket during backward") == (overlap == "--overlap"), "\(text)")
                    expectIdentical(try E2E.parameters(in: hosts, step: 20), try E2E.parameters(in: single, step: 20),
                                    "\(sum) \(overlap): 2 hosts x 2 ranks against one process")
                }
            }
        }

        /// How mpirun is set up for a host cut off from the network, and how the job must end.
        struct PartitionSetup: CustomTestStringConvertible, Sendable {
            /// mpirun's settings file (in hostfiles/), and the TCP retry limit of its own namespace (nil: this machine's).
            let tune: String
            let tcpRetries2: Int?
            let stallTimeout: Int
            let exitCode: Int32
            let withinSeconds: Double
            var testDescription: String { "\(tune)\(tcpRetries2.map { ", tcp_retries2 \($0)" } ?? ""): exit \(exitCode)" }
        }

        @Test("a host cut off from the network mid-run: with hostfiles/network.conf mpirun ends the job within seconds (205); with hostfiles/network-stall.conf and tcp_retries2 6 on mpirun's node, the ranks' stall report ends it (79) within --stall-timeout plus a minute; the checkpoints stay whole, and the run resumes from the last one",
              arguments: [PartitionSetup(tune: "network.conf", tcpRetries2: nil, stallTimeout: 20, exitCode: 205, withinSeconds: 40),
                          PartitionSetup(tune: "network-stall.conf", tcpRetries2: 6, stallTimeout: 5,
                                         exitCode: ExitCode.stalled.rawValue, withinSeconds: 5 + 60)])
        func partitionedHost(_ setup: PartitionSetup) throws {
            let directory = Fixtures.makeTemporaryDirectory("cluster-partition")
            defer { Fixtures.removeTemporary(directory) }
            let checkpoints = directory.appendingPathComponent("ckpt")
            let options = ["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "30", "--threads", "1",
                           "--checkpoint-dir", checkpoints.path, "--checkpoint-every", "20", "--stall-timeout", "\(setup.stallTimeout)",
                           "--progress", "none"]
            let cut = Mutex<Date?>(nil)
            let cutter = Thread {
                // Once the first checkpoint is on disk, take host 2's link down.
                E2E.waitForFirstCheckpoint(in: checkpoints.path, seconds: 90)
                cut.withLock { $0 = Date() }
                E2E.cutOff(host: 2)
            }
            cutter.start()
            let retriesFile = "/proc/sys/net/ipv4/tcp_retries2"
            let retries = try? String(contentsOfFile: retriesFile, encoding: .utf8)
            let tune = Fixtures.packageRoot.appendingPathComponent("hostfiles/\(setup.tune)").path
            let (status, log) = onSimulatedCluster("--hosts 2 --tune '\(tune)'" + (setup.tcpRetries2.map { " --tcp-retries2 \($0)" } ?? ""),
                                                   options, log: directory.path + "/log", timeout: 150)
            let ended = Date()
            #expect(status == setup.exitCode, "exit \(status): \(log)")
            let afterCut = cut.withLock { $0 }.map { ended.timeIntervalSince($0) } ?? .infinity
            #expect(afterCut < setup.withinSeconds, "the job ended \(afterCut) s after the link went down: \(log)")
            if setup.exitCode == ExitCode.stalled.rawValue {
                #expect(log.contains("did not answer a roll call"), "\(log)")
            }
            #expect((try? String(contentsOfFile: retriesFile, encoding: .utf8)) == retries, "this machine's own tcp_retries2 changed")
            usleep(500_000)
            #expect(MnistDist.runningProcesses().isEmpty)
            // Every checkpoint on disk reads back whole, and the run goes on from the newest, in one process.
            let files = CheckpointDirectory(path: checkpoints.path).files()
            #expect(!files.isEmpty)
            for file in files { #expect(throws: Never.self) { try Checkpoint.read(path: file) } }
            var resumed = options
            resumed[resumed.firstIndex(of: "30")!] = "2"  // as far as the second epoch's end
            let run = MnistDist.run(resumed + ["--resume", checkpoints.path])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("  resume   "), "\(run.stdout)")
        }

        @Test("killing one host's processes ends the job within seconds, with a non-zero exit")
        func hostLost() throws {
            let directory = Fixtures.makeTemporaryDirectory("cluster-kill")
            defer { Fixtures.removeTemporary(directory) }
            let killer = Thread {
                // Once host 2 runs its rank, kill everything in its namespace (its Open MPI daemon and the rank).
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline && MnistDist.runningProcesses().count < 2 { usleep(100_000) }
                usleep(4_000_000)
                MnistDist.shell("for pid in $(ip netns pids mnist-host2); do kill -9 $pid; done")
            }
            killer.start()
            let start = Date()
            let (status, log) = onSimulatedCluster("--hosts 2", ["train", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "20",
                                                                 "--threads", "1", "--progress", "none"],
                                                   log: directory.path + "/log", timeout: 120)
            let elapsed = Date().timeIntervalSince(start)
            #expect(status != 0 && status != 124, "exit \(status): \(log)")
            #expect(elapsed < 45, "the job took \(elapsed) s to end")
            usleep(500_000)
            #expect(MnistDist.runningProcesses().isEmpty)
            #expect(MnistDist.shell("ip netns list | grep -q mnist-host") != 0, "the namespaces were not removed")
        }
    }
}
