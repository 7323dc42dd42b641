// The command line's one dialect: every old spelling of an option still works and says, once, what replaced it;
// --resume takes a directory that may not exist yet.
import Foundation
import Pictures
import Testing
import TestSupport
import Training

extension EndToEnd {
    @Suite("Spellings and --resume", .limit(minutes: 5))
    struct SpellingTests {
        /// The notice an old spelling prints.
        static func notice(_ old: String, _ new: String) -> String {
            "note: \(old) is an old spelling, still accepted; now: \(new)"
        }

        @Test("every old spelling works as the new one does, with one notice naming the new spelling (one under mpirun too)")
        func oldSpellings() throws {
            let directory = Fixtures.makeTemporaryDirectory("spellings")
            defer { Fixtures.removeTemporary(directory) }
            func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
            _ = E2E.trainedModel(path("model.ckpt"), epochs: 1, extra: ["--model", "mlp", "--hidden", "32"])
            let model = path("model.ckpt")
            var canvas = Canvas(width: 28, height: 28, background: .black)
            for i in 0..<100 { canvas.set(10 + i % 8, 4 + i / 5, .white) }
            try canvas.writePNG(to: path("stroke.png"))

            let cases: [(arguments: [String], ranks: Int?, old: String, new: String, writes: String?)] = [
                (["evaluate", "--model", model, "--data-dir", E2E.mnist, "--split", "chapter"], 2,
                 "--model FILE", "the model as the first argument", nil),
                (["predict", "--model", model, E2E.testImages, "--limit", "2"], nil, "--model FILE", "the model as the first argument", nil),
                (["predict", model, path("stroke.png"), "--save-inputs", path("seen")], nil, "--save-inputs", "--pictures",
                 path("seen/stroke.png")),
                (["export", model, path("model.onnx")], nil, "the output file as a second argument", "--output FILE", path("model.onnx")),
                (["serve", "--checkpoint", path("absent.ckpt")], nil, "--checkpoint FILE", "the model as the first argument", nil),
                (["toy", "--output-dir", path("toy")], nil, "--output-dir", "--pictures", path("toy/toy-filters.png")),
                (E2E.steps(3, model: "mlp", directory: directory.appendingPathComponent("checkpoints"),
                           extra: ["--hidden", "32", "--keep", "1"]), 2, "--keep", "--keep-checkpoints",
                 path("checkpoints/checkpoint-000000003.ckpt")),
                (["train", "--model", "mlp", "--hidden", "32", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                  "--plots", path("plots"), "--quiet"], nil, "--plots", "--pictures", path("plots/accuracy.png")),
            ]
            for (arguments, ranks, old, new, writes) in cases {
                let run = MnistDist.run(arguments, ranks: ranks, timeout: 120)
                let expected = arguments[0] == "serve" ? 66 : arguments.contains("--stop-after") ? 75 : 0
                #expect(run.status == Int32(expected), "\(arguments): \(run)")
                #expect(run.stderr.components(separatedBy: Self.notice(old, new)).count == 2, "one notice for \(old): \(run)")
                if let writes { #expect(FileManager.default.fileExists(atPath: writes), "\(arguments) wrote \(writes)") }
            }
            // Both spellings at once: refused, naming both (reproduce's --plots checked here without its ten epochs).
            for arguments in [["reproduce", "--plots", path("a"), "--pictures", path("b")],
                              ["train", "--keep", "1", "--keep-checkpoints", "2"]] {
                let run = MnistDist.run(arguments, timeout: 60)
                #expect(run.status == 64, "\(run)")
                #expect(run.stderr.contains("is the old spelling of") && run.stderr.contains("give one of them"), "\(run)")
            }
        }

        @Test("--resume DIR: a directory that does not exist yet, or holds no checkpoint, is a fresh start that says so; then it resumes",
              arguments: [nil, 2])
        func resumeIntoNothing(ranks: Int?) throws {
            let directory = Fixtures.makeTemporaryDirectory("resume-nothing")
            defer { Fixtures.removeTemporary(directory) }
            let checkpoints = directory.appendingPathComponent("ckpt")
            let start = ["--resume", checkpoints.path, "--hidden", "32"]
            let first = MnistDist.run(E2E.steps(4, model: "mlp", directory: checkpoints, extra: start).filter { $0 != "--quiet" },
                                      ranks: ranks, timeout: 120)
            #expect(first.status == 75, "\(first)")
            #expect(first.stdout.contains("  resume   \(checkpoints.path) does not exist yet: a fresh start"), "\(first)")
            // A fresh start is the seed's: the same parameters as a run without --resume.
            let plain = directory.appendingPathComponent("plain")
            let without = MnistDist.run(E2E.steps(4, model: "mlp", directory: plain, extra: ["--hidden", "32"]), ranks: ranks, timeout: 120)
            #expect(without.status == 75, "\(without)")
            #expect(try E2E.parameters(in: checkpoints, step: 4) == E2E.parameters(in: plain, step: 4))

            let second = MnistDist.run(E2E.steps(8, model: "mlp", directory: checkpoints, extra: start + ["--allreduce", "float"])
                .filter { $0 != "--quiet" }, ranks: ranks, timeout: 120)
            #expect(second.status == 75, "\(second)")
            #expect(second.stdout.contains("  resume   \(checkpoints.path)/checkpoint-000000004.ckpt (epoch 1, batch 5, step 4)"),
                    "\(second)")
            #expect(second.stdout.contains("the checkpoint was trained with --allreduce double; this run goes on with --allreduce float"),
                    "\(second)")

            let empty = directory.appendingPathComponent("empty")
            try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
            let third = MnistDist.run(E2E.steps(1, model: "mlp", directory: empty, extra: ["--resume", empty.path, "--hidden", "32"])
                .filter { $0 != "--quiet" }, ranks: ranks, timeout: 120)
            #expect(third.stdout.contains("  resume   \(empty.path) holds no checkpoint yet: a fresh start"), "\(third)")

            // A checkpoint file that is not there is a mistake, not a fresh start.
            let missing = MnistDist.run(E2E.steps(1, model: "mlp", directory: empty,
                                                  extra: ["--resume", directory.appendingPathComponent("typo.ckpt").path]),
                                        ranks: ranks, timeout: 60)
            #expect(missing.status == 66, "\(missing)")
            #expect(missing.stderr.contains("typo.ckpt: no such file or directory"), "\(missing)")
        }
    }
}
