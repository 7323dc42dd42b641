// The end-to-end suites drive the built executable (alone and under real mpirun). They nest in one serialized
// suite so that no two jobs compete for the cores, which would only make them slower and their timings noisy.
import Checkpoints
import Foundation
import MNISTData
import Testing
import TestSupport
import Training

@Suite("End to end", .serialized, .enabled(if: Fixtures.mnistAvailable), .limit(minutes: 15))
struct EndToEnd {}

/// Helpers shared by the end-to-end suites.
enum E2E {
    static var mnist: String { Fixtures.mnistDirectory ?? "/missing-mnist" }

    /// Arguments that train `model` on the chapter split for `steps` steps, then stop with a checkpoint in `directory`.
    static func steps(_ steps: Int, model: String, batch: Int = 128, directory: URL, extra: [String] = []) -> [String] {
        ["train", "--model", model, "--data-dir", mnist, "--split", "chapter", "--epochs", "1", "--batch-size", "\(batch)",
         "--stop-after", "\(steps)", "--checkpoint-dir", directory.path, "--progress", "none", "--quiet"] + extra
    }

    /// Waits (up to `seconds`) until a running job has written its first checkpoint into `directory`.
    static func waitForFirstCheckpoint(in directory: String, seconds: Double = 120) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && CheckpointDirectory(path: directory).files().isEmpty { usleep(100_000) }
    }

    /// Takes simulated host `host`'s link down (scripts/cluster-sim.sh's namespaces), as a failed cable would.
    static func cutOff(host: Int) {
        MnistDist.shell("ip netns exec mnist-host\(host) ip link set veth-h\(host) down")
    }

    /// The parameters of the checkpoint written after `step` steps in `directory`.
    static func parameters(in directory: URL, step: Int) throws -> [Float] {
        try Checkpoint.read(path: CheckpointDirectory(path: directory.path).file(step: step)).parameters
    }

    /// The test images' file in the MNIST directory (compressed or raw).
    static var testImages: String { DatasetFiles.locate(DatasetName.testImages, in: mnist) ?? "\(mnist)/\(DatasetName.testImages)" }

    /// The first `count` test images' bytes, 784 each.
    static func testPixels(count: Int) throws -> [UInt8] {
        Array(try IDX.read(path: testImages, kind: .images).bytes.prefix(784 * count))
    }

    /// Trains a model on the chapter split and saves it to `path`; returns the checksum the run printed.
    static func trainedModel(_ path: String, epochs: Int, extra: [String] = []) -> String {
        let run = MnistDist.run(["train", "--data-dir", mnist, "--split", "chapter", "--epochs", "\(epochs)", "--save", path,
                                 "--progress", "none", "--quiet"] + extra)
        #expect(run.status == 0, "\(run)")
        return String(run.stdout.components(separatedBy: "parameter checksum ").last?.prefix(16) ?? "")
    }

    /// max |a - b| / max |b|.
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        let scale = b.reduce(Float(0)) { max($0, abs($1)) }
        let difference = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        return Double(difference / scale)
    }
}
