// The training loop, the same for one process and for N ranks: set up -> epochs -> finish, an epoch being a loop
// over steps with the periodic blocks (checksum, checkpoint, stop) after each, and a step being
//
//   this rank's shard of the global batch -> forward and backward on worker threads (Workers)
//   -> the gradient reduced over workers and ranks by the run's reducer (Distributed), with the step's metrics
//   -> the finiteness check -> the identical optimizer step on every rank (NN).
//
// Each rank's loss is its shard's summed loss divided by the *global* batch size, so the reduced gradient is
// exactly the gradient of the mean loss over the global batch, whatever the shard sizes (or an empty shard).
// Setting up (data, agreement, resume, the start block) is in RunSetup.swift; when to checkpoint and stop, and the
// messages, in StopPolicy.swift.
import Autodiff
import Reporting
import Platform
import Checkpoints
import Dispatch
import Distributed
import Foundation
import MNISTData
import NN
import Support

/// Settings of a run that do not change what is learned: where files go, how often to save, how many threads.
/// (What is learned, bits included, is the `TrainingConfiguration`.)
public struct RunOptions: Sendable {
    /// Where the dataset's files are (nil: `DataLocation.resolve`).
    public var dataDirectory: String?
    /// Threads per rank (nil: this machine's cores divided by the ranks sharing them, at least 1).
    public var threads: Int?
    /// Whether those threads split the batch (workers) or the GEMMs (BLAS).
    public var threadMode = ThreadMode.auto
    /// Start each bucket's all-reduce as soon as backward has finished its gradients (one worker per rank; with the
    /// exact sum, the backward of the rank's last micro-batch), instead of one blocking all-reduce after backward.
    /// Off by default: it needs one worker per rank, which a host with several cores per rank does not want.
    public var overlap = false
    public var checkpointDirectory: String?
    /// Also checkpoint every this many steps (checkpoints are always written at the end of an epoch).
    public var checkpointEvery: Int?
    public var keepCheckpoints = Defaults.checkpointsKept
    /// A checkpoint file, or a directory whose newest valid checkpoint is taken.
    public var resume: String?
    /// Start from these parameters (a safetensors file under PyTorch's names, or a checkpoint) instead of the seed's
    /// initialisation; the optimizer starts afresh.
    public var initFrom: String?
    /// Where to write the final model.
    public var save: String?
    /// JSON lines: one object per epoch and one for the run.
    public var metricsFile: String?
    /// PNG pictures of the run.
    public var picturesDirectory: String?
    /// TensorBoard event files: a run directory under this one (rank 0).
    public var tensorBoardDirectory: String?
    /// A Chrome trace-event timeline of every rank's steps, merged into this one file.
    public var traceFile: String?
    /// Compare a parameter checksum across ranks every this many steps (and at the end).
    public var checksumEvery = Defaults.checksumEvery
    /// Seconds a collective waits for the other ranks before the job ends as stalled (raised to ten times the
    /// slowest step); nil waits for ever.
    public var stallTimeout: Double? = Defaults.stallTimeout
    /// Stop cleanly, as on SIGTERM, after this many steps of the run (for job schedulers and tests).
    public var stopAfterSteps: Int?
    /// The Slurm job this run belongs to, if any (start block, metrics, the time-limit warning).
    public var slurm: SlurmJob?
    /// Lines for the start block about choices made for the user (defaults taken from the environment).
    public var notes: [String] = []

    public init() {}
}

/// Data and sample order given to a trainer instead of the configuration's files and shuffle (the chapter's
/// literal CNN stream trains on raw rows 0-7999 in one order drawn once; tests give small synthetic data).
public struct ProvidedData: Sendable {
    public var split: DataSplit
    public var order: ShuffleSource
    /// Where the data came from, for the start-up lines.
    public var description: String
    public init(split: DataSplit, order: ShuffleSource, description: String) {
        self.split = split
        self.order = order
        self.description = description
    }
}

/// An epoch in progress: its plan of batches, where this run entered it, and its running figures.
struct EpochProgress {
    /// The epoch (0-based) and its batches.
    let index: Int
    let plan: BatchPlan
    /// The first batch this run trains (later than 0 in an epoch resumed mid-way).
    let firstBatch: Int
    /// Samples of the epoch trained before this run (a resumed run's totals carry them): speed counts only this run's.
    let samplesBefore: Int
    let start = DispatchTime.now()
    var phases = PhaseTimes()
    var stopAgreed = false
    var lastBatchLoss = Double.nan

