// Option groups shared by the subcommands. Defaults come from Training.Defaults, so --help shows the values used.
import ArgumentParser
import Autodiff
import Checkpoints
import Distributed
import MNISTData
import NN
import Foundation
import Reporting
import Support
import Training

extension ModelKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension Normalization: ExpressibleByArgument {}
extension ShuffleKind: ExpressibleByArgument {}
extension ProgressStyle: ExpressibleByArgument {}
extension ThreadMode: ExpressibleByArgument {}
extension ReductionPrecision: ExpressibleByArgument {}
extension ProductPrecision: ExpressibleByArgument {}
extension DatasetName: ExpressibleByArgument {}
extension SplitKind: ExpressibleByArgument {}

/// Which communicator to use.
enum MPIMode: String, ExpressibleByArgument, CaseIterable {
    /// MPI when started by mpirun/srun/mpiexec, one process otherwise.
    case auto
    /// Always initialise MPI (without a launcher: Open MPI's singleton start).
    case on
    /// Never initialise MPI.
    case off
}

/// --data-dir, the one declaration every subcommand that reads input files shares.
struct DataDirectoryOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp(
        "Directory with the input files: MNIST's IDX files (.gz or raw); for toy, img-x.tsv and img-filter.tsv.",
        discussion: "Default: $MNIST_DATA_DIR, ./data/<dataset>, the checkout's data/<dataset>, or the system's copy; for toy, data/toy.",
        valueName: "dir"))
    var path: String?
}

/// --pictures for a training run (train, reproduce), and its old spelling --plots.
struct RunPicturesOption: ParsableArguments {
    @Option(help: ArgumentHelp("Write the run's PNG pictures (accuracy, loss, digits, filters, confusion matrix) into this directory (reproduce: into DIR/mlp and DIR/cnn).", valueName: "dir"))
    var pictures: String?

    @Option(name: .customLong("plots"), help: .hidden)
    var oldPictures: String?

    /// The directory, from either spelling.
    var directory: String? {
        get throws { try OldSpelling.resolve(pictures, oldPictures, now: "--pictures", was: "--plots") }
    }

    func validate() throws {
        _ = try directory
    }
}

struct DataOptions: ParsableArguments {
    @Option(help: "Dataset: \(DatasetName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dataset: DatasetName = Defaults.dataset

    @OptionGroup var directory: DataDirectoryOption
    var dataDirectory: String? { directory.path }

    @Option(help: "Train/test split: chapter (8,000/2,000 of t10k) or standard (60,000/10,000). Default: standard if the train files are present, else chapter.")
    var split: SplitKind?

    @Option(help: "Input scaling: standard ((x/255-0.1307)/0.3081) or none (x/255).")
    var normalize: Normalization = Defaults.normalization
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Model: cnn (the chapter's conv net) or mlp (784-hidden-10, tanh).")
    var model: ModelKind = Defaults.model

    @Option(help: "Hidden layer sizes of the MLP, comma-separated.")
    var hidden: String = Defaults.mlpHiddenSizes.map(String.init).joined(separator: ",")

    @Option(help: "Optimizer: sgd or adadelta. Default: adadelta for the cnn, sgd for the mlp.")
    var optimizer: OptimizerKind?

    @Option(help: ArgumentHelp("Learning rate. Default: \(formatNumber(Defaults.learningRate(for: .adadelta))) for adadelta, \(formatNumber(Defaults.learningRate(for: .sgd))) for sgd.", valueName: "rate"))
    var lr: Double?

    @Option(help: "Adadelta's decay rate rho.")
    var rho: Double = Defaults.adadelta.rho

    @Option(help: "Adadelta's epsilon.")
    var eps: Double = Defaults.adadelta.epsilon

    @Option(name: .customLong("weight-decay"), help: "Adadelta's L2 weight decay.")
    var weightDecay: Double = Defaults.adadelta.weightDecay

    func hiddenSizes() throws -> [Int] {
        let parts = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--hidden \(hidden): expected positive layer sizes separated by commas, e.g. 1024,1024")
        }
        return parts.map { $0! }
    }
}

struct ScheduleOptions: ParsableArguments {
    @Option(help: "Number of epochs.")
    var epochs: Int = Defaults.epochs

    @Option(name: .customLong("batch-size"), help: "Global batch size (summed over all ranks).")
    var batchSize: Int = Defaults.batchSize

    @Option(help: "Seed of the initial weights and the shuffles.")
    var seed: UInt32 = Defaults.seed

    @Option(help: "Sample order: seeded (a permutation per epoch from the seed) or chapter (the chapter's MLP stream; needs --split chapter).")
    var shuffle: ShuffleKind = Defaults.shuffle

    @Flag(name: .customLong("eval-train"), help: "Also measure accuracy on the whole training set after each epoch (otherwise the running accuracy during the epoch is shown).")
    var evaluateTrainingSet = false
}

/// What the console shows.
struct ConsoleOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only results and errors.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Every rank reports, prefixed with its rank.")
    var verbose = false

    @Option(help: "Progress within an epoch: auto (a bar on a terminal, lines otherwise), bar, lines or none.")
    var progress: ProgressStyle = .auto

    func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose cannot be used together") }
    }
}

/// Whether the command runs under MPI.
struct MPIOption: ParsableArguments {
    @Option(help: "Use MPI: auto (when started by mpirun), on (also Open MPI's singleton start), off.")
    var mpi: MPIMode = .auto

    /// The communicator for this process, and a console for its rank.
    func start(_ options: ConsoleOptions) throws -> (Communicator, Console) {
        let communicator: Communicator
        if mpi == .on || (mpi == .auto && MPICommunicator.launchedByMPI) {
            do {
                communicator = try MPICommunicator()
            } catch {
                Console(rank: 0, ranks: 1).error("error: \(error)")
                throw RunError(.ranksDisagree, nil)
            }
        } else {
            communicator = SingleProcessCommunicator()
        }
        return (communicator, Console(rank: communicator.rank, ranks: communicator.size, verbose: options.verbose,
                                      quiet: options.quiet, progress: options.progress))
    }
}

/// Runs `body` with a communicator and console, and finalises MPI on every path (errors are reported as by
/// `reportingErrors`).
func withCommunicator(_ mpi: MPIOption, _ options: ConsoleOptions, _ body: (Communicator, Console) throws -> Void) throws {
    let (communicator, console) = try mpi.start(options)
    defer { communicator.finalize() }
    try reportingErrors(console) { try body(communicator, console) }
}

/// Runs `body`; a `RunError`'s message is printed once (by the rank that has it) and the error passed on for its
/// exit code, a `FileError` is printed and ends with its kind's code, any other error is an internal one.
func reportingErrors(_ console: Console, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as RunError {
        if let message = error.message { console.error("error: \(message)") }
        throw error
    } catch let error as FileError {
        console.error("error: \(error)")
        throw RunError(error)
    } catch {
        console.error("error: \(error)")
        throw RunError(.software, nil)
    }
}
