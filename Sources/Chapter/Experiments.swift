// The chapter's small experiments — the toy CNN with hand-made filters and the 1-D smoothing convolution — and the
// data of its two training experiments as it wrote them.
import Autodiff
import Checkpoints
import Foundation
import Support
import Training
import MNISTData

// MARK: Toy CNN

/// The chapter's toy CNN: three 5x5 images, two hand-made 3x3 filters, valid convolution, global max-pool, a fully
/// connected layer with weights [[1, 0], [0, 1], [0.6, 0.6]] and no bias, softmax.
public struct ToyExperiment {
    public static let imageNames = ["Cross", "Diagonal", "Right-Diagonal"]
    /// Fully connected weights, out x in: class 0 answers filter 0, class 1 filter 1, class 2 both.
    public static let fullyConnected: [Float] = [1, 0, 0, 1, 0.6, 0.6]

    public let images: [Float]   // 3 x 1 x 5 x 5
    public let filters: [Float]  // 2 x 1 x 3 x 3

    /// Reads the chapter's tab-separated files: `img-x.tsv` (15 rows of 5) and `img-filter.tsv` (6 rows of 3).
    public init(directory: String) throws(FileError) {
        images = try Self.readTable("\(directory)/img-x.tsv", rows: 15, columns: 5)
        filters = try Self.readTable("\(directory)/img-filter.tsv", rows: 6, columns: 3)
    }

    /// Softmax probabilities (3 images x 3 classes) and the six 3x3 feature maps (image-major, then filter).
    public func run() -> (probabilities: [[Float]], featureMaps: [[Float]]) {
        let x = Tensor(shape: [3, 1, 5, 5], scalars: images)
        let maps = conv2D(x, weight: Tensor(shape: [2, 1, 3, 3], scalars: filters), bias: nil)  // 3 x 2 x 3 x 3
        let pooled = flatten(maxPool2D(maps, kernel: 3, stride: 3))                            // 3 x 2
        let logits = linear(pooled, weight: Tensor(shape: [3, 2], scalars: Self.fullyConnected),
                            bias: Tensor(zeros: [3]))
        let probabilities = exp(logSoftmax(logits, axis: 1)).scalars
        let mapValues = maps.scalars
        return ((0..<3).map { Array(probabilities[(3 * $0)..<(3 * $0 + 3)]) },
                (0..<6).map { Array(mapValues[(9 * $0)..<(9 * $0 + 9)]) })
    }

    static func readTable(_ path: String, rows: Int, columns: Int) throws(FileError) -> [Float] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FileError(file: path, problem: "cannot read it (the toy data lives in the checkout's data/toy)", kind: .missing)
        }
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        guard lines.count == rows else { throw FileError(file: path, problem: "\(lines.count) rows, expected \(rows)") }
        var values: [Float] = []
        for (index, line) in lines.enumerated() {
            let fields = line.split(separator: "\t").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard fields.count == columns, fields.allSatisfy({ $0 != nil }) else {
                throw FileError(file: path, problem: "row \(index + 1) is not \(columns) tab-separated numbers")
            }
            values += fields.map { $0! }
        }
        return values
    }
}

/// numpy's way of printing a float32 vector: `[0.26163495 0.26163495 0.47673005]`.
public func numpyStyle(_ values: [Float]) -> String {
    "[" + values.map { "\($0)" }.joined(separator: " ") + "]"
}

// MARK: Smoothing

/// The chapter's smoothing example: 500 points of sin(x) on [0, 10] plus 0.2 x Gaussian noise, smoothed by a moving
/// average of 10 (`convolve(y, ones(10)/10, mode='same')`).
public struct SmoothingExperiment {
    public let x: [Double]
    public let clean: [Double]
    public let noisy: [Double]
    public let smoothed: [Double]

