// Models that leave the trainer: ONNX and safetensors checked by onnx, onnxruntime and PyTorch (Tests/Readers), a
// PyTorch-trained model evaluated under mpirun and started from, and every wrong file refused in one line.
import Foundation
import Interchange
import Support
import Testing
import TestSupport
import Training

extension EndToEnd {
    @Suite("Models in other programs' formats", .limit(minutes: 8))
    struct InterchangeTests {
        @Test("export writes ONNX and safetensors that onnx's checker, onnxruntime and PyTorch read to our log-probabilities (within 1e-4, the same classes) on the 2,000 chapter test images",
              arguments: [["--model", "cnn"], ["--model", "mlp", "--normalize", "none", "--hidden", "300,100"]])
        func export(model: [String]) throws {
            let directory = Fixtures.makeTemporaryDirectory("export")
            defer { Fixtures.removeTemporary(directory) }
            let saved = directory.appendingPathComponent("model.ckpt").path
            let checksum = E2E.trainedModel(saved, epochs: 1, extra: model)
            var files: [String: String] = [:]
            for format in ["onnx", "safetensors"] {
                files[format] = directory.appendingPathComponent("model.\(format)").path
                let exported = MnistDist.run(["export", saved, "--output", files[format]!])
                #expect(exported.status == 0, "\(exported)")
                #expect(exported.stdout.contains("parameter checksum \(checksum)"), "\(exported)")
            }
            let predicted = MnistDist.run(["predict", saved, E2E.testImages, "--limit", "10000", "--json"])
            #expect(predicted.status == 0)
            let ours = directory.appendingPathComponent("ours.jsonl")
            try predicted.stdout.write(to: ours, atomically: true, encoding: .utf8)
            let checked = try Python.run("check_exports.py", [files["onnx"]!, files["safetensors"]!, ours.path, E2E.mnist])
            #expect(checked.status == 0, "\(checked.output)")
            let figures = try JSON.parse(checked.output)
            #expect(figures["onnx_same_classes"].int == 2000 && figures["torch_same_classes"].int == 2000, "\(checked.output)")
            #expect(figures["onnx_max_difference"].double <= 1e-4 && figures["torch_max_difference"].double <= 1e-4, "\(checked.output)")
            #expect(figures["opset"].int == 13 && figures["input"].array[1].array.count == 4, "\(checked.output)")
            #expect(figures["metadata"]["parameter_checksum"].string == checksum, "\(checked.output)")
            #expect(figures["safetensors_metadata"]["normalization"].string == (model.contains("none") ? "none" : "standard"))
            print("export \(model[1]): onnxruntime within \(figures["onnx_max_difference"].double), PyTorch within \(figures["torch_max_difference"].double) of ours on 2,000 images")

            // Read back by mnist-dist: the same model, bit for bit.
            let again = MnistDist.run(["export", files["safetensors"]!, "--output", directory.appendingPathComponent("again.safetensors").path])
            #expect(again.stdout.contains("parameter checksum \(checksum)"), "\(again)")
        }

        @Test("a CNN trained in PyTorch and saved with safetensors: mpirun -np 2 evaluate gives PyTorch's accuracy, and train --init-from starts from exactly its weights")
        func fromPyTorch() throws {
            let directory = Fixtures.makeTemporaryDirectory("from-torch")
            defer { Fixtures.removeTemporary(directory) }
            let file = directory.appendingPathComponent("torch.safetensors").path
            let made = try Python.run("torch_model.py", [file, E2E.mnist])
            #expect(made.status == 0, "\(made.output)")
            let torch = try JSON.parse(made.output)
            let evaluated = MnistDist.run(["evaluate", file, "--data-dir", E2E.mnist, "--split", "chapter"], ranks: 2)
            #expect(evaluated.status == 0, "\(evaluated)")
            #expect(evaluated.stdout.contains(String(format: "(2,000 images): %.4f", torch["accuracy"].double)),
                    "PyTorch: \(torch["accuracy"].double); \(evaluated.stdout)")
            let started = MnistDist.run(["train", "--init-from", file, "--data-dir", E2E.mnist, "--split", "chapter", "--epochs", "1",
                                         "--stop-after", "1", "--progress", "none"], ranks: 2)
            #expect(started.status == ExitCode.stopped.rawValue, "\(started)")
            #expect(started.stdout.contains("parameters from \(file) (checksum \(torch["checksum"].string))"), "\(started.stdout)")
        }

