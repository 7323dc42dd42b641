// What a training run is: model, optimizer, data, schedule. Every default lives here, in `Defaults`, and the
// command line shows and uses these same values.
import Autodiff
import Distributed
import MNISTData
import NN
import Support

/// The models mnist-dist trains.
public enum ModelKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case cnn, mlp
    public var description: String { rawValue }
}

/// The optimizers mnist-dist offers.
public enum OptimizerKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sgd, adadelta
    public var description: String { rawValue }
}

/// How pixel bytes become inputs.
public enum Normalization: String, CaseIterable, Sendable, CustomStringConvertible {
    /// (x/255 - 0.1307) / 0.3081, the usual MNIST standardisation.
    case standard
    /// x/255 only, as the chapter does.
    case none
    public var description: String { rawValue }
    public var scaling: PixelScaling { self == .standard ? .mnistStandard : .unit }
}

/// Where each epoch's sample order comes from.
public enum ShuffleKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// A fresh permutation per epoch from RandomState([seed, epoch]).
    case seeded
    /// The chapter's MLP stream: permutation(n) each epoch from the generator that drew the chapter split.
    case chapter
    public var description: String { rawValue }
}

/// How a rank uses its threads.
public enum ThreadMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// By model: workers for the CNN, split products for the MLP (the faster mode for each; docs/performance.md).
    case auto
    /// Split the rank's shard over worker threads, each with single-threaded BLAS.
    case workers
    /// One worker; each large product is cut into column ranges computed side by side on the rank's threads, each by
    /// single-threaded OpenBLAS (and the sparse-input kernels share their blocks the same way).
    case split
    /// One worker whose products use OpenBLAS's own threads.
    case blas
    public var description: String { rawValue }

    /// The mode a model runs in. The CNN is many small GEMMs with im2col, Winograd transforms and pooling
    /// between them: workers keep every core busy through all of it, where OpenBLAS threads spin between calls.
    /// The MLP is three large GEMMs per pass: one worker avoids summing a full gradient per worker, and splitting
    /// each product over our own threads (OpenBLAS single-threaded) leaves no thread spinning between calls and
    /// none taking the core the sparse first-layer kernels need.
    ///
    /// Under the exact sum, `blas` runs as `split`: OpenBLAS's threads partition a product by their number, so
    /// another thread count trains other bits, while split mode cuts it at fixed columns whatever the count. With
    /// bfloat16 products too: OpenBLAS does not compute them, so only split mode threads them.
    public func resolved(for model: ModelKind, reduction: ReductionPrecision = .double,
                         precision: ProductPrecision = .float) -> ThreadMode {
        if self == .blas && (reduction == .exact || precision == .bf16) { return .split }
        guard self == .auto else { return self }
        return model == .cnn ? .workers : .split
    }
}

/// The names under which settings are recorded in checkpoints, metrics and exported models, and compared across
/// ranks: snake_case, part of the file formats, never renamed with a command-line option.
public enum SettingKey: String, CaseIterable, Sendable {
    case model, optimizer, epochs, seed, dataset, split, shuffle, rho, epsilon, normalization
    case learningRate = "learning_rate"
    case batchSize = "batch_size"
    case hiddenSizes = "hidden_sizes"
    case weightDecay = "weight_decay"
    /// The products' operands (float or bf16).
    case precision
    /// How gradients are summed (double, float or exact), and the exact sum's micro-batch size.
    case gradientSum = "gradient_sum"
    case microBatch = "micro_batch"
    /// Recorded by checkpoints only: the model's architecture, the training set's size, the program that wrote it.
    case architecture
    case trainingSamples = "training_samples"
    case createdBy = "created_by"

    /// The settings a resumed run must share with its checkpoint. The rest may change: epochs, and precision,
    /// gradient_sum and micro_batch, whose change the start block names.
    public static let identity: [SettingKey] = [.model, .architecture, .dataset, .split, .trainingSamples, .optimizer,
                                                .batchSize, .seed, .normalization, .shuffle, .hiddenSizes, .learningRate,
                                                .rho, .epsilon, .weightDecay]
}

