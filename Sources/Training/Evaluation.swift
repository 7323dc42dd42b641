// Accuracy and confusion matrices, computed across the ranks, and models loaded back from checkpoint files for
// `evaluate` and `predict`.
import Autodiff
import Distributed
import Foundation
import MNISTData
import NN

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

/// A trained model read back from a checkpoint or `--save` file.
public struct SavedModel {
    public let path: String
    public let checkpoint: Checkpoint
    public let configuration: TrainingConfiguration
    public let model: Model
    public let store: ParameterStore
    public var scaling: PixelScaling { configuration.normalization.scaling }

    /// Reads and verifies the file, rebuilds the model it describes, and loads its parameters.
    public static func load(path: String) throws -> SavedModel {
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint.read(path: path)
        } catch {
            throw RunError(error)
        }
        let settings = checkpoint.settings
        var configuration = TrainingConfiguration()
        guard let modelName = settings["model"], let kind = ModelKind(rawValue: modelName) else {
            throw RunError(.badInput, "\(path): names no model this mnist-dist knows (model \(settings["model"] ?? "unset"))")
        }
        configuration.model = kind
        if let hidden = settings["hidden"] {
            configuration.hiddenSizes = hidden.split(separator: ",").compactMap { Int($0) }
        }
        configuration.normalization = settings["normalize"].flatMap(Normalization.init(rawValue:)) ?? .standard
        configuration.dataset = settings["dataset"].flatMap(DatasetName.init(rawValue:)) ?? .mnist
        let model = configuration.makeModel()
        guard model.architecture == settings["architecture"] else {
            throw RunError(.badInput, "\(path): holds a \(settings["architecture"] ?? "?") model, which this mnist-dist cannot rebuild")
        }
        let store = model.makeParameterStore()
        guard checkpoint.parameters.count == store.count else {
            throw RunError(.badInput, "\(path): holds \(checkpoint.parameters.count) parameters; a \(model.architecture) has \(store.count)")
        }
        store.flatValues = checkpoint.parameters
        return SavedModel(path: path, checkpoint: checkpoint, configuration: configuration, model: model, store: store)
    }

    /// Class probabilities (10 per image) for `count` images of rows x columns bytes (light digit on dark, as MNIST).
    public func probabilities(of pixels: [UInt8], count: Int, rows: Int, columns: Int) -> [[Float]] {
        let tape = Tape(recording: false)
        let output = tape.value(at: store) { p in
            exp(model.logProbabilities(tape.images(pixels[...], count: count, rows: rows, columns: columns, scaling: scaling), p))
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