    init(index: Int, plan: BatchPlan, position: RunPosition) {
        self.index = index
        self.plan = plan
        firstBatch = position.batch
        samplesBefore = position.partial.samples
    }
}

/// Trains one configuration on the ranks of a communicator: what to train and where; `run()` sets up a `Run`, which
/// holds everything while it trains.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let options: RunOptions
    let communicator: Communicator
    let console: Console
    let provided: ProvidedData?

    public init(configuration: TrainingConfiguration, options: RunOptions, communicator: Communicator, console: Console,
                data: ProvidedData? = nil) {
        self.configuration = configuration
        self.options = options
        self.communicator = communicator
        self.console = console
        provided = data
    }

    public func run() throws -> RunSummary {
        let started = DispatchTime.now()
        StopSignals.install()
        communicator.watchForStalls(options.stallTimeout.map { StallDeadline(seconds: $0, exitCode: ExitCode.stalled.rawValue) })
        communicator.describeActivity(.startUp)
        let run = try prepare()
        run.printStart()
        do {
            for epoch in run.position.epoch..<configuration.epochs {
                try run.train(epoch: epoch)
            }
        } catch let error as RunError where error.code == .stopped {
            try run.writeTrace()  // a clean stop, agreed by every rank: the timeline up to it
            throw error
        }
        return try run.finish(started: started)
    }
}

extension Run {
    // MARK: An epoch

    /// Trains one epoch (from where `position` stands in it), then evaluates, reports and checkpoints.
    func train(epoch index: Int) throws {
        var source = provided?.order ?? (configuration.shuffle == .chapter
            ? .continuing(position.generator!) : .seeded(configuration.seed))
        let order = source.order(forEpoch: index, count: data.train.count)
        var epoch = EpochProgress(index: index, plan: BatchPlan(sampleCount: data.train.count, batchSize: configuration.batchSize),
                                  position: position)
        for batchIndex in epoch.firstBatch..<epoch.plan.batchCount {
            let batch = epoch.plan.batch(batchIndex)
            let (stepStart, waitedBefore) = (DispatchTime.now(), epoch.phases.allReduce)
            communicator.describeActivity(.step(position.step + 1, epoch: index + 1, batch: batchIndex + 1))
            let metrics = try step(batch, order: order, phases: &epoch.phases)
            epoch.stopAgreed = metrics.stopRequested
            epoch.lastBatchLoss = metrics.lossSum / Double(batch.count)
            position.advance(batch: batchIndex + 1, by: metrics)
            let stepSeconds = seconds(stepStart)
            stretchStallDeadline(stepSeconds: stepSeconds)
            trace?.record(.step, track: 0, from: stepStart, step: position.step)
            tensorBoard?.step(position.step, loss: epoch.lastBatchLoss, samplesPerSecond: Double(batch.count) / stepSeconds,
                              communicationShare: (epoch.phases.allReduce - waitedBefore) / stepSeconds)
            reportProgress(epoch, batch: batchIndex + 1)
            if position.step % options.checksumEvery == 0 { try compareChecksums() }
            let decision = policy.afterStep(position.step, lastOfEpoch: batchIndex + 1 == epoch.plan.batchCount,
                                            stopAgreed: epoch.stopAgreed)
            let file = decision.checkpoint ? try saveCheckpoint() : nil
            if decision.stop {
                throw RunError(.stopped, communicator.rank == 0 ? policy.stopMessage(
                    at: "after step \(position.step) (epoch \(index + 1), batch \(batchIndex + 1) of \(epoch.plan.batchCount))",
                    step: position.step, checkpoint: file) : nil)
            }
        }
        if case .continuing(let generator) = source { position.generator = generator }
        try finish(epoch)
    }