/// Every default of a training run, in one place.
public enum Defaults {
    public static let model = ModelKind.cnn
    public static let mlpHiddenSizes = [1024, 1024]
    public static let epochs = 10
    public static let batchSize = 128
    public static let seed: UInt32 = 0
    public static let dataset = DatasetName.mnist
    public static let normalization = Normalization.standard
    public static let shuffle = ShuffleKind.seeded
    public static let adadelta = Adadelta.Configuration()
    public static let sgdLearningRate = SGD.defaultLearningRate
    public static let checkpointsKept = 3
    public static let checksumEvery = 200
    /// Seconds a collective waits for the other ranks before the job is declared stalled (at least ten times the
    /// slowest step so far): far above any wait of a healthy job, short enough that a frozen host costs minutes.
    public static let stallTimeout = 300.0
    /// How many times the slowest step a collective may wait, when that is longer than `stallTimeout`.
    public static let stallStepMultiple = 10.0
    /// Samples per micro-batch of the exact sum: 4 of a 128-sample batch (fewer, larger products than at 16 a
    /// micro-batch, and faster for both models; docs/performance.md).
    public static let microBatch = 32

    /// The optimizer a model trains with unless told otherwise (the chapter's choices).
    public static func optimizer(for model: ModelKind) -> OptimizerKind { model == .cnn ? .adadelta : .sgd }

    /// The learning rate an optimizer uses unless told otherwise.
    public static func learningRate(for optimizer: OptimizerKind) -> Double {
        optimizer == .adadelta ? adadelta.learningRate : sgdLearningRate
    }

}

extension SettingError {
    /// A configuration setting out of range.
    public init(_ key: SettingKey, value: String, problem: String) {
        self.init(setting: key.rawValue, value: value, problem: problem)
    }
}

/// A complete description of a training run.
public struct TrainingConfiguration: Equatable, Sendable {
    public var model = Defaults.model
    /// Hidden layer sizes of the MLP (ignored by the CNN).
    public var hiddenSizes = Defaults.mlpHiddenSizes
    /// nil: the model's default optimizer.
    public var optimizer: OptimizerKind?
    /// nil: the optimizer's default learning rate.
    public var learningRate: Double?
    public var rho = Defaults.adadelta.rho
    public var epsilon = Defaults.adadelta.epsilon
    public var weightDecay = Defaults.adadelta.weightDecay
    public var epochs = Defaults.epochs
    /// The global batch size, over all ranks.
    public var batchSize = Defaults.batchSize
    public var seed = Defaults.seed
    public var dataset = Defaults.dataset
    /// nil: the chapter split if only the t10k files are present, else the standard one.
    public var split: SplitKind?
    public var normalization = Defaults.normalization
    public var shuffle = Defaults.shuffle
    /// The operands of the products and convolutions, forward and backward; parameters, optimizer and sums stay Float.
    public var precision = ProductPrecision.float
    /// How gradients are summed across workers and ranks: Double (any rank count reproduces one process with as
    /// many workers), Float, or exact (the same bits at every rank and thread count).
    public var gradientSum = ReductionPrecision.double
    /// Samples per micro-batch of the exact sum: the unit whose gradient is computed whole. Runs compare bit for
    /// bit at the same size.
    public var microBatch = Defaults.microBatch
    /// Also measure accuracy on the whole training set after each epoch (the chapter does; it costs a forward pass).
    public var evaluateTrainingSet = false

    public init() {}

    public var resolvedOptimizer: OptimizerKind { optimizer ?? Defaults.optimizer(for: model) }
    public var resolvedLearningRate: Double { learningRate ?? Defaults.learningRate(for: resolvedOptimizer) }

    /// Refuses values no run can use, naming the option.
    public func validate() throws(SettingError) {
        guard epochs >= 1 else { throw SettingError(.epochs, value: "\(epochs)", problem: "must be at least 1") }
        guard batchSize >= 1 else {
            throw SettingError(.batchSize, value: "\(batchSize)", problem: "must be at least 1")
        }
        guard microBatch >= 1 else { throw SettingError(.microBatch, value: "\(microBatch)", problem: "must be at least 1") }
        guard hiddenSizes.allSatisfy({ $0 >= 1 }) else {
            throw SettingError(.hiddenSizes, value: hiddenSizes.map(String.init).joined(separator: ","),
                                     problem: "every hidden layer needs at least one unit")
        }
        _ = try makeOptimizer(parameterCount: 1)
        if shuffle == .chapter && split == .standard {
            throw SettingError(.shuffle, value: "chapter",
                                     problem: "the chapter's stream continues the chapter split's generator; use --split chapter")
        }
    }

    /// The model this configuration trains, for images of the given size.
    public func makeModel(imageSize: (rows: Int, columns: Int) = (28, 28)) -> Model {
        switch model {
        case .cnn: return ChapterCNN()
        case .mlp: return MLP(layerSizes: [imageSize.rows * imageSize.columns] + hiddenSizes + [10], imageSize: imageSize)
        }
    }

