// mnist-dist train: the main job.
import ArgumentParser
import Autodiff
import Distributed
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (the default subcommand).",
        discussion: """
            Examples:
              mnist-dist train                                   the chapter's CNN, standardised inputs, 10 epochs
              mnist-dist train --model mlp --normalize none      the chapter's MLP (SGD 0.001)
              mpirun -np 2 mnist-dist train --metrics m.jsonl --plots plots
              mnist-dist train --checkpoint-dir ckpt --checkpoint-every 100
              mnist-dist train --checkpoint-dir ckpt --resume ckpt     continue after an interruption
              mnist-dist train --tensorboard runs                 then: tensorboard --logdir runs
              mpirun -np 2 mnist-dist train --trace trace.json    a timeline of both ranks' steps
            """)

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Model and optimizer") var model: ModelOptions
    @OptionGroup(title: "Schedule") var schedule: ScheduleOptions

    @Option(help: "Threads per rank. Default: this host's cores / the ranks on this host (at least 1).")
    var threads: Int?

    @Option(name: .customLong("thread-mode"), help: "How a rank uses its threads: workers (split the batch), split (split each large product), blas (OpenBLAS's own threads), or auto (workers for the cnn, split for the mlp).")
    var threadMode: ThreadMode = .auto

    @Option(help: ArgumentHelp("How gradients are summed across workers and ranks: double (any rank count reproduces one process with as many workers, bit for bit), float (half the bytes), or exact (the same bits at every rank count, thread count and thread mode, 4 bytes a value on the wire; measured on 2 cores against double: the CNN's epoch the same at -np 2, the MLP's +10 % at -np 2 and 2.6x in one process, where its micro-batches cost most).", valueName: "double|float|exact"))
    var allreduce: ReductionPrecision = .double

    @Option(help: ArgumentHelp("The operands of every dense product and convolution, forward and backward: float, or bf16 (rounded to bfloat16, multiplied in pairs and summed in Float, as PyTorch's autocast does; parameters, optimizer state, loss and the gradient sum stay Float). bf16 needs a CPU with AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake and Sapphire Rapids and later).", valueName: "float|bf16"))
    var precision: ProductPrecision = .float

    @Option(name: .customLong("micro-batch"), help: "With --allreduce exact: samples per micro-batch, the unit whose gradient is computed whole (ranks beyond batch-size / micro-batch have nothing to do).")
    var microBatch: Int = Defaults.microBatch

    @Flag(inversion: .prefixedNo, help: "Overlap the gradient all-reduce with backward (buckets of 1 MB, last layer first; ranks with one thread) instead of one all-reduce after backward. Measured on 2 simulated hosts (docs/scaling.md): 7.6 against 10.8 s per CNN epoch at 1 Gbit/s, 3.2 against 3.9 s on unlimited links. With --allreduce exact, each bucket's sum starts in the backward of the rank's last micro-batch (the same bits): 5.64 against 7.05 s per CNN epoch at 1 Gbit/s (6.47 with --allreduce float and no overlap). Without --overlap the ranks of a host sum and step in memory they share, each its slice (no all-reduce on one host; across hosts each rank all-reduces its slice), which on one host is faster.")
    var overlap = false

    @Option(name: .customLong("checkpoint-dir"), help: "Write checkpoints here (at every epoch end, and every --checkpoint-every steps).")
    var checkpointDirectory: String?

    @Option(name: .customLong("checkpoint-every"), help: "Also checkpoint every N steps.")
    var checkpointEvery: Int?

    @Option(name: .customLong("keep"), help: "Checkpoints to keep in --checkpoint-dir.")
    var keepCheckpoints: Int = Defaults.checkpointsKept

    @Option(help: "Continue from a checkpoint file, or the newest valid checkpoint in a directory.")
    var resume: String?

    @Option(name: .customLong("init-from"), help: ArgumentHelp("Start from the parameters of this file instead of the seed's initialisation: a safetensors file under PyTorch's names (see export), for example one saved from PyTorch, or a checkpoint. Names and shapes must be the model's; the optimizer starts afresh.", valueName: "file"))
    var initFrom: String?

    @Option(help: "Write the final model (a checkpoint file) for evaluate and predict.")
    var save: String?

    @Option(help: "Write metrics as JSON lines: one object per epoch and one for the run.")
    var metrics: String?

    @Option(help: "Write PNG pictures of the run (accuracy, loss, digits, filters, confusion matrix) into this directory.")
    var plots: String?

    @Option(help: ArgumentHelp("Write TensorBoard event files: a new run directory under this one, with scalars per step and per epoch, the run's pictures and the configuration. View with: tensorboard --logdir DIR.", valueName: "dir"))
    var tensorboard: String?

    @Option(help: ArgumentHelp("Write a timeline of every rank's steps (data, forward, backward, all-reduce wait, optimizer, evaluation, checkpoint) as Chrome trace-event JSON, all ranks in one file: open it in ui.perfetto.dev or chrome://tracing.", valueName: "file"))
    var trace: String?

    @Option(name: .customLong("stall-timeout"), help: ArgumentHelp("Seconds a rank waits in a collective for the others before the job is declared stalled (raised to \(Int(Defaults.stallStepMultiple)) times the slowest step): the ranks that did not arrive are named, with their hosts, and the job ends with exit code 79, its last checkpoint intact. 0 waits for ever.", valueName: "seconds"))
    var stallTimeout: Double = Defaults.stallTimeout

    @Option(name: .customLong("stop-after"), help: "Stop cleanly after N steps, as on SIGTERM (checkpoint, exit code 75).")
    var stopAfter: Int?

    @OptionGroup(title: "Output and MPI") var output: OutputOptions

    func validate() throws {
        let configuration = try trainingConfiguration()
        do { try configuration.validate() } catch {
            throw ValidationError("\(Train.option(for: error.setting)) \(error.value): \(error.problem)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads \(threads): must be at least 1") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every \(checkpointEvery): must be at least 1") }
        if checkpointEvery != nil && checkpointDirectory == nil && SlurmJob.current() == nil {
            throw ValidationError("--checkpoint-every needs --checkpoint-dir (under Slurm a directory per job is the default)")
        }
        if keepCheckpoints < 1 { throw ValidationError("--keep \(keepCheckpoints): must be at least 1") }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after \(stopAfter): must be at least 1") }
        if microBatch < 1 { throw ValidationError("--micro-batch \(microBatch): must be at least 1") }
        if !(stallTimeout >= 0 && stallTimeout.isFinite) {
            throw ValidationError("--stall-timeout \(stallTimeout): must be a number of seconds, 0 or more (0 waits for ever)")
        }
    }

    /// The option that sets a configuration setting (the settings' keys happen to be the options' names; this is
    /// the one place that relies on it).
    static func option(for setting: SettingKey) -> String { "--\(setting.rawValue)" }

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
        return configuration
    }

    func runOptions() -> RunOptions {
        var options = RunOptions()
        options.dataDirectory = data.dataDirectory
        options.threads = threads
        options.threadMode = threadMode
        options.reduction = allreduce
        options.microBatch = microBatch
        options.overlap = overlap
        options.checkpointDirectory = checkpointDirectory
        options.checkpointEvery = checkpointEvery
        options.keepCheckpoints = keepCheckpoints
        options.resume = resume
        options.initFrom = initFrom
        options.save = save
        options.metricsFile = metrics
        options.plotsDirectory = plots
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
                options.resumeIfPresent = true
                options.notes.append("Slurm requeued this job (restart \(job.restartCount)): resuming from the newest "
                                     + "checkpoint in \(options.checkpointDirectory!)")
            }
        }
        return options
    }

    func run() throws {
        let configuration = try trainingConfiguration()
        try withCommunicator(output) { communicator, console in
            let trainer = Trainer(configuration: configuration, options: runOptions(), communicator: communicator, console: console)
            let summary = try trainer.run()
            console.report(String(format: "final test accuracy %.4f (%.2f%%), train %.4f; %.1f s in all",
                                  summary.finalTestAccuracy, 100 * summary.finalTestAccuracy, summary.finalTrainAccuracy,
                                  summary.totalSeconds))
            console.report("parameter checksum \(summary.parameterChecksumHex) (equal checksums: the same model, bit for bit)")
            for (what, path) in summary.outputs { console.info("  \(what): \(path)") }
        }
    }
}
