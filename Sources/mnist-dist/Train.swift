// mnist-dist train: the main job.
import ArgumentParser
import Autodiff
import Checkpoints
import Distributed
import Foundation
import Platform
import Support
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (the default subcommand).",
        discussion: """
            Examples:
              mnist-dist train                                   the chapter's CNN, standardised inputs, 10 epochs
              mnist-dist train --model mlp --normalize none      the chapter's MLP (SGD 0.001)
              mpirun -np 2 mnist-dist train --metrics m.jsonl --pictures pictures
              mnist-dist train --checkpoint-dir ckpt --checkpoint-every 100
              mnist-dist train --checkpoint-dir ckpt --resume ckpt     continue after an interruption
              mnist-dist train --tensorboard runs                 then: tensorboard --logdir runs
              mpirun -np 2 mnist-dist train --trace trace.json    a timeline of both ranks' steps
            """)

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Model and optimizer") var model: ModelOptions
    @OptionGroup(title: "Schedule") var schedule: ScheduleOptions

    @Option(help: "Threads per rank. Default: this machine's cores / the ranks sharing them (at least 1).")
    var threads: Int?

    @Option(name: .customLong("thread-mode"), help: "How a rank uses its threads: workers (split the batch), split (split each large product), blas (OpenBLAS's own threads), or auto (workers for the cnn, split for the mlp).")
    var threadMode: ThreadMode = .auto

    @Option(help: ArgumentHelp("How gradients are summed across workers and ranks: double (any rank count reproduces one process with as many workers, bit for bit), float (half the bytes), or exact (the same bits at every rank count, thread count and thread mode; 4 bytes a value on the wire).", valueName: "double|float|exact"))
    var allreduce: ReductionPrecision = .double

    @Option(help: ArgumentHelp("The operands of every dense product and convolution, forward and backward: float, or bf16 (rounded to bfloat16, multiplied in pairs and summed in Float, as PyTorch's autocast does; parameters, optimizer state, loss and the gradient sum stay Float). bf16 needs a CPU with AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake and Sapphire Rapids and later).", valueName: "float|bf16"))
    var precision: ProductPrecision = .float

    @Option(name: .customLong("micro-batch"), help: "With --allreduce exact: samples per micro-batch, the unit whose gradient is computed whole (ranks beyond batch-size / micro-batch have nothing to do).")
    var microBatch: Int = Defaults.microBatch

    @Flag(inversion: .prefixedNo, help: "Overlap the gradient all-reduce with backward (buckets of 1 MB, last layer first; ranks with one thread) instead of one all-reduce after backward. With --allreduce exact, each bucket's sum starts in the backward of the rank's last micro-batch. The bits are the same either way. The ranks of a host sum and step in memory they share, each its slice, and only across hosts all-reduce: with --overlap, each slice per bucket. Where each pays: docs/scaling.md.")
    var overlap = false

    @Option(name: .customLong("checkpoint-dir"), help: ArgumentHelp("Write checkpoints here (at every epoch end, and every --checkpoint-every steps).", valueName: "dir"))
    var checkpointDirectory: String?

    @Option(name: .customLong("checkpoint-every"), help: ArgumentHelp("Also checkpoint every N steps.", valueName: "n"))
    var checkpointEvery: Int?

    @Option(name: .customLong("keep-checkpoints"), help: ArgumentHelp("Checkpoints to keep in --checkpoint-dir (the newest; older ones are deleted). Default: \(Defaults.checkpointsKept).", valueName: "n"))
    var newKeepCheckpoints: Int?

    @Option(name: .customLong("keep"), help: .hidden)
    var oldKeepCheckpoints: Int?

    @Option(help: ArgumentHelp("Continue from a checkpoint file, or from the newest valid checkpoint in a directory. A directory that does not exist yet, or holds no checkpoint, means a fresh start (the start block says so), so a requeue script can pass the same --resume every time; a missing *.ckpt file is an error.", valueName: "path"))
    var resume: String?

    @Option(name: .customLong("init-from"), help: ArgumentHelp("Start from the parameters of this file instead of the seed's initialisation: a safetensors file under PyTorch's names (see export), for example one saved from PyTorch, or a checkpoint. Names and shapes must be the model's; the optimizer starts afresh.", valueName: "file"))
    var initFrom: String?

    @Option(help: ArgumentHelp("Write the final model (a checkpoint file) for evaluate, predict, export and serve.", valueName: "file"))
    var save: String?

    @Option(help: ArgumentHelp("Write metrics as JSON lines: one object per epoch and one for the run.", valueName: "file"))
    var metrics: String?

    @OptionGroup var pictures: RunPicturesOption

    @Option(help: ArgumentHelp("Write TensorBoard event files: a new run directory under this one, with scalars per step and per epoch, the run's pictures and the configuration. View with: tensorboard --logdir DIR.", valueName: "dir"))
    var tensorboard: String?

    @Option(help: ArgumentHelp("Write a timeline of every rank's steps (data, forward, backward, all-reduce wait, optimizer, evaluation, checkpoint) as Chrome trace-event JSON, all ranks in one file: open it in ui.perfetto.dev or chrome://tracing.", valueName: "file"))
    var trace: String?

    @Option(name: .customLong("stall-timeout"), help: ArgumentHelp("Seconds a rank waits in a collective for the others before the job is declared stalled (raised to \(Int(Defaults.stallStepMultiple)) times the slowest step): the ranks that did not arrive are named, with their hosts, and the job ends with exit code 79, its last checkpoint intact. 0 waits for ever.", valueName: "seconds"))
    var stallTimeout: Double = Defaults.stallTimeout

    @Option(name: .customLong("stop-after"), help: ArgumentHelp("Stop cleanly after N steps, as on SIGTERM (checkpoint, exit code 75).", valueName: "n"))
    var stopAfter: Int?

    @OptionGroup(title: "Output") var console: ConsoleOptions
    @OptionGroup(title: "MPI") var mpi: MPIOption

    /// --keep-checkpoints, or its old spelling --keep.
    var keepCheckpoints: Int {
        get throws {
            try OldSpelling.resolve(newKeepCheckpoints, oldKeepCheckpoints, now: "--keep-checkpoints", was: "--keep")
                ?? Defaults.checkpointsKept
        }
    }

    func validate() throws {
        let configuration = try trainingConfiguration()
        let keepCheckpoints = try self.keepCheckpoints
        do { try configuration.validate() } catch {
            throw ValidationError("\(Train.option(for: error.setting)) \(error.value): \(error.problem)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads \(threads): must be at least 1") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every \(checkpointEvery): must be at least 1") }
        if checkpointEvery != nil && checkpointDirectory == nil && SlurmJob.current() == nil {
            throw ValidationError("--checkpoint-every needs --checkpoint-dir (under Slurm a directory per job is the default)")
        }
        if keepCheckpoints < 1 { throw ValidationError("--keep-checkpoints \(keepCheckpoints): must be at least 1") }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after \(stopAfter): must be at least 1") }
        if !(stallTimeout >= 0 && stallTimeout.isFinite) {
            throw ValidationError("--stall-timeout \(stallTimeout): must be a number of seconds, 0 or more (0 waits for ever)")
        }
    }

    /// The option that sets a configuration setting.
    static func option(for setting: String) -> String {
        let options: [SettingKey: String] = [.learningRate: "--lr", .epsilon: "--eps", .hiddenSizes: "--hidden",
                                             .normalization: "--normalize", .gradientSum: "--allreduce"]
        guard let key = SettingKey(rawValue: setting) else { return setting }
        return options[key] ?? "--" + key.rawValue.replacingOccurrences(of: "_", with: "-")
    }

    func trainingConfiguration() throws -> TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.model = model.model
        configuration.hiddenSizes = try model.hiddenSizes()
        configuration.optimizer = model.optimizer
        configuration.learningRate = model.lr
        configuration.rho = model.rho
        configuration.epsilon = model.eps
        configuration.weightDecay = model.weightDecay
        configuration.epochs = schedule.epochs
        configuration.batchSize = schedule.batchSize
        configuration.seed = schedule.seed
        configuration.shuffle = schedule.shuffle
        configuration.evaluateTrainingSet = schedule.evaluateTrainingSet
        configuration.dataset = data.dataset
        configuration.split = data.split
        configuration.normalization = data.normalize
        configuration.precision = precision
        configuration.gradientSum = allreduce
        configuration.microBatch = microBatch
        return configuration
    }

    func runOptions() throws -> RunOptions {
        var options = RunOptions()
        options.dataDirectory = data.dataDirectory
        options.threads = threads
        options.threadMode = threadMode
        options.overlap = overlap
        options.checkpointDirectory = checkpointDirectory
        options.checkpointEvery = checkpointEvery
        options.keepCheckpoints = try keepCheckpoints
        options.resume = resume
        options.initFrom = initFrom
        options.save = save
        options.metricsFile = metrics
        options.picturesDirectory = try pictures.directory
        options.tensorBoardDirectory = tensorboard
        options.traceFile = trace
        options.stopAfterSteps = stopAfter
        options.stallTimeout = stallTimeout > 0 ? stallTimeout : nil
        if let job = SlurmJob.current() {
            options.slurm = job
            if checkpointDirectory == nil {
                options.checkpointDirectory = job.defaultCheckpointDirectory
                options.notes.append("checkpoints go to \(job.defaultCheckpointDirectory), the default under Slurm (one "
                                     + "directory per job; --checkpoint-dir sets another)")
            }
            if resume == nil && job.restartCount > 0 {
                options.resume = options.checkpointDirectory
                options.notes.append("Slurm requeued this job (restart \(job.restartCount)): resuming from the newest "
                                     + "checkpoint in \(options.checkpointDirectory!)")
            }
        }
        return options
    }

    func run() throws {
        let configuration = try trainingConfiguration()
        try withCommunicator(mpi, console) { communicator, console in
            let trainer = Trainer(configuration: configuration, options: try runOptions(), communicator: communicator, console: console)
            let summary = try trainer.run()
            console.report(String(format: "final test accuracy %.4f (%.2f%%), train %.4f; %.1f s in all",
                                  summary.finalTestAccuracy, 100 * summary.finalTestAccuracy, summary.finalTrainAccuracy,
                                  summary.totalSeconds))
            console.report("parameter checksum \(summary.parameterChecksumHex) (equal checksums: the same model, bit for bit)")
            for (what, path) in summary.outputs { console.info("  \(what): \(path)") }
        }
    }
}