    /// The optimizer of the configuration; its state in `state` when given (`Optimizer.stateCount` Floats).
    public func makeOptimizer(parameterCount: Int, state: UnsafeMutablePointer<Float>? = nil) throws(SettingError) -> Optimizer {
        switch resolvedOptimizer {
        case .sgd:
            return try SGD(learningRate: resolvedLearningRate)
        case .adadelta:
            return try Adadelta(parameterCount: parameterCount, configuration: .init(
                learningRate: resolvedLearningRate, rho: rho, epsilon: epsilon, weightDecay: weightDecay), state: state)
        }
    }

    /// Floats of state the optimizer keeps for `parameterCount` parameters (its `stateCount`).
    public func optimizerStateCount(parameterCount: Int) -> Int {
        switch resolvedOptimizer {
        case .sgd: 0
        case .adadelta: 2 * parameterCount
        }
    }

    /// The configuration a file recorded as `settings` (under the current keys or their former names); a setting the
    /// file leaves out takes its default.
    /// - Throws: `FileError` naming a recorded value this mnist-dist cannot read.
    public init(settings recorded: [String: String], file: String) throws(FileError) {
        self.init()
        let settings = Checkpoint.withCurrentKeys(recorded)
        func value<T>(_ key: SettingKey, _ parse: (String) -> T?) throws(FileError) -> T? {
            guard let text = settings[key.rawValue] else { return nil }
            guard let value = parse(text) else {
                throw FileError(file: file, problem: "records \(key.rawValue) \(text), which this mnist-dist cannot read")
            }
            return value
        }
        guard let model = settings[SettingKey.model.rawValue].flatMap(ModelKind.init(rawValue:)) else {
            throw FileError(file: file, problem: "names no model this mnist-dist knows (model \(settings["model"] ?? "unset"))")
        }
        self.model = model
        hiddenSizes = try value(.hiddenSizes) { text in
            let sizes = text.split(separator: ",").map { Int($0) ?? 0 }
            return sizes.isEmpty || sizes.contains { $0 < 1 } ? nil : sizes
        } ?? hiddenSizes
        optimizer = try value(.optimizer, OptimizerKind.init(rawValue:))
        learningRate = try value(.learningRate, Double.init)
        rho = try value(.rho, Double.init) ?? rho
        epsilon = try value(.epsilon, Double.init) ?? epsilon
        weightDecay = try value(.weightDecay, Double.init) ?? weightDecay
        epochs = try value(.epochs, Int.init) ?? epochs
        batchSize = try value(.batchSize, Int.init) ?? batchSize
        seed = try value(.seed, UInt32.init) ?? seed
        dataset = try value(.dataset, DatasetName.init(rawValue:)) ?? dataset
        if settings[SettingKey.split.rawValue] != "auto" { split = try value(.split, SplitKind.init(rawValue:)) }
        normalization = try value(.normalization, Normalization.init(rawValue:)) ?? normalization
        shuffle = try value(.shuffle, ShuffleKind.init(rawValue:)) ?? shuffle
        precision = try value(.precision, ProductPrecision.init(rawValue:)) ?? precision
        gradientSum = try value(.gradientSum, ReductionPrecision.init(rawValue:)) ?? gradientSum
        microBatch = try value(.microBatch, Int.init) ?? microBatch
    }

    /// Every setting that must be identical on all ranks, and that a checkpoint records, by stable key.
    public var settings: [(key: SettingKey, value: String)] {
        var result: [(SettingKey, String)] = [
            (.model, model.rawValue), (.optimizer, resolvedOptimizer.rawValue),
            (.learningRate, formatNumber(resolvedLearningRate)), (.epochs, "\(epochs)"), (.batchSize, "\(batchSize)"),
            (.seed, "\(seed)"), (.dataset, dataset.rawValue), (.split, split?.rawValue ?? "auto"),
            (.normalization, normalization.rawValue), (.shuffle, shuffle.rawValue), (.precision, precision.rawValue),
            (.gradientSum, gradientSum.rawValue),
        ]
        if gradientSum == .exact { result.append((.microBatch, "\(microBatch)")) }
        if model == .mlp { result.append((.hiddenSizes, hiddenSizes.map(String.init).joined(separator: ","))) }
        if resolvedOptimizer == .adadelta {
            result += [(.rho, formatNumber(rho)), (.epsilon, formatNumber(epsilon)), (.weightDecay, formatNumber(weightDecay))]
        }
        return result
    }
}
