// mnist-dist export: a trained model in other programs' formats (ONNX, safetensors).
import ArgumentParser
import Checkpoints
import Foundation
import NN
import Reporting
import Support
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a trained model as ONNX (a graph for onnxruntime) or safetensors (its weights, under PyTorch's names).",
        discussion: """
            The ONNX graph (IR 7, opset 13) takes pixels / 255 as N x 1 x 28 x 28
            (N dynamic), normalises them as the model was trained, and answers
            log-probabilities (N x 10). The safetensors file holds the weights
            under PyTorch's names (the CNN: conv1.weight ... fc2.bias, as
            pytorch/examples' MNIST Net; an MLP: layer1.weight (out x in),
            layer1.bias, ...), with the model, its normalisation and checksum as
            metadata; evaluate, predict, serve and train --init-from read it.
            Examples:
              mnist-dist train --save cnn.ckpt && mnist-dist export cnn.ckpt --output cnn.onnx
              mnist-dist export cnn.ckpt --output cnn.safetensors
              mnist-dist export torch.safetensors --output torch.onnx --normalize none
            """)

    @OptionGroup var model: ModelArgument

    @Option(help: ArgumentHelp("The file to write (replaced atomically).", valueName: "file"))
    var output: String?

    @Argument(help: .hidden)
    var oldOutput: String?

    @Option(help: ArgumentHelp("onnx or safetensors. Default: from the output's extension (.onnx, .safetensors).", valueName: "format"))
    var format: ExportFormat?

    @Option(help: "For a safetensors file that does not record it: how its model expects pixels, standard or none.")
    var normalize: Normalization = Defaults.normalization

    func validate() throws {
        _ = try model.resolved()
        let output = try outputFile
        if resolvedFormat(output) == nil {
            throw ValidationError("\(output): say --format onnx or --format safetensors (the name ends in neither .onnx nor .safetensors)")
        }
    }

    /// --output, or the old second argument.
    var outputFile: String {
        get throws {
            guard let file = try OldSpelling.resolve(output, oldOutput, now: "--output FILE", was: "the output file as a second argument")
            else { throw ValidationError("Missing expected option '--output <file>'") }
            return file
        }
    }

    func resolvedFormat(_ output: String) -> ExportFormat? {
        format ?? ExportFormat.allCases.first { output.lowercased().hasSuffix(".\($0.rawValue)") }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            let saved = try SavedModel.load(path: try model.resolved(), normalization: normalize)
            let output = try outputFile
            let format = resolvedFormat(output)!
            let bytes = format == .onnx ? saved.onnx() : saved.safetensors().encoded()
            do { try writeFileAtomically(bytes, to: output) } catch { throw RunError(.cannotWrite, "\(output): \(error)") }
            let what = format == .onnx
                ? "ONNX graph (IR 7, opset 13): input pixels [N, 1, 28, 28] scaled to 0-1, normalised inside as \(saved.scaling); output log_probabilities [N, 10]"
                : "safetensors: \(saved.store.entries.count) F32 tensors under PyTorch's names, metadata model, normalize, parameter_checksum"
            console.report("wrote \(output) (\(groupedThousands(bytes.count)) bytes): \(saved.model.architecture), \(what)")
            console.report("parameter checksum \(saved.parameterChecksumHex)")
        }
    }
}

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case onnx, safetensors
}
