// A trained model read back from a checkpoint (or a `--save` file) or from a safetensors file, and written out in
// other programs' formats.
import Autodiff
import Foundation
import Interchange
import MNISTData
import NN
import Support

/// A trained model read back from a checkpoint or `--save` file, or from a safetensors file of its parameters under
/// PyTorch's names (see `PortableWeights`).
public struct SavedModel {
    public let path: String
    public let configuration: TrainingConfiguration
    public let model: Model
    public let store: ParameterStore
    /// The settings the file records (a checkpoint's, or a safetensors file's metadata).
    public let settings: [String: String]
    public var scaling: PixelScaling { configuration.normalization.scaling }

    /// Reads and verifies the file (told apart by its contents), rebuilds the model it describes, and loads its
    /// parameters. A safetensors file that does not record its normalisation is taken to use `normalization`.
    public static func load(path: String, normalization: Normalization = Defaults.normalization) throws(FileError) -> SavedModel {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path)
        } catch {
            throw FileError(file: path, problem: error.description, kind: error.code == ENOENT ? .missing : .malformed)
        }
        if bytes.count > 8 && bytes[8] == UInt8(ascii: "{") {
            return try loadSafetensors(bytes, path: path, normalization: normalization)
        }
        let checkpoint = try Checkpoint.decode(bytes, name: path)
        let settings = checkpoint.settings
        let configuration = try TrainingConfiguration(settings: settings, file: path)
        let model = configuration.makeModel()
        guard model.architecture == settings["architecture"] else {
            throw FileError(file: path, problem: "holds a \(settings["architecture"] ?? "?") model, which this mnist-dist cannot rebuild")
        }
        let store = model.makeParameterStore()
        guard checkpoint.parameters.count == store.count else {
            throw FileError(file: path, problem: "holds \(checkpoint.parameters.count) parameters; a \(model.architecture) has \(store.count)")
        }
        store.flatValues = checkpoint.parameters
        return SavedModel(path: path, configuration: configuration, model: model, store: store, settings: settings)
    }

    /// A safetensors file: the model from its tensors' names and shapes, every tensor checked.
    static func loadSafetensors(_ bytes: [UInt8], path: String, normalization: Normalization) throws(FileError) -> SavedModel {
        do {
            let file = try SafetensorsFile.decode(bytes, file: path)
            let model = try PortableWeights.model(for: file.tensors, file: path)
            let store = model.makeParameterStore()
            try PortableWeights.load(file.tensors, into: store, model: model, file: path)
            var configuration = TrainingConfiguration()
            configuration.model = model is MLP ? .mlp : .cnn
            if let mlp = model as? MLP { configuration.hiddenSizes = Array(mlp.layerSizes.dropFirst().dropLast()) }
            if let recorded = Checkpoint.withCurrentKeys(file.metadata)[SettingKey.normalization.rawValue] {
                guard let value = Normalization(rawValue: recorded) else {
                    throw FileError(file: path, problem: "its metadata names the normalisation \(recorded); mnist-dist knows "
                                        + Normalization.allCases.map(\.rawValue).joined(separator: " and "))
                }
                configuration.normalization = value
            } else {
                configuration.normalization = normalization
            }
            return SavedModel(path: path, configuration: configuration, model: model, store: store, settings: file.metadata)
        }
    }

    /// The model's parameters as a safetensors file, under PyTorch's names, with the settings that describe it as
    /// metadata (model, architecture, normalisation, checksum, dataset).
    public func safetensors() -> SafetensorsFile {
        SafetensorsFile(tensors: PortableWeights.tensors(of: model, store: store), metadata: portableMetadata)
    }

    /// The checksum `train` prints for these parameters (16 hex digits): equal checksums, the same model.
    public var parameterChecksumHex: String { StableHash.hex(store.withValues { StableHash.of(UnsafeBufferPointer($0)) }) }

    /// What the exported files record about the model.
    public var portableMetadata: [String: String] {
        var metadata = [SettingKey.model.rawValue: configuration.model.rawValue, SettingKey.architecture.rawValue: model.architecture,
                        SettingKey.normalization.rawValue: configuration.normalization.rawValue,
                        "parameter_checksum": parameterChecksumHex,
                        SettingKey.createdBy.rawValue: "mnist-dist \(Version.string)"]
        let keys: [SettingKey] = [.dataset, .split, .epochs, .optimizer, .learningRate, .seed, .precision]
        for key in keys.map(\.rawValue) { metadata[key] = settings[key] }
        return metadata
    }

    /// The model as an ONNX graph (see `ONNXExport`).
    public func onnx() -> [UInt8] {
        let trained = ["dataset", "split"].compactMap { settings[$0] }.joined(separator: ", ")
        let description = "mnist-dist \(model.architecture): \(model.name == "cnn" ? "the chapter's CNN" : "an MLP") classifying "
            + "28x28 handwritten digits\(trained.isEmpty ? "" : ", trained on \(trained)")"
            + (settings["epochs"].map { " for \($0) epochs" } ?? "")
            + ". Input: pixels / 255, N x 1 x 28 x 28, light digit on dark as in MNIST; inputs are normalised inside the "
            + "graph (\(scaling)). Output: log-probabilities of the digits 0-9, N x 10."
        let about = ONNXExport.About(description: description, metadata: portableMetadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                     producerVersion: Version.string)
        return ONNXExport.model(model, weights: PortableWeights.tensors(of: model, store: store), scaling: scaling, about: about)
    }

    /// Class probabilities (10 per image) for `count` images of rows x columns bytes (light digit on dark, as MNIST).
    public func probabilities(of pixels: [UInt8], count: Int, rows: Int, columns: Int) -> [[Float]] {
        logProbabilities(of: pixels, count: count, rows: rows, columns: columns).map { $0.map { Foundation.exp($0) } }
    }

    /// The model's log-probabilities (10 per image) for `count` images of rows x columns bytes.
    public func logProbabilities(of pixels: [UInt8], count: Int, rows: Int, columns: Int) -> [[Float]] {
        let tape = Tape(recording: false)
        let output = tape.value(at: store) { p in
            model.logProbabilities(tape.images(pixels[...], count: count, rows: rows, columns: columns, scaling: scaling), p)
        }
        let values = output.scalars, classes = output.shape[1]
        return (0..<count).map { Array(values[($0 * classes)..<(($0 + 1) * classes)]) }
    }
}

extension Tape {
    /// A batch of `count` images (N x 1 x rows x columns) from their pixel bytes, scaled as the model was trained.
    public func images(_ pixels: ArraySlice<UInt8>, count: Int, rows: Int, columns: Int, scaling: PixelScaling) -> Tensor {
        constant([count, 1, rows, columns]) { buffer in
            for (i, byte) in zip(buffer.indices, pixels) { buffer[i] = scaling.table[Int(byte)] }
        }
    }
}