    /// The end of an epoch: evaluate, report, record, checkpoint, and stop if the ranks agreed to.
    func finish(_ epoch: EpochProgress) throws {
        let seconds = seconds(epoch.start, DispatchTime.now())
        let totals = position.partial
        let evaluationStart = DispatchTime.now()
        communicator.describeActivity(.epochEnd(epoch.index + 1))
        let test = try Evaluation.run(machinery.workers, data.test, communicator: communicator)
        confusion = test.confusion
        let trainAccuracy = configuration.evaluateTrainingSet
            ? try Evaluation.run(machinery.workers, data.train, communicator: communicator).accuracy
            : Double(totals.correct) / Double(max(totals.samples, 1))
        trace?.record(.evaluation, track: 0, from: evaluationStart, step: position.step)
        let record = EpochRecord(epoch: epoch.index + 1, trainLoss: totals.lossSum / Double(max(totals.samples, 1)),
                                 trainAccuracy: trainAccuracy, testAccuracy: test.accuracy, seconds: seconds,
                                 samplesPerSecond: Double(totals.samples - epoch.samplesBefore) / seconds,
                                 communicationShare: epoch.phases.allReduce / seconds, lastBatchLoss: epoch.lastBatchLoss)
        position.finishEpoch(record)
        epochPhases.append(epoch.phases)
        if epochPhases.count == 1 { warnAboutTimeLimit(epochSeconds: seconds, epochsLeft: configuration.epochs - epoch.index - 1) }
        console.report(String(format: "epoch %2d/%d  loss %.4f  train %@ %.4f  test %.4f  %.2f s  %.0f samples/s  comm %.1f%%",
                              record.epoch, configuration.epochs, record.trainLoss,
                              configuration.evaluateTrainingSet ? "acc" : "acc (running)", record.trainAccuracy,
                              record.testAccuracy, record.seconds, record.samplesPerSecond, 100 * record.communicationShare))
        tensorBoard?.epoch(record)
        try communicator.agree {
            try metrics?.append(MetricsRecord.epoch(record, phases: epoch.phases, steps: epoch.plan.batchCount - epoch.firstBatch,
                                                    allReduceBytesPerStep: machinery.reducer.bytesPerStep, slurm: options.slurm))
            try tensorBoard?.flush()
        }
        let decision = policy.afterEpoch(epoch.index, of: configuration.epochs, stopAgreed: epoch.stopAgreed)
        let file = decision.checkpoint ? try saveCheckpoint() : nil
        if decision.stop {
            throw RunError(.stopped, communicator.rank == 0
                ? policy.stopMessage(at: "at the end of epoch \(epoch.index + 1)", step: position.step, checkpoint: file) : nil)
        }
    }

    // MARK: A step

    /// One step on `batch` (positions in `order`): this rank's shard's gradient, reduced over workers and ranks,
    /// checked, and applied. Returns the step's metrics summed over the ranks (and whether any rank asked to stop).
    func step(_ batch: Range<Int>, order: [Int32], phases: inout PhaseTimes) throws -> StepMetrics {
        trace?.step = position.step + 1
        let (local, parts) = machinery.workers.gradient(of: OrderedSamples(dataset: data.train, order: order), batch: batch,
                                              place: RankPlace(rank: communicator.rank, ranks: communicator.size),
                                              hooks: machinery.reducer.backwardHooks(batch: batch))
        let reduceStart = DispatchTime.now()
        var metrics = StepMetrics(local, stopRequested: policy.stopRequested(afterStep: position.step + 1))
        let reduced: ReducedGradient
        do {
            machinery.host?.post(metrics.local)  // published by the reducer's first barrier
            reduced = try machinery.reducer.reduce(parts, batch: batch)
            if let host = machinery.host { metrics.set(try host.postedSum()) } else { try metrics.sum(over: communicator) }
        } catch {
            throw RunError(.ranksDisagree, "step \(position.step + 1): \(error)")
        }
        let hidden = machinery.reducer.secondsDuringBackward
        phases.forward += local.forwardSeconds
        phases.backward += local.backwardSeconds - hidden
        phases.allReduce += seconds(reduceStart, DispatchTime.now()) + hidden
        trace?.record(.allReduceWait, track: 0, from: reduceStart)

        // Every rank holds the same reduced numbers, so every rank takes the same decisions here.
        let meanLoss = metrics.lossSum / Double(batch.count)
        func diverged(_ problem: String) -> RunError {
            RunError(.diverged, communicator.rank == 0
                ? policy.divergenceMessage(at: "step \(position.step + 1) (epoch \(position.epoch + 1), batch "
                                                   + "\(position.batch + 1))", problem: problem,
                                               learningRate: configuration.resolvedLearningRate) : nil)
        }
        if let problem = StopPolicy.divergence(meanLoss: meanLoss, gradientFinite: true) { throw diverged(problem) }
        let optimizerStart = DispatchTime.now()
        // The gradient's finiteness is checked inside the step, block by block (one pass over it, not two); a sum
        // the reducer kept wider than Float, or sums over the host's parts, are formed there too, a block at a time.
        // This rank steps the reduced range (all, or its slice of the host's); `finish` tells whether every rank's
        // gradient was finite. A non-finite gradient leaves the parameters partly stepped: the run ends here, and
        // nothing is written.
        let finiteHere = machinery.store.withValuesAndGradients { values, gradients in
            if let rounding = reduced.rounding {
                return machinery.optimizer.stepIfFinite(values: values, range: reduced.range, threads: machinery.threads, rounding: rounding)
            }
            return machinery.optimizer.stepIfFinite(values: values, gradients: UnsafeBufferPointer(gradients), threads: machinery.threads)
        }
        let gradientFinite: Bool
        do {
            gradientFinite = try machinery.reducer.finish(finite: finiteHere)
        } catch {
            throw RunError(.ranksDisagree, "step \(position.step + 1): \(error)")
        }
        if let problem = StopPolicy.divergence(meanLoss: meanLoss, gradientFinite: gradientFinite) { throw diverged(problem) }
        phases.optimizer += seconds(optimizerStart, DispatchTime.now())
        trace?.record(.optimizer, track: 0, from: optimizerStart)
        return metrics
    }

