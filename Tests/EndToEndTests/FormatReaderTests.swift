// The files mnist-dist writes for other tools, read back by those tools' own readers (in the tests' Python
// environment, scripts/python-env.sh): TensorBoard's event reader.
import Foundation
import Testing
import TestSupport

extension EndToEnd {
    @Suite("Other tools' readers")
    struct FormatReaderTests {
        @Test("--tensorboard under mpirun: TensorBoard's reader finds every record (CRCs checked), the metrics' values, every picture and the configuration")
        func tensorBoard() throws {
            let directory = Fixtures.makeTemporaryDirectory("tensorboard")
            defer { Fixtures.removeTemporary(directory) }
            let root = directory.appendingPathComponent("runs").path
            let metrics = directory.appendingPathComponent("metrics.jsonl").path
            let run = MnistDist.run(["train", "--model", "mlp", "--normalize", "none", "--data-dir", E2E.mnist, "--split", "chapter",
                                     "--epochs", "2", "--metrics", metrics, "--tensorboard", root, "--progress", "none"], ranks: 2)
            #expect(run.status == 0, "\(run)")
            let runs = try FileManager.default.contentsOfDirectory(atPath: root)
            #expect(runs.count == 1 && runs[0].hasPrefix("mlp-"), "one run directory: \(runs)")
            #expect(run.stdout.contains("tensorboard \(root)/\(runs[0])"), "the start block names it: \(run)")
            let read = try Python.run("read_tensorboard.py", ["\(root)/\(runs[0])"])
            #expect(read.status == 0, "\(read.output)")
            let board = try JSON.parse(read.output)
            #expect(board["files"].array.count == 1, "rank 0 alone writes: \(board["files"])")

            let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").map { try JSON.parse(String($0)) }
            let epochs = lines.filter { $0["type"].string == "epoch" }
            #expect(epochs.count == 2)
            // Epoch scalars: the metrics' values (which the metrics file prints to 6 significant digits).
            func same(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-5 * max(abs(b), 1e-30) }
            for (key, tag) in [("train_loss", "train_loss"), ("train_accuracy", "train_accuracy"), ("test_accuracy", "test_accuracy"),
                               ("samples_per_second", "samples_per_second"), ("communication_share", "communication_share")] {
                let series = board["scalars"]["epoch/\(tag)"].array
                #expect(series.map { $0[0].int } == [1, 2], "epoch/\(tag) steps")
                for (point, epoch) in zip(series, epochs) {
                    #expect(same(point[1].double, epoch[key].double), "epoch/\(tag) at epoch \(point[0].int): \(point[1]) vs \(epoch[key])")
                }
            }
            #expect(board["scalars"]["epoch/learning_rate"].array.allSatisfy { Float($0[1].double) == Float(0.001) })
            // Step scalars: one per step (63 a chapter epoch); the last step's loss is the metrics' last batch loss.
            let steps = epochs.map { $0["steps"].int }.reduce(0, +)
            #expect(steps == 126)
            for tag in ["loss", "samples_per_second", "communication_share", "learning_rate"] {
                let series = board["scalars"]["step/\(tag)"].array
                #expect(series.map { $0[0].int } == Array(1...steps), "step/\(tag): one value per step")
                #expect(series.allSatisfy { $0[1].double.isFinite && $0[1].double >= 0 }, "step/\(tag)")
            }
            let stepLoss = board["scalars"]["step/loss"].array
            #expect(same(stepLoss.last![1].double, epochs[1]["last_batch_loss"].double))
            #expect(stepLoss.first![1].double > stepLoss.last![1].double, "the loss falls")
            // Pictures (the MLP has no feature maps), at the last step, each a PNG of the canvas's size.
            let names = ["accuracy", "loss", "predictions", "filters", "confusion"]
            for name in names {
                let image = board["images"]["pictures/\(name)"][0]
                #expect(image["step"].int == steps && image["png"] == .bool(true) && image["width"].int >= 300
                        && image["height"].int >= 300 && image["bytes"].int > 1000, "pictures/\(name): \(image)")
            }
            // The configuration, as markdown for the text plug-in.
            let text = board["texts"]["configuration"]
            #expect(text["plugin"].string == "text")
            for row in ["| model | mlp |", "| lr | 0.001 |", "| epochs | 2 |", "| ranks | 2 |"] {
                #expect(text["text"].string.contains(row), "configuration lacks \(row): \(text)")
            }
            // Every record: the file version, the configuration, 4 scalars a step, 6 an epoch, the pictures.
            #expect(board["records"].int == 2 + 4 * steps + 6 * 2 + names.count)
        }

        @Test("--tensorboard where no directory can be made: one message naming the path, on every rank, before training")
        func tensorBoardRefused() throws {
            let directory = Fixtures.makeTemporaryDirectory("tensorboard-refused")
            defer { Fixtures.removeTemporary(directory) }
            let blocker = directory.appendingPathComponent("file").path
            #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
            let run = MnistDist.run(["train", "--model", "mlp", "--data-dir", E2E.mnist, "--epochs", "1",
                                     "--tensorboard", "\(blocker)/runs", "--progress", "none"], ranks: 2, timeout: 120)
            #expect(run.status != 0 && !run.timedOut, "\(run)")
            #expect(run.stderr.contains("\(blocker)/runs"), "\(run)")
            #expect(!run.stdout.contains("epoch  1/1"), "refused before training: \(run)")
        }
    }
}
