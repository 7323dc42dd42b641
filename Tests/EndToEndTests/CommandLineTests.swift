// The command line as a user meets it: help, version, completion, refused values, and every subcommand's output
// and files (JSON that parses, PNG that decodes).
import Foundation
import MNISTData
import Support
import Testing
import TestSupport
import Training
import Pictures

extension EndToEnd {
    @Suite("Command line", .limit(minutes: 3))
    struct CommandLineTests {
        @Test("--help on every subcommand shows its options with defaults and an example",
              arguments: ["train", "evaluate", "predict", "export", "serve", "reproduce", "toy", "smooth", "show", "bench"])
        func help(subcommand: String) {
            let run = MnistDist.run([subcommand, "--help"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("USAGE: mnist-dist \(subcommand)"), "\(run)")
            #expect(run.stdout.contains("Example"), "\(subcommand) --help has no example")
            if subcommand != "predict" && subcommand != "evaluate" {
                #expect(run.stdout.contains("default:"), "\(subcommand) --help shows no defaults")
            }
        }

        @Test("--version, the top-level help, and shell completion")
        func versionAndCompletion() {
            #expect(MnistDist.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Version.string)
            let help = MnistDist.run(["--help"])
            for subcommand in ["train", "evaluate", "predict", "reproduce", "toy", "smooth", "show", "bench"] {
                #expect(help.stdout.contains(subcommand), "\(subcommand) missing from --help")
            }
            let completion = MnistDist.run(["--generate-completion-script", "bash"])
            #expect(completion.status == 0 && completion.stdout.contains("complete"), "\(completion)")
        }

        @Test("invalid values are refused before any work, naming the option and value, with exit code 64",
              arguments: [(["--batch-size", "0"], "--batch-size 0"), (["--lr=-0.5"], "--lr -0.5"), (["--lr", "-0.5"], "--lr"), (["--epochs", "0"], "--epochs 0"),
                          (["--model", "resnet"], "resnet"), (["--optimizer", "adam"], "adam"), (["--threads", "0"], "--threads 0"),
                          (["--rho", "2"], "--rho 2"), (["--hidden", "10,x"], "--hidden 10,x"),
                          (["--shuffle", "chapter", "--split", "standard"], "--shuffle chapter"),
                          (["--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint-dir"),
                          (["--stall-timeout=-1"], "--stall-timeout -1"), (["--stall-timeout", "inf"], "--stall-timeout inf"),
                          (["--precision", "fp8"], "fp8"),
                          (["--allreduce", "exact", "--batch-size", "100000", "--micro-batch", "1"], "raise --micro-batch")])
        func refused(arguments: [String], named: String) {
            let start = Date()
            let run = MnistDist.run(["train", "--data-dir", E2E.mnist] + arguments)
            #expect(run.status == 64, "\(run)")
            #expect(run.stderr.contains(named), "\(run)")
            #expect(Date().timeIntervalSince(start) < 5)
            #expect(!run.stdout.contains("epoch"))
        }

        @Test("under mpirun a usage error is printed once and every rank exits with 64")
        func refusedUnderMPI() {
            let run = MnistDist.run(["train", "--data-dir", E2E.mnist, "--epochs", "0"], ranks: 2, timeout: 60)
            #expect(run.status == 64, "\(run)")
            #expect(run.stderr.components(separatedBy: "--epochs 0").count == 2, "\(run)")
        }

        @Test("--precision bf16 on a CPU without AVX512_BF16 is refused in one line with exit 64, by every rank under mpirun",
              arguments: [nil, 2])
        func bf16Refused(ranks: Int?) {
            // MNIST_DIST_NO_BF16=1 makes the process act as if the CPU lacked it; on such a CPU the variable changes nothing.
            let run = MnistDist.run(["train", "--data-dir", E2E.mnist, "--precision", "bf16"], ranks: ranks,
                                    environment: ["MNIST_DIST_NO_BF16": "1"], timeout: 60)
            #expect(run.status == 64, "\(run)")
            #expect(run.stderr.components(separatedBy: "--precision bf16: this CPU").count == 2, "\(run)")
            #expect(run.stderr.contains("has no AVX512_BF16") && run.stderr.contains("use --precision float"), "\(run)")
            #expect(!run.stdout.contains("epoch"), "\(run)")
        }

        @Test("train writes metrics as JSON lines and every picture as a PNG that decodes; save, evaluate and predict use the model")
        func outputs() throws {
            let directory = Fixtures.makeTemporaryDirectory("outputs")
            defer { Fixtures.removeTemporary(directory) }
            let metrics = directory.appendingPathComponent("metrics.jsonl").path
            let plots = directory.appendingPathComponent("plots").path
            let model = directory.appendingPathComponent("model.ckpt").path
            let run = MnistDist.run(["train", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "2", "--metrics", metrics,
                                     "--pictures", plots, "--save", model, "--progress", "bar"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("\r") && run.stdout.contains("█"), "the bar updates in place")
            #expect(run.stdout.contains("final test accuracy"))
            for what in ["model: \(model)", "metrics: \(metrics)", "picture: \(plots)/accuracy.png"] {
                #expect(run.stdout.contains(what), "the summary lists \(what)")
            }
            // Metrics: two epoch objects and a run object.
            let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").map { try JSON.parse(String($0)) }
            #expect(lines.count == 3)
            #expect(lines[0]["type"].string == "epoch" && lines[1]["epoch"].int == 2)
            for key in ["train_loss", "train_accuracy", "test_accuracy", "seconds", "samples_per_second", "communication_share"] {
                #expect(lines[1].has(key), "epoch line lacks \(key)")
            }
            #expect(lines[2]["type"].string == "run")
            #expect(abs(lines[2]["final_test_accuracy"].double - lines[1]["test_accuracy"].double) < 1e-9)
            #expect(lines[2]["confusion"].array.count == 10)
            // Pictures: each decodes, with valid chunk CRCs (our reader checks them), and pngcheck agrees where installed.
            for name in ["accuracy", "loss", "predictions", "filters", "feature-maps", "confusion"] {
                let path = "\(plots)/\(name).png"
                let image = try GrayImage.read(path: path)
                #expect(image.width >= 300 && image.height >= 300, "\(name).png is \(image.width)x\(image.height)")
                if FileManager.default.isExecutableFile(atPath: "/usr/bin/pngcheck") {
                    let check = Process()
                    check.executableURL = URL(fileURLWithPath: "/usr/bin/pngcheck")
                    check.arguments = ["-q", path]
                    try check.run()
                    check.waitUntilExit()
                    #expect(check.terminationStatus == 0, "pngcheck rejects \(name).png")
                }
            }
            // evaluate: the saved model scores what training reported.
            let evaluation = MnistDist.run(["evaluate", model, "--data-dir", E2E.mnist, "--split", "chapter"])
            #expect(evaluation.status == 0, "\(evaluation)")
            let reported = String(format: "%.4f", lines[1]["test_accuracy"].double)
            #expect(evaluation.stdout.contains("accuracy on mnist chapter test (2,000 images): \(reported)"), "\(evaluation)")
            #expect(evaluation.stdout.contains("confusion matrix"))
            let distributed = MnistDist.run(["evaluate", model, "--data-dir", E2E.mnist, "--split", "chapter"], ranks: 3)
            #expect(distributed.stdout.contains(": \(reported)"), "3 ranks score exactly what one process does: \(distributed)")
            // predict: an IDX file, and a PNG and a PGM of the same digit.
            let idx = DatasetFiles.locate(DatasetName.testImages, in: E2E.mnist)!
            let prediction = MnistDist.run(["predict", model, idx, "--limit", "3"])
            #expect(prediction.status == 0, "\(prediction)")
            #expect(prediction.stdout.split(separator: "\n").filter { $0.contains("(p = ") }.count == 3, "\(prediction)")
            let digits = try IDX.read(path: idx, kind: .images)
            let first = Array(digits.bytes.prefix(784))
            var canvas = Canvas(width: 28, height: 28, background: .black)
            for i in 0..<784 { canvas.set(i % 28, i / 28, .gray(Double(255 - first[i]) / 255)) }  // dark digit on white
            let png = directory.appendingPathComponent("digit.png").path
            try canvas.writePNG(to: png)
            let pgm = directory.appendingPathComponent("digit.pgm").path
            _ = FileManager.default.createFile(atPath: pgm, contents: Data("P5\n28 28\n255\n".utf8 + first))
            let images = MnistDist.run(["predict", model, png, pgm])
            let idxDigit = prediction.stdout.split(separator: "\n")[0].split(separator: ":").last!.split(separator: " ")[0]
            #expect(images.stdout.contains("digit.png  [28x28, inverted, ink "), "dark on light: prepared as MNIST's digits: \(images)")
            #expect(images.stdout.contains("]: \(idxDigit) "), "the inverted PNG gives the IDX answer: \(images)")
            #expect(images.stdout.contains("digit.pgm  [28x28, as it is]: \(idxDigit) "), "\(images)")
        }

        @Test("progress under mpirun: lines in a log (mpirun gives ranks a pseudo-terminal even then), a bar only when mpirun's own output is a terminal")
        func progressUnderMPI() throws {
            let arguments = ["train", "--model", "mlp", "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1"]
            let logged = MnistDist.run(arguments, ranks: 2)
            #expect(logged.status == 0, "\(logged)")
            #expect(!logged.stdout.contains("\r") && !logged.stdout.contains("█"), "no bar frames in a log: \(logged)")
            let lines = logged.stdout.split(separator: "\n").filter { $0.contains("epoch 1/1 batch ") }
            #expect((10...12).contains(lines.count), "about ten progress lines an epoch: \(lines.count)")
            // script(1) runs mpirun on a pseudo-terminal of its own, as a person's shell would.
            let directory = Fixtures.makeTemporaryDirectory("terminal")
            defer { Fixtures.removeTemporary(directory) }
            let transcript = directory.appendingPathComponent("transcript").path
            let command = (["/usr/bin/mpirun"] + MnistDist.mpirunOptions + ["-np", "2", MnistDist.executable] + arguments)
                .map { "'\($0)'" }.joined(separator: " ")
            #expect(MnistDist.shell("script -qec \"\(command)\" \(transcript) < /dev/null") == 0)
            let watched = try String(contentsOfFile: transcript, encoding: .utf8)
            #expect(watched.contains("\r") && watched.contains("█"), "a bar on a terminal: \(watched.suffix(2000))")
        }

        @Test("show writes the first digits with their labels")
        func show() throws {
            let directory = Fixtures.makeTemporaryDirectory("show")
            defer { Fixtures.removeTemporary(directory) }
            let output = directory.appendingPathComponent("digits.png").path
            let run = MnistDist.run(["show", "--data-dir", E2E.mnist, "--split", "chapter", "--count", "12", "--output", output])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("wrote 12 digits"))
            #expect(try GrayImage.read(path: output).width > 300)
        }
    }
}