    /// Keeps the stall deadline at least `Defaults.stallStepMultiple` times the slowest step so far, so that a model
    /// whose steps take minutes is not declared stalled by a deadline made for milliseconds.
    func stretchStallDeadline(stepSeconds: Double) {
        guard let timeout = options.stallTimeout, stepSeconds > slowestStep else { return }
        slowestStep = stepSeconds
        let seconds = max(timeout, Defaults.stallStepMultiple * stepSeconds)
        if seconds > timeout {
            communicator.watchForStalls(StallDeadline(seconds: seconds, exitCode: ExitCode.stalled.rawValue))
        }
    }

    /// Under Slurm, after this run's first epoch: a warning when the job's time limit comes before the estimated
    /// end and its batch script arranges no signal (without one the job is killed at the limit, losing the work
    /// since the last checkpoint; with one, mnist-dist checkpoints and stops with exit 75 for a requeue).
    func warnAboutTimeLimit(epochSeconds: Double, epochsLeft: Int) {
        guard communicator.rank == 0, epochsLeft > 0, let job = options.slurm, let left = job.secondsLeft() else { return }
        let estimate = epochSeconds * Double(epochsLeft)
        guard left < estimate, !job.signalArranged() else { return }
        console.error("warning: Slurm job \(job.jobID) has \(formatDuration(left)) left, but the \(epochsLeft) epochs to go need "
                      + "about \(formatDuration(estimate)); no signal is arranged (#SBATCH --signal=B:USR1@120, as in "
                      + "scripts/slurm-job.sh), so the job will be killed at its limit and lose the steps since its last checkpoint")
    }

    /// The progress line (or bar) after `batch` batches of `epoch`.
    func reportProgress(_ epoch: EpochProgress, batch: Int) {
        let elapsed = seconds(epoch.start, DispatchTime.now())
        let totals = position.partial
        let figures = ProgressFigures(loss: totals.lossSum / Double(max(totals.samples, 1)),
                                      samplesPerSecond: Double(totals.samples - epoch.samplesBefore) / max(elapsed, 1e-9),
                                      secondsLeft: elapsed / Double(batch - epoch.firstBatch) * Double(epoch.plan.batchCount - batch))
        console.progress(epoch: (epoch.index + 1, of: configuration.epochs), batch: (batch, of: epoch.plan.batchCount), figures: figures)
    }

    // MARK: Finishing

