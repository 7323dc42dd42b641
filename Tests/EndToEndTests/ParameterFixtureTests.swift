// A guard for refactoring: the parameter bytes after 20 steps, recorded once (Fixtures/twenty-steps.tsv) from the
// code as it stood, must come out byte-identical from every later version that claims not to change what is learned.
//
// Float results depend on the GEMM kernels, so a recording is tied to the CPU model and the OpenBLAS kernel
// setting it was made with; on another machine the suite says so and checks nothing rather than fail spuriously.
// Re-record (only when a change is meant to alter results, and say so in its commit) with
//   MNIST_DIST_RECORD_FIXTURE=1 scripts/test.sh --filter ParameterFixture
import Foundation
import Platform
import Support
import Testing
import TestSupport
import Training

extension EndToEnd {
    @Suite("Parameters after 20 steps match the recorded fixture", .limit(minutes: 5))
    struct ParameterFixtureTests {
        static let file = Fixtures.packageRoot.appendingPathComponent("Tests/EndToEndTests/Fixtures/twenty-steps.tsv")

        /// The runs: a name, the rank count (nil: no mpirun) and the options beyond `E2E.steps`.
        static let cases: [(name: String, ranks: Int?, model: String, extra: [String])] = [
            ("cnn-np1-threads2-double", nil, "cnn", ["--threads", "2", "--allreduce", "double"]),
            ("cnn-np2-threads1-double", 2, "cnn", ["--threads", "1", "--allreduce", "double"]),
            ("cnn-np2-threads2-float", 2, "cnn", ["--threads", "2", "--allreduce", "float"]),
            ("cnn-np3-threads1-float", 3, "cnn", ["--threads", "1", "--allreduce", "float"]),
            ("cnn-np3-threads1-double-overlap", 3, "cnn", ["--threads", "1", "--allreduce", "double", "--overlap"]),
            ("cnn-np3-threads1-float-overlap", 3, "cnn", ["--threads", "1", "--allreduce", "float", "--overlap"]),
            ("mlp-np1-threads2-double", nil, "mlp", ["--threads", "2", "--allreduce", "double"]),
            ("mlp-np2-threads1-double", 2, "mlp", ["--threads", "1", "--allreduce", "double"]),
            ("mlp-np3-threads1-float", 3, "mlp", ["--threads", "1", "--allreduce", "float"]),
        ]

        /// What a recording depends on besides the code: the CPU model and the OpenBLAS kernels mnist-dist runs
        /// each model with (the environment's, or the ones it chooses, see `KernelChoice`).
        static var machine: String {
            let here = MachineDescription.current()
            let environment = ProcessInfo.processInfo.environment
            let cnn = KernelChoice.better(than: here, environment: environment, mlp: false) ?? here.blasKernel
            let mlp = KernelChoice.better(than: here, environment: environment, mlp: true) ?? here.blasKernel
            let kernels = cnn == mlp ? cnn : "\(cnn) (the MLP's: \(mlp))"
            return "\(here.cpu); OpenBLAS \(kernels) kernels; OPENBLAS_L2_SIZE=\(environment["OPENBLAS_L2_SIZE"] ?? "unset")"
        }

        /// SHA-256 of the parameters' little-endian Float bytes after 20 steps of one case.
        static func digest(_ run: (name: String, ranks: Int?, model: String, extra: [String])) throws -> String {
            let directory = Fixtures.makeTemporaryDirectory("fixture-\(run.name)")
            defer { Fixtures.removeTemporary(directory) }
            let result = MnistDist.run(E2E.steps(20, model: run.model, directory: directory, extra: run.extra), ranks: run.ranks)
            #expect(result.status == ExitCode.stopped.rawValue, "\(run.name): \(result)")
            let parameters = try E2E.parameters(in: directory, step: 20)
            return SHA256.hex(parameters.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * $0)) } })
        }

        @Test("CNN and MLP, one process and -np 2 and 3, every reduction: byte-identical to the recording")
        func matchesRecording() throws {
            if ProcessInfo.processInfo.environment["MNIST_DIST_RECORD_FIXTURE"] == "1" {
                var lines = ["# machine\t\(Self.machine)"]
                for run in Self.cases { lines.append("\(run.name)\t\(try Self.digest(run))") }
                try (lines.joined(separator: "\n") + "\n").write(to: Self.file, atomically: true, encoding: .utf8)
                print("recorded \(Self.cases.count) digests in \(Self.file.path)")
                return
            }
            let text = try String(contentsOf: Self.file, encoding: .utf8)
            var recorded: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: "\t", maxSplits: 1).map(String.init)
                if fields.count == 2 { recorded[fields[0]] = fields[1] }
            }
            guard recorded["# machine"] == Self.machine else {
                print("parameter fixture: recorded on \(recorded["# machine"] ?? "?"), this machine is \(Self.machine); "
                      + "not compared (Float GEMM results depend on the kernel)")
                return
            }
            for run in Self.cases {
                #expect(try Self.digest(run) == recorded[run.name], "\(run.name) no longer trains the recorded parameters")
            }
        }
    }
}