        @Test("a wrong safetensors file gets one line naming the tensor and the problem, exit 65 (66 when missing), from evaluate, predict and train --init-from under mpirun")
        func refused() throws {
            let directory = Fixtures.makeTemporaryDirectory("bad-safetensors")
            defer { Fixtures.removeTemporary(directory) }
            let cnn = ChapterCNNWeights.tensors()
            func file(_ name: String, _ tensors: [NamedTensor], metadata: [String: String] = [:]) throws -> String {
                let path = directory.appendingPathComponent(name).path
                try Data(SafetensorsFile(tensors: tensors, metadata: metadata).encoded()).write(to: URL(fileURLWithPath: path))
                return path
            }
            var cases: [(path: String, says: String, code: Int32)] = [
                (try file("missing.safetensors", cnn.filter { $0.name != "fc1.bias" }), "tensor fc1.bias is missing", 65),
                (try file("shape.safetensors", cnn.map { $0.name == "conv2.weight" ? NamedTensor(name: $0.name, shape: [64, 32, 9], values: $0.values) : $0 }),
                 "tensor conv2.weight has shape [64, 32, 9], but the cnn", 65),
                (try file("extra.safetensors", cnn + [NamedTensor(name: "fc3.weight", shape: [1], values: [0])]), "tensor fc3.weight is not a parameter", 65),
                (try file("nan.safetensors", cnn.map { $0.name == "fc2.bias" ? NamedTensor(name: $0.name, shape: $0.shape, values: [.nan] + $0.values.dropFirst()) : $0 }),
                 "tensor fc2.bias holds a value that is not finite", 65),
                (try file("neither.safetensors", [NamedTensor(name: "weight", shape: [2], values: [1, 2])]), "holds neither the chapter CNN's tensors", 65),
                (try file("norm.safetensors", cnn, metadata: ["normalization": "zscore"]), "names the normalisation zscore", 65),
                (directory.appendingPathComponent("absent.safetensors").path, "no such file", 66),
            ]
            // A half-precision tensor, as PyTorch saves a model.half(): the header says F16.
            let f16 = directory.appendingPathComponent("f16.safetensors").path
            let header = Array(#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#.utf8)
            try Data((0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) } + header + [0, 60, 0, 60]).write(to: URL(fileURLWithPath: f16))
            cases.append((f16, "tensor w is F16; mnist-dist reads F32 tensors", 65))
            // Cut short: the data ends before the tensors do.
            let whole = SafetensorsFile(tensors: cnn).encoded()
            let cut = directory.appendingPathComponent("cut.safetensors").path
            try Data(whole.prefix(whole.count - 100)).write(to: URL(fileURLWithPath: cut))
            cases.append((cut, "lie outside the file's", 65))
            for (path, says, code) in cases {
                for (arguments, ranks) in [(["evaluate", path, "--data-dir", E2E.mnist], 2),
                                           (["predict", path, E2E.testImages], nil),
                                           (["train", "--init-from", path, "--data-dir", E2E.mnist, "--epochs", "1"], 2)] as [([String], Int?)] {
                    let run = MnistDist.run(arguments, ranks: ranks, timeout: 60)
                    #expect(run.status == code, "\(arguments.prefix(2)) \(path): \(run)")
                    #expect(run.stderr.components(separatedBy: says).count == 2, "\(arguments.prefix(2)) \(path): \(run.stderr)")
                    #expect(!run.stdout.contains("epoch"))
                }
            }
            // A model of another architecture than the run's.
            let mlp = MnistDist.run(["train", "--model", "mlp", "--init-from", try file("valid.safetensors", cnn),
                                     "--data-dir", E2E.mnist, "--epochs", "1"])
            #expect(mlp.status == 65 && mlp.stderr.contains("holds a cnn conv1(1,32,3)"), "\(mlp)")
        }

        @Test("export refuses an output it cannot name the format of (64) or cannot write (73), and leaves nothing behind")
        func exportRefused() throws {
            let directory = Fixtures.makeTemporaryDirectory("export-refused")
            defer { Fixtures.removeTemporary(directory) }
            let path = directory.appendingPathComponent("cnn.safetensors").path
            try Data(SafetensorsFile(tensors: ChapterCNNWeights.tensors()).encoded()).write(to: URL(fileURLWithPath: path))
            let unnamed = MnistDist.run(["export", path, "--output", directory.appendingPathComponent("model.bin").path])
            #expect(unnamed.status == 64 && unnamed.stderr.contains("--format onnx or --format safetensors"), "\(unnamed)")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.bin").path))
            let unwritable = MnistDist.run(["export", path, "--output", "/proc/model.onnx"])
            #expect(unwritable.status == 73 && unwritable.stderr.contains("/proc/model.onnx"), "\(unwritable)")
            let named = MnistDist.run(["export", path, "--output", directory.appendingPathComponent("model.bin").path, "--format", "onnx"])
            #expect(named.status == 0, "\(named)")
        }
    }
}

/// The chapter CNN's tensors under their portable names, with small values (a file to damage).
enum ChapterCNNWeights {
    static func tensors() -> [NamedTensor] {
        [("conv1.weight", [32, 1, 3, 3]), ("conv1.bias", [32]), ("conv2.weight", [64, 32, 3, 3]), ("conv2.bias", [64]),
         ("fc1.weight", [128, 9216]), ("fc1.bias", [128]), ("fc2.weight", [10, 128]), ("fc2.bias", [10])].map { name, shape in
            let count = shape.reduce(1, *)
            return NamedTensor(name: name, shape: shape, values: (0..<count).map { Float($0 % 7) / 100 - 0.03 })
        }
    }
}