    /// After the last epoch: the final checksum and figures, the saved model, the metrics' last line, the pictures.
    func finish(started: DispatchTime) throws -> RunSummary {
        communicator.describeActivity(.runEnd)
        var summary = RunSummary()
        summary.history = position.history
        summary.threadsPerRank = machinery.threads
        summary.parameterChecksum = try compareChecksums()
        summary.confusion = confusion
        summary.finalTestAccuracy = summary.history.last?.testAccuracy ?? .nan
        summary.finalTrainAccuracy = summary.history.last?.trainAccuracy ?? .nan
        summary.phases = PhaseTimes.median(epochPhases)
        summary.peakResidentMegabytes = try gatherPeakMemory()
        summary.totalSeconds = seconds(started, DispatchTime.now())
        summary.outputs = outputs
        if let path = options.save {
            try communicator.agree {
                guard communicator.rank == 0 else { return }
                do { try checkpoint().write(to: path) } catch { throw RunError(.cannotWrite, "\(error)") }
            }
            summary.outputs.append(("model", path))
        }
        try communicator.agree { try metrics?.append(MetricsRecord.run(summary, configuration: configuration, slurm: options.slurm)) }
        if let path = options.metricsFile { summary.outputs.append(("metrics", path)) }
        summary.outputs += try writePictures(history: summary.history).map { ("picture", $0) }
        if let log = tensorBoard { summary.outputs.append(("TensorBoard run", log.directory)) }
        try writeTrace()
        if let path = options.traceFile { summary.outputs.append(("trace", path)) }
        return summary
    }

    /// Every rank's timeline, merged into --trace's file by rank 0.
    func writeTrace() throws {
        guard let path = options.traceFile, let trace = trace else { return }
        try trace.write(to: path, communicator: communicator)
    }

    /// Rank 0 draws the run's pictures into --plots and TensorBoard; every rank learns the files, or the failure.
    func writePictures(history: [EpochRecord]) throws -> [String] {
        guard options.picturesDirectory != nil || options.tensorBoardDirectory != nil else { return [] }
        return try communicator.agree { () throws -> [String] in
            guard communicator.rank == 0 else { return [] }
            let pictures = RunPictures.render(model: machinery.model, store: machinery.store,
                                              test: (data.test, scaling: machinery.workers.scaling), history: history, confusion: confusion)
            tensorBoard?.pictures(pictures, step: position.step)
            try tensorBoard?.flush()
            guard let directory = options.picturesDirectory else { return [] }
            do {
                return try RunPictures.write(pictures, to: directory)
            } catch {
                throw RunError(.cannotWrite, "\(directory): cannot write the pictures (\(error))")
            }
        }
    }

    /// Peak resident memory of every rank.
    func gatherPeakMemory() throws -> [Double] {
        do {
            return try communicator.allGather(Memory.residentMegabytes()?.peak ?? .nan)
        } catch {
            throw RunError(.ranksDisagree, "gathering memory figures: \(error)")
        }
    }

    // MARK: Checks and checkpoints

    /// A checksum of the parameters, compared across ranks; a difference stops the job naming the step and ranks.
    @discardableResult
    func compareChecksums() throws -> UInt64 {
        let mine = machinery.store.withValues { StableHash.of(UnsafeBufferPointer($0)) }
        guard communicator.size > 1 else { return mine }
        let all: [Int64]
        do {
            all = try communicator.allGather(Int64(bitPattern: mine))
        } catch {
            throw RunError(.ranksDisagree, "checksum at step \(position.step): \(error)")
        }
        let differing = all.indices.filter { all[$0] != all[0] }
        if !differing.isEmpty {
            throw RunError(.ranksDisagree, communicator.rank == 0
                ? "after step \(position.step) the parameters of ranks \(differing.map(String.init).joined(separator: ", ")) "
                    + "differ from rank 0's" : nil)
        }
        return mine
    }

    /// Rank 0 writes a checkpoint of where the run stands; every rank learns the file, or the failure.
    func saveCheckpoint() throws -> String {
        let directory = policy.directory!
        let started = DispatchTime.now()
        defer { trace?.record(.checkpoint, track: 0, from: started, step: position.step) }
        let file = try communicator.agree { () throws -> String in
            guard communicator.rank == 0 else { return directory.file(step: position.step) }
            do { return try directory.save(checkpoint()) } catch { throw RunError(.cannotWrite, "\(error)") }
        }
        outputs.removeAll { $0.what == "last checkpoint" }
        outputs.append(("last checkpoint", file))
        return file
    }
}
