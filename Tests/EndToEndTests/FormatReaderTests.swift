// The files mnist-dist writes for other tools, read back by those tools' own readers (in the tests' Python
// environment, scripts/python-env.sh): TensorBoard's event reader; and pictures made by Pillow, read by predict.
import Foundation
import MNISTData
import Pictures
import Support
import Testing
import TestSupport
import Training

extension EndToEnd {
    @Suite("Other tools' readers", .limit(minutes: 3))
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
            for row in ["| model | mlp |", "| learning_rate | 0.001 |", "| epochs | 2 |", "| ranks | 2 |"] {
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
    
        @Test("--trace under mpirun: one Chrome trace for both ranks, a track per rank and worker, every phase of every step nested in it, clocks aligned by the all-reduce")
        func trace() throws {
            let directory = Fixtures.makeTemporaryDirectory("trace")
            defer { Fixtures.removeTemporary(directory) }
            let path = directory.appendingPathComponent("trace.json").path
            let run = MnistDist.run(["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                     "--threads", "2", "--thread-mode", "workers", "--trace", path, "--progress", "none",
                                     "--checkpoint-dir", directory.appendingPathComponent("ckpt").path, "--checkpoint-every", "20"],
                                    ranks: 2)
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("trace: \(path)"))
            // Python's json module is strict (no trailing commas, no NaN): the file is JSON as any viewer reads it.
            let checked = try Python.run("check_trace.py", [path])
            #expect(checked.status == 0, "\(checked.output)")
            let summary = try JSON.parse(checked.output)
            #expect(summary["processes"].array.map(\.string) == ["rank 0 on \(ProcessInfo.processInfo.hostName)",
                                                                "rank 1 on \(ProcessInfo.processInfo.hostName)"])
            #expect(summary["threads"].array.map(\.string) == ["step", "worker 0", "worker 1"])
            #expect(summary["unique_thread_ids"] == .bool(true), "Perfetto merges tracks that share a thread id")
            // 63 steps: per rank a step, an all-reduce wait and an optimizer phase each, and data, forward and
            // backward on each of the two workers; an evaluation; checkpoints after steps 20, 40, 60 and 63.
            for rank in ["0", "1"] {
                let counts = summary["counts"][rank]
                for (phase, count) in [("step", 63), ("all-reduce wait", 63), ("optimizer", 63), ("data", 126), ("forward", 126),
                                       ("backward", 126), ("evaluation", 1), ("checkpoint", 4)] {
                    #expect(counts[phase].int == count, "rank \(rank): \(phase) \(counts[phase]) times")
                }
            }
            #expect(summary["not_nested"].int == 0, "every phase lies inside its step's span: \(checked.output)")
            #expect(summary["dropped"].int == 0)
            // The ranks leave each all-reduce together: on aligned clocks their ends differ by microseconds (measured
            // median 3 us); 1 ms allows a loaded machine and still catches clocks that are not aligned at all.
            #expect(summary["median_allreduce_end_skew_us"].double < 1000, "\(checked.output)")
        }

        @Test("predict reads Pillow's pictures of a digit in every PNG mode and bit depth and as JPEG, at any size, and sees what MNIST shows; a photographed digit is classified as the digit it is")
        func picturesFromPillow() throws {
            let directory = Fixtures.makeTemporaryDirectory("pictures")
            defer { Fixtures.removeTemporary(directory) }
            let model = directory.appendingPathComponent("cnn.ckpt").path
            _ = E2E.trainedModel(model, epochs: 1)
            // Digits this model gets right with confidence: their pictures must get the same answer.
            let images = DatasetFiles.locate(DatasetName.testImages, in: E2E.mnist)!
            let labels = try IDX.read(path: DatasetFiles.locate(DatasetName.testLabels, in: E2E.mnist)!, kind: .labels).bytes
            let digits = try IDX.read(path: images, kind: .images).bytes
            let direct = MnistDist.run(["predict", model, images, "--limit", "12"])
            let confident = direct.stdout.split(separator: "\n").enumerated().compactMap { index, line -> Int? in
                let answer = line.split(separator: ":").last!.split(separator: " ")
                return Int(answer[0]) == Int(labels[index]) && Double(answer[3].dropLast())! >= 0.95 ? index : nil
            }
            #expect(confident.count >= 3, "\(direct)")
            for index in confident.prefix(3) {
                let digit = Array(digits[(index * 784)..<((index + 1) * 784)])
                let folder = directory.appendingPathComponent("digit\(index)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let raw = folder.appendingPathComponent("digit.raw").path
                #expect(FileManager.default.createFile(atPath: raw, contents: Data(digit)))
                let made = try Python.run("make_pictures.py", [raw, folder.path])
                #expect(made.status == 0, "\(made.output)")
                let pictures = made.output.split(separator: "\n").map(String.init)
                #expect(pictures.count == 13, "\(made.output)")
                let seen = folder.appendingPathComponent("seen").path
                let run = MnistDist.run(["predict", model, "--pictures", seen] + pictures)
                #expect(run.status == 0, "\(run)")
                for picture in pictures {
                    let line = run.stdout.split(separator: "\n").first { $0.hasPrefix(picture + "  [") }
                    #expect(line?.contains("]: \(labels[index]) (p = ") == true, "\(picture) is a \(labels[index]): \(run)")
                    // What the model saw is the MNIST digit again, up to a shift of 2 pixels (centre of mass vs
                    // MNIST's own centring) and resampling: cosine similarity >= 0.9 (measured 0.94-1.0; an
                    // uninverted, uncropped or unscaled picture scores far lower).
                    let name = URL(fileURLWithPath: picture).deletingPathExtension().lastPathComponent
                    let input = try GrayImage.read(path: "\(seen)/\(name).png")
                    #expect(input.width == 28 && input.height == 28)
                    let similarity = bestShiftedCosine(input.pixels, digit, maximumShift: 2)
                    #expect(similarity >= 0.9, "\(picture): the model saw a picture unlike the digit (cosine \(similarity))")
                }
            }
        }

        @Test("predict refuses pictures it cannot use with one line naming the file: not a picture, damaged PNG and JPEG, blank, wrong size with --preprocess none")
        func picturesRefused() throws {
            let directory = Fixtures.makeTemporaryDirectory("pictures-refused")
            defer { Fixtures.removeTemporary(directory) }
            let model = directory.appendingPathComponent("model.ckpt").path
            #expect(MnistDist.run(["train", "--data-dir", E2E.mnist, "--split", "chapter", "--model", "mlp", "--epochs", "1",
                                   "--save", model, "--quiet", "--progress", "none"]).status == 0)
            func file(_ name: String, _ bytes: [UInt8]) -> String {
                let path = directory.appendingPathComponent(name).path
                _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
                return path
            }
            var digit = Canvas(width: 40, height: 40)
            digit.fill(x: 15, y: 5, width: 8, height: 30, .black)
            let png = digit.png()
            let cases: [(String, [String], String)] = [
                (file("note.png", Array("hello".utf8)), [], "note.png: is not a PNG, JPEG or PGM image"),
                (file("cut.png", Array(png.prefix(png.count / 2))), [], "cut.png: is a damaged PNG"),
                (file("cut.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 0, 16] + Array("JFIF".utf8)), [], "cut.jpg: is a damaged JPEG"),
                (file("blank.png", Canvas(width: 50, height: 50).png()), [], "blank.png: no digit found"),
                (file("digit.png", png), ["--preprocess", "none"], "digit.png: the picture is 40x40; with --preprocess none the model takes 28x28"),
            ]
            for (path, options, message) in cases {
                let run = MnistDist.run(["predict", model] + options + [path])
                #expect(run.status == ExitCode.badInput.rawValue, "\(run)")
                #expect(run.stderr.contains(message), "\(message): \(run)")
                #expect(run.stderr.split(separator: "\n").count == 1, "one line: \(run)")
            }
            let accepted = MnistDist.run(["predict", model, file("ok.png", png)])
            #expect(accepted.status == 0 && accepted.stdout.contains("ok.png  [40x40, inverted, ink 8x30 at (15, 5)"), "\(accepted)")
        }
    }
}

/// The largest cosine similarity between `a` and `b` (28x28) shifted by up to `maximumShift` pixels either way.
private func bestShiftedCosine(_ a: [UInt8], _ b: [UInt8], maximumShift: Int) -> Double {
    var best = -1.0
    for dy in -maximumShift...maximumShift {
        for dx in -maximumShift...maximumShift {
            var (dot, aa, bb) = (0.0, 0.0, 0.0)
            for y in 0..<28 {
                for x in 0..<28 {
                    let (sx, sy) = (x + dx, y + dy)
                    let va = (0..<28).contains(sx) && (0..<28).contains(sy) ? Double(a[sy * 28 + sx]) : 0
                    let vb = Double(b[y * 28 + x])
                    (dot, aa, bb) = (dot + va * vb, aa + va * va, bb + vb * vb)
                }
            }
            best = max(best, dot / max((aa * bb).squareRoot(), 1e-12))
        }
    }
    return best
}