    public init(seed: UInt32, points: Int = 500, window: Int = 10, noise: Double = 0.2) {
        var generator = RandomState(seed: seed)
        x = (0..<points).map { 10 * Double($0) / Double(points - 1) }  // numpy.linspace(0, 10, points)
        clean = x.map { Foundation.sin($0) }
        noisy = clean.map { $0 + noise * generator.standardNormal() }
        let kernel = [Float](repeating: 1 / Float(window), count: window)
        smoothed = convolve(Tensor(shape: [points], scalars: noisy.map(Float.init)), Tensor(shape: [window], scalars: kernel),
                            mode: .same).scalars.map(Double.init)
    }

    /// Root-mean-square distance from sin(x), of the noisy and the smoothed curves.
    public var errors: (noisy: Double, smoothed: Double) {
        func rms(_ values: [Double]) -> Double {
            (zip(values, clean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(values.count)).squareRoot()
        }
        return (rms(noisy), rms(smoothed))
    }
}

// MARK: The chapter's training experiments

public enum ChapterExperiments {
    /// The chapter's printed figures.
    public static let mlpTrainAccuracy = 0.8044, mlpTestAccuracy = 0.7725
    /// The reference PyTorch run of the literal CNN stream (../shared/anchors: torch_cnn_literal.py).
    public static let literalLosses = [0.73, 0.42, 0.32, 0.25, 0.19, 0.16, 0.12, 0.10, 0.08, 0.07]
    public static let literalAccuracy = 0.9575, chapterPrintedAccuracy = 0.961

    /// The MLP as the chapter trains it: chapter split, its continuing RandomState stream, inputs /255, SGD 0.001,
    /// batch 128, 10 epochs, accuracy on the whole training set after each epoch.
    public static var mlpConfiguration: TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.model = .mlp
        configuration.optimizer = .sgd
        configuration.learningRate = 0.001
        configuration.split = .chapter
        configuration.shuffle = .chapter
        configuration.normalization = .none
        configuration.evaluateTrainingSet = true
        return configuration
    }

    /// The CNN as the chapter's code literally feeds it: Adadelta 0.1, inputs /255, batch 128, 10 epochs.
    public static var literalCNNConfiguration: TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.model = .cnn
        configuration.optimizer = .adadelta
        configuration.learningRate = 0.1
        configuration.normalization = .none
        configuration.split = .chapter
        return configuration
    }

    /// The literal CNN stream's data: it trains on the raw t10k rows 0-7999 (not the MLP's shuffled split) in one
    /// order drawn once — `permutation(8000)` from the split's RandomState(0) after the MLP's ten epochs of
    /// shuffles — and is scored on rows 8000-9999.
    public static func literalCNNData(directory: String, dataset: DatasetName = .mnist) throws -> ProvidedData {
        let images = DatasetFiles.locate(DatasetName.testImages, in: directory)
        let labels = DatasetFiles.locate(DatasetName.testLabels, in: directory)
        guard let images, let labels else {
            throw RunError(.missingInput, "\(directory): the t10k files are missing (scripts/fetch-mnist.sh)")
        }
        let all: Dataset
        do {
            all = try Dataset.load(name: "\(dataset) t10k", imagesPath: images, labelsPath: labels)
        } catch {
            throw RunError(.badInput, error.description)
        }
        guard all.count == 10000 else { throw RunError(.badInput, "\(images): the literal stream needs the 10,000 t10k images") }
        var generator = RandomState(seed: 0)
        _ = generator.permutation(10000)                          // the chapter split
        for _ in 0..<10 { _ = generator.permutation(8000) }       // the MLP section's ten epochs
        let order = generator.permutation(8000)                   // drawn once, used every epoch
        let train = all.subset((0..<Int32(8000)).map { $0 }, name: "\(dataset) raw rows 0-7999")
        let test = all.subset((Int32(8000)..<Int32(10000)).map { $0 }, name: "\(dataset) raw rows 8000-9999")
        return ProvidedData(split: DataSplit(kind: .chapter, train: train, test: test, chapterGenerator: nil),
                            order: .fixed(order), description: "the chapter's literal CNN stream: raw t10k rows 0-7999 in "
                                + "one fixed order, scored on rows 8000-9999, from \(directory)")
    }
}
