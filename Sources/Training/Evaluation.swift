// Accuracy and confusion matrices, computed across the ranks, and models loaded back from checkpoint files for
// `evaluate` and `predict`.
import Autodiff
import Distributed
import Foundation
import Interchange
import MNISTData
import NN
import Support

public enum Evaluation {
    /// Accuracy and confusion matrix ([true][predicted]) on `dataset`, split across ranks: each rank predicts a
    /// contiguous part and the counts are summed, so every sample is counted exactly once.
    static func run(_ workers: Workers, _ dataset: Dataset, scaling: PixelScaling,
                    communicator: Communicator) throws -> (accuracy: Double, confusion: [[Int]]) {
        let mine = shard(of: 0..<dataset.count, rank: communicator.rank, ranks: communicator.size)
        let order = (0..<Int32(dataset.count)).map { $0 }
        var predictions = [Int32](repeating: 0, count: dataset.count)
        let chunk = 1000
        predictions.withUnsafeMutableBufferPointer { output in
            var start = mine.lowerBound
            while start < mine.upperBound {
                let end = min(start + chunk, mine.upperBound)
                workers.predict(dataset, order: order, range: start..<end, scaling: scaling, into: output)
                start = end
            }
        }
        let classes = Dataset.classCount
        var counts = [Int64](repeating: 0, count: classes * classes)
        for index in mine { counts[Int(dataset.labels[index]) * classes + Int(predictions[index])] += 1 }
        do {
            try counts.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .sum) }
        } catch {
            throw RunError(.ranksDisagree, "evaluation: \(error)")
        }
        let confusion = (0..<classes).map { row in (0..<classes).map { Int(counts[row * classes + $0]) } }
        let correct = (0..<classes).reduce(0) { $0 + confusion[$1][$1] }
        return (dataset.count == 0 ? .nan : Double(correct) / Double(dataset.count), confusion)
    }
}

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
    public static func load(path: String, normalization: Normalization = Defaults.normalization) throws -> SavedModel {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path)
        } catch {
            throw RunError(error.code == ENOENT ? .missingInput : .badInput, "\(path): \(error)")
        }
        if bytes.count > 8 && bytes[8] == UInt8(ascii: "{") {
            return try loadSafetensors(bytes, path: path, normalization: normalization)
        }
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint.decode(bytes, name: path)
        } catch {
            throw RunError(error)
        }
        let settings = checkpoint.settings
        let configuration: TrainingConfiguration
        do { configuration = try TrainingConfiguration(settings: settings, file: path) } catch { throw RunError(error) }
        let model = configuration.makeModel()
        guard model.architecture == settings["architecture"] else {
            throw RunError(.badInput, "\(path): holds a \(settings["architecture"] ?? "?") model, which this mnist-dist cannot rebuild")
        }
        let store = model.makeParameterStore()
        guard checkpoint.parameters.count == store.count else {
            throw RunError(.badInput, "\(path): holds \(checkpoint.parameters.count) parameters; a \(model.architecture) has \(store.count)")
        }
        store.flatValues = checkpoint.parameters
        return SavedModel(path: path, configuration: configuration, model: model, store: store, settings: settings)
    }

    /// A safetensors file: the model from its tensors' names and shapes, every tensor checked.
    static func loadSafetensors(_ bytes: [UInt8], path: String, normalization: Normalization) throws -> SavedModel {
        do throws(FileError) {
            let file = try SafetensorsFile.decode(bytes, file: path)
            let model = try PortableWeights.model(for: file.tensors, file: path)
            let store = model.makeParameterStore()
            try PortableWeights.load(file.tensors, into: store, model: model, file: path)
            var configuration = TrainingConfiguration()
            configuration.model = model is MLP ? .mlp : .cnn
            if let mlp = model as? MLP { configuration.hiddenSizes = Array(mlp.layerSizes.dropFirst().dropLast()) }
            if let recorded = SettingKey.current(file.metadata)[SettingKey.normalization.rawValue] {
                guard let value = Normalization(rawValue: recorded) else {
                    throw FileError(file: path, problem: "its metadata names the normalisation \(recorded); mnist-dist knows "
                                        + Normalization.allCases.map(\.rawValue).joined(separator: " and "))
                }
                configuration.normalization = value
            } else {
                configuration.normalization = normalization
            }
            return SavedModel(path: path, configuration: configuration, model: model, store: store, settings: file.metadata)
        } catch {
            throw RunError(error)
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
        return ONNXExport.model(model, weights: PortableWeights.tensors(of: model, store: store), scaling: scaling,
                                description: description, metadata: portableMetadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                producerVersion: Version.string)
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

    /// Workers for evaluating this model on this process's threads, each product one call.
    func workers(threads: Int) -> Workers {
        Workers(model: model, store: store, threads: threads)
    }

    /// Accuracy and confusion matrix on `dataset`, split across the communicator's ranks.
    public func evaluate(_ dataset: Dataset, communicator: Communicator, threads: Int) throws -> (accuracy: Double, confusion: [[Int]]) {
        try Evaluation.run(workers(threads: threads), dataset, scaling: scaling, communicator: communicator)
    }
}

extension Tape {
    /// A batch of `count` images (N x 1 x rows x columns) from their pixel bytes, scaled as the model was trained.
    func images(_ pixels: ArraySlice<UInt8>, count: Int, rows: Int, columns: Int, scaling: PixelScaling) -> Tensor {
        constant([count, 1, rows, columns]) { buffer in
            for (i, byte) in zip(buffer.indices, pixels) { buffer[i] = scaling.table[Int(byte)] }
        }
    }
}
