// The training loop, the same for one process and for N ranks:
//
//   every rank loads the data and draws the same global order for the epoch (MNISTData)
//   -> takes its contiguous shard of each global batch -> forward and backward on worker threads (Workers)
//   -> one in-place all-reduce of the flat gradient, one small all-reduce of the step's metrics (Distributed)
//   -> the identical optimizer step on every rank (NN).
//
// Each rank's loss is its shard's summed loss divided by the *global* batch size, so the all-reduced gradient is
// exactly the gradient of the mean loss over the global batch, whatever the shard sizes (or an empty shard).
import Autodiff
import Dispatch
import Distributed
import Foundation
import MNISTData
import NN

/// Settings of a run that do not change what is learned: where files go, how often to save, how many threads.
public struct RunOptions: Sendable {
    /// Where the dataset's files are (nil: `DataLocation.resolve`).
    public var dataDirectory: String?
    /// Threads per rank (nil: this host's cores divided by the ranks on this host, at least 1).
    public var threads: Int?
    /// Whether those threads split the batch (workers) or the GEMMs (BLAS).
    public var threadMode = ThreadMode.auto
    /// Whether gradients are summed across workers and ranks in Double (reproducible) or Float.
    public var reduction = ReductionPrecision.double
    /// Start each bucket's all-reduce as soon as backward has finished its gradients (one worker per rank), instead
    /// of one blocking all-reduce after backward. Off by default: it paid only on 1 Gbit/s links among the
    /// configurations measured (docs/scaling.md).
    public var overlap = false
    public var checkpointDirectory: String?
    /// Also checkpoint every this many steps (checkpoints are always written at the end of an epoch).
    public var checkpointEvery: Int?
    public var keepCheckpoints = Defaults.checkpointsKept
    /// A checkpoint file, or a directory whose newest valid checkpoint is taken.
    public var resume: String?
    /// Where to write the final model.
    public var save: String?
    /// JSON lines: one object per epoch and one for the run.
    public var metricsFile: String?
    /// PNG pictures of the run.
    public var plotsDirectory: String?
    /// Compare a parameter checksum across ranks every this many steps (and at the end).
    public var checksumEvery = Defaults.checksumEvery
    /// Stop cleanly, as on SIGTERM, after this many steps of the run (for job schedulers and tests).
    public var stopAfterSteps: Int?

    public init() {}
}

/// What a finished run reports.
public struct RunSummary: Sendable {
    public var history: [EpochRecord] = []
    public var finalTestAccuracy: Double = .nan
    public var finalTrainAccuracy: Double = .nan
    public var totalSeconds: Double = 0
    /// Files written, with what they are.
    public var outputs: [(what: String, path: String)] = []
    /// Test-set confusion matrix after the last epoch: [true][predicted].
    public var confusion: [[Int]] = []
    /// Median over epochs (after the first, when there are several) of the per-step phase times, in seconds.
    public var phases = PhaseTimes()
    public var threadsPerRank = 1
    public var parameterChecksum: UInt64 = 0
    /// Peak resident memory of each rank, in megabytes.
    public var peakResidentMegabytes: [Double] = []
}

/// Seconds spent per phase of a step, summed over an epoch's steps.
public struct PhaseTimes: Sendable, Equatable {
    public var forward = 0.0
    public var backward = 0.0
    public var allReduce = 0.0
    public var optimizer = 0.0
    public var total: Double { forward + backward + allReduce + optimizer }
}

/// Data and sample order given to a trainer instead of the configuration's files and shuffle (the chapter's
/// literal CNN stream trains on raw rows 0-7999 in one order drawn once).
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

/// Trains one configuration on the ranks of a communicator.
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

    // MARK: Setting up

    /// Loads the data on every rank (a failure on any rank ends all of them) and checks it suits the model.
    func loadData() throws -> (DataSplit, String) {
        if let provided { return (provided.split, provided.description) }
        return try communicator.agree {
            let directory = try DataLocation.resolve(dataset: configuration.dataset, explicit: options.dataDirectory)
            let split: DataSplit
            do {
                split = try DatasetFiles.load(configuration.dataset, directory: directory, split: configuration.split)
            } catch let error as DataError {
                throw RunError(error.problem.hasPrefix("missing") || error.problem == "no such file" ? .missingInput : .badInput,
                               error.description)
            }
            guard split.train.count > 0 else {
                throw RunError(.badInput, "\(split.train.name): the training set is empty")
            }
            if configuration.model == .cnn && (split.train.rows != 28 || split.train.columns != 28) {
                throw RunError(.badInput, "\(split.train.name): images are \(split.train.rows)x\(split.train.columns), "
                                   + "but the cnn takes 28x28 images")
            }
            return (split, directory)
        }
    }

    /// Checks that every rank runs the same configuration on the same data; names the first setting that differs.
    func checkAgreement(_ data: DataSplit, parameterCount: Int) throws {
        let entries = configuration.settings + [
            ("training samples", "\(data.train.count)"), ("test samples", "\(data.test.count)"),
            ("split", data.kind.rawValue), ("parameters", "\(parameterCount)"),
            ("data checksum", "\(Zlib.crc32(data.train.labels))-\(Zlib.crc32(Array(data.train.pixels.prefix(1 << 20))))"),
        ]
        guard communicator.size > 1 else { return }
        var low = entries.map { stableHash($0.value) }
        var high = low
        do {
            try low.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .min) }
            try high.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .max) }
        } catch {
            throw RunError(.ranksDisagree, "\(error)")
        }
        if let index = low.indices.first(where: { low[$0] != high[$0] }) {
            let mine = entries[index]
            throw RunError(.ranksDisagree, communicator.rank == 0
                ? "the ranks do not agree on \(mine.name) (rank 0 has \(mine.value)); every rank must run the same "
                    + "options on the same data" : nil)
        }
    }

    // MARK: Running

    public func run() throws -> RunSummary {
        let started = DispatchTime.now()
        StopSignals.install()
        let (data, directory) = try loadData()
        let model = configuration.makeModel(imageSize: (data.train.rows, data.train.columns))
        let store = model.makeParameterStore()
        let optimizer: Optimizer
        do {
            optimizer = try configuration.makeOptimizer(parameterCount: store.count)
        } catch {
            throw RunError(.usage, "\(error)")
        }
        try checkAgreement(data, parameterCount: store.count)
        let threads = options.threads ?? Processors.defaultThreads(ranksOnHost: communicator.localSize)
        let mode = options.threadMode.resolved(for: configuration.model)
        let workers = switch mode {
        case .workers: Workers(model: model, store: store, threads: threads)
        case .split: Workers(model: model, store: store, threads: 1, splitParts: threads)
        case .blas, .auto: Workers(model: model, store: store, threads: 1, blasThreads: threads)
        }
        let scaling = configuration.normalization.scaling

        // Initial state: rank 0's initialisation (or checkpoint), broadcast so that no rank can start elsewhere.
        model.initialize(store, seed: configuration.seed)
        var progress = Checkpoint(settings: checkpointSettings(model: model, data: data), epoch: 0, batch: 0, step: 0,
                                  generator: configuration.shuffle == .chapter ? data.chapterGenerator : nil, history: [],
                                  parameters: [], optimizerState: [])
        if let resume = options.resume {
            progress = try resumeState(from: resume, expected: progress.settings, store: store, optimizer: optimizer)
        }
        try broadcastState(store: store, optimizer: optimizer)

        printStart(model: model, data: data, directory: directory, threads: threads, mode: mode, optimizer: optimizer)
        var summary = RunSummary()
        summary.threadsPerRank = threads
        summary.history = progress.history
        let checkpoints = options.checkpointDirectory.map { CheckpointDirectory(path: $0, keep: options.keepCheckpoints) }
        if let checkpoints {
            try communicator.agree {
                guard communicator.rank == 0 else { return }
                do { try checkpoints.prepare() } catch { throw RunError(.cannotWrite, "\(error)") }
            }
        }
        let metrics = options.metricsFile.flatMap { communicator.rank == 0 ? MetricsLog(path: $0) : nil }
        try communicator.agree { try metrics?.start() }

        var exactGradient: [Double] = []
        let overlapping = options.overlap && communicator.size > 1 && workers.count == 1
        let buckets = overlapping ? GradientBuckets(store: store) : nil
        var generatorAtEpochStart = progress.generator
        var step = progress.step
        /// Why a stop was requested, for the message: the signal (on any rank, agreed on through the metrics
        /// all-reduce; this rank may not have seen it itself) or --stop-after.
        func stopReason() -> String {
            if let signal = StopSignals.requested { return "\(StopSignals.name(signal)) received" }
            if let limit = options.stopAfterSteps, step >= limit { return "--stop-after \(limit) reached" }
            return "a stop signal reached another rank"
        }
        var epochPhases: [PhaseTimes] = []
        var confusion: [[Int]] = []
        for epoch in progress.epoch..<configuration.epochs {
            let resumingThisEpoch = epoch == progress.epoch
            var source: ShuffleSource = provided?.order ?? (configuration.shuffle == .chapter
                ? .continuing(generatorAtEpochStart!) : .seeded(configuration.seed))
            let order = source.order(forEpoch: epoch, count: data.train.count)
            let plan = BatchPlan(sampleCount: data.train.count, batchSize: configuration.batchSize)
            var totals = resumingThisEpoch
                ? (loss: progress.partialLossSum, correct: progress.partialCorrect, samples: progress.partialSamples)
                : (loss: 0.0, correct: 0, samples: 0)
            var phases = PhaseTimes()
            let epochStart = DispatchTime.now()
            let firstBatch = resumingThisEpoch ? progress.batch : 0
            var metricsBuffer = [Double](repeating: 0, count: 4)
            var lastBatchLoss = Double.nan
            // Double sum of the gradient, when reducing exactly and there is anything to sum.
            let exactlyReduced = options.reduction == .double && (communicator.size > 1 || workers.count > 1)
            if exactlyReduced && exactGradient.count != store.count { exactGradient = [Double](repeating: 0, count: store.count) }

            for batchIndex in firstBatch..<plan.batchCount {
                let batch = plan.batch(batchIndex)
                let mine = shard(of: batch, rank: communicator.rank, ranks: communicator.size)
                let result: WorkerTotals
                if let buckets {
                    // Overlap: each bucket's all-reduce starts when backward has finished its gradients.
                    buckets.begin()
                    result = try buckets.overlap(communicator: communicator, store: store, exact: exactlyReduced) { ready, progress in
                        workers.gradient(of: data.train, order: order, range: mine, scaling: scaling, normalizer: batch.count,
                                         parameterReady: ready, afterEachPullback: progress)
                    }
                } else {
                    result = exactGradient.withUnsafeMutableBufferPointer { exact in
                        workers.gradient(of: data.train, order: order, range: mine, scaling: scaling, normalizer: batch.count,
                                         exact: exactlyReduced ? exact.baseAddress : nil)
                    }
                }
                phases.forward += result.forwardSeconds
                phases.backward += result.backwardSeconds

                // One all-reduce of the whole gradient, one of the step's metrics (and the stop flag).
                let reduceStart = DispatchTime.now()
                metricsBuffer[0] = result.lossSum
                metricsBuffer[1] = Double(result.correct)
                metricsBuffer[2] = Double(result.samples)
                let stopAfterThisStep = options.stopAfterSteps.map { step + 1 >= $0 } ?? false
                metricsBuffer[3] = StopSignals.requested != nil || stopAfterThisStep ? 1 : 0
                do {
                    if let buckets {
                        try buckets.finish(store: store)
                    } else if exactlyReduced {
                        try exactGradient.withUnsafeMutableBufferPointer { (g) in try communicator.allReduce(g, .sum) }
                        store.withGradients { g in
                            exactGradient.withUnsafeBufferPointer { BufferMath.round($0.baseAddress!, into: g.baseAddress!, count: g.count) }
                        }
                    } else {
                        try store.withGradients { (g) in try communicator.allReduceSum(g) }
                    }
                    try metricsBuffer.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .sum) }
                } catch {
                    throw RunError(.ranksDisagree, "step \(step + 1): \(error)")
                }
                phases.allReduce += seconds(reduceStart, DispatchTime.now()) + (buckets?.secondsInMPIDuringBackward ?? 0)
                phases.backward -= buckets?.secondsInMPIDuringBackward ?? 0

                // Every rank holds the same reduced numbers, so every rank takes the same decision here.
                let gradientFinite = store.withGradients { BufferMath.allFinite(UnsafeBufferPointer($0), threads: threads) }
                guard metricsBuffer[0].isFinite && gradientFinite else {
                    throw RunError(.diverged, communicator.rank == 0
                        ? "training diverged at step \(step + 1) (epoch \(epoch + 1), batch \(batchIndex + 1)): the "
                            + (metricsBuffer[0].isFinite ? "gradient" : "loss") + " is not finite. Try a smaller "
                            + "learning rate (--lr, now \(formatNumber(configuration.resolvedLearningRate)))"
                            + (checkpoints != nil ? "; the checkpoints written so far are untouched" : "") + "." : nil)
                }
                let optimizerStart = DispatchTime.now()
                store.withValuesAndGradients { values, gradients in
                    optimizer.step(values: values, gradients: UnsafeBufferPointer(gradients), threads: threads)
                }
                phases.optimizer += seconds(optimizerStart, DispatchTime.now())
                step += 1
                lastBatchLoss = metricsBuffer[0] / Double(batch.count)
                totals.loss += metricsBuffer[0]
                totals.correct += Int(metricsBuffer[1])
                totals.samples += Int(metricsBuffer[2])

                let elapsed = seconds(epochStart, DispatchTime.now())
                let done = batchIndex + 1 - firstBatch
                console.progress(epoch: epoch + 1, epochs: configuration.epochs, batch: batchIndex + 1, batches: plan.batchCount,
                                 loss: totals.loss / Double(max(totals.samples, 1)),
                                 samplesPerSecond: Double(totals.samples) / max(elapsed, 1e-9),
                                 secondsLeft: elapsed / Double(done) * Double(plan.batchCount - batchIndex - 1))

                if step % options.checksumEvery == 0 { try compareChecksums(store, step: step) }
                let stopping = metricsBuffer[3] > 0
                let periodic = options.checkpointEvery.map { step % $0 == 0 } ?? false
                if let checkpoints, stopping || periodic, batchIndex + 1 < plan.batchCount {
                    progress = Checkpoint(settings: progress.settings, epoch: epoch, batch: batchIndex + 1, step: step,
                                          partialLossSum: totals.loss, partialCorrect: totals.correct, partialSamples: totals.samples,
                                          generator: generatorAtEpochStart, history: summary.history,
                                          parameters: [], optimizerState: [])
                    let file = try save(progress, store: store, optimizer: optimizer, to: checkpoints)
                    if stopping { summary.outputs.append(("checkpoint", file)) }
                }
                if stopping && batchIndex + 1 < plan.batchCount {
                    throw RunError(.stopped, communicator.rank == 0
                        ? "stopped after step \(step) (epoch \(epoch + 1), batch \(batchIndex + 1) of \(plan.batchCount)): \(stopReason()); "
                            + (checkpoints != nil ? "checkpoint written to \(summary.outputs.last!.path); continue with --resume \(checkpoints!.path)"
                                : "no --checkpoint-dir was given, so nothing was saved") : nil)
                }
            }
            let epochSeconds = seconds(epochStart, DispatchTime.now())

            // End of epoch: evaluate, report, checkpoint.
            if case .continuing(let generator) = source { generatorAtEpochStart = generator }
            let test = try evaluate(workers, data.test, scaling: scaling)
            confusion = test.confusion
            let trainAccuracy = configuration.evaluateTrainingSet
                ? try evaluate(workers, data.train, scaling: scaling).accuracy
                : Double(totals.correct) / Double(max(totals.samples, 1))
            let record = EpochRecord(epoch: epoch + 1, trainLoss: totals.loss / Double(max(totals.samples, 1)),
                                     trainAccuracy: trainAccuracy, testAccuracy: test.accuracy, seconds: epochSeconds,
                                     samplesPerSecond: Double(totals.samples) / epochSeconds,
                                     communicationShare: phases.allReduce / epochSeconds, lastBatchLoss: lastBatchLoss)
            summary.history.append(record)
            epochPhases.append(phases)
            console.report(String(format: "epoch %2d/%d  loss %.4f  train %@ %.4f  test %.4f  %.2f s  %.0f samples/s  comm %.1f%%",
                                  record.epoch, configuration.epochs, record.trainLoss,
                                  configuration.evaluateTrainingSet ? "acc" : "acc (running)", record.trainAccuracy,
                                  record.testAccuracy, record.seconds, record.samplesPerSecond, 100 * record.communicationShare))
            try communicator.agree {
                try metrics?.append(epochJSON(record, phases: phases, steps: plan.batchCount - firstBatch,
                                              residentMegabytes: Memory.residentMegabytes()?.current))
            }
            if let checkpoints {
                progress = Checkpoint(settings: progress.settings, epoch: epoch + 1, batch: 0, step: step, generator: generatorAtEpochStart,
                                      history: summary.history, parameters: [], optimizerState: [])
                let file = try save(progress, store: store, optimizer: optimizer, to: checkpoints)
                summary.outputs.removeAll { $0.what == "last checkpoint" }
                summary.outputs.append(("last checkpoint", file))
            }
            if metricsBuffer[3] > 0 && epoch + 1 < configuration.epochs {
                throw RunError(.stopped, communicator.rank == 0
                    ? "stopped at the end of epoch \(epoch + 1): \(stopReason()); " + (checkpoints != nil
                        ? "checkpoint written to \(summary.outputs.last!.path); continue with --resume \(checkpoints!.path)"
                        : "no --checkpoint-dir was given, so nothing was saved") : nil)
            }
        }

        summary.parameterChecksum = try compareChecksums(store, step: step)
        summary.confusion = confusion
        summary.finalTestAccuracy = summary.history.last?.testAccuracy ?? .nan
        summary.finalTrainAccuracy = summary.history.last?.trainAccuracy ?? .nan
        summary.phases = medianPhases(epochPhases)
        // Peak resident memory of every rank (each writes its own slot; the sum gathers them).
        var peaks = [Double](repeating: 0, count: communicator.size)
        peaks[communicator.rank] = Memory.residentMegabytes()?.peak ?? .nan
        do {
            try peaks.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .sum) }
        } catch {
            throw RunError(.ranksDisagree, "gathering memory figures: \(error)")
        }
        summary.peakResidentMegabytes = peaks
        summary.totalSeconds = seconds(started, DispatchTime.now())
        if let path = options.save {
            let final = Checkpoint(settings: progress.settings, epoch: configuration.epochs, batch: 0, step: step,
                                   generator: generatorAtEpochStart, history: summary.history,
                                   parameters: [], optimizerState: [])
            try communicator.agree {
                guard communicator.rank == 0 else { return }
                var complete = final
                complete.parameters = store.flatValues
                complete.optimizerState = optimizer.state
                do { try complete.write(to: path) } catch { throw RunError(.cannotWrite, "\(error)") }
            }
            summary.outputs.append(("model", path))
        }
        try communicator.agree { try metrics?.append(runJSON(summary, configuration: configuration)) }
        if let path = options.metricsFile { summary.outputs.append(("metrics", path)) }
        if let directory = options.plotsDirectory {
            let files = try communicator.agree { () throws -> [String] in
                guard communicator.rank == 0 else { return [] }
                do {
                    return try RunPictures.write(to: directory, model: model, store: store, test: data.test, scaling: scaling,
                                                 history: summary.history, confusion: confusion)
                } catch {
                    throw RunError(.cannotWrite, "\(directory): cannot write the pictures (\(error))")
                }
            }
            summary.outputs += files.map { ("picture", $0) }
        }
        return summary
    }

    // MARK: Pieces of the loop

    func evaluate(_ workers: Workers, _ dataset: Dataset, scaling: PixelScaling) throws -> (accuracy: Double, confusion: [[Int]]) {
        try Evaluation.run(workers, dataset, scaling: scaling, communicator: communicator)
    }

    /// A checksum of the parameters, compared across ranks; a difference stops the job naming the step and ranks.
    @discardableResult
    func compareChecksums(_ store: ParameterStore, step: Int) throws -> UInt64 {
        let mine = store.withValues { values in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for value in values { hash = (hash ^ UInt64(value.bitPattern)) &* 0x100_0000_01b3 }
            return hash
        }
        guard communicator.size > 1 else { return mine }
        var all = [Int64](repeating: 0, count: communicator.size)
        all[communicator.rank] = Int64(bitPattern: mine)
        do {
            try all.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .sum) }
        } catch {
            throw RunError(.ranksDisagree, "checksum at step \(step): \(error)")
        }
        let differing = all.indices.filter { all[$0] != all[0] }
        if !differing.isEmpty {
            throw RunError(.ranksDisagree, communicator.rank == 0
                ? "after step \(step) the parameters of ranks \(differing.map(String.init).joined(separator: ", ")) differ from rank 0's" : nil)
        }
        return mine
    }

    /// Writes a checkpoint from rank 0; every rank learns whether it worked.
    func save(_ checkpoint: Checkpoint, store: ParameterStore, optimizer: Optimizer,
              to directory: CheckpointDirectory) throws -> String {
        try communicator.agree { () throws -> String in
            guard communicator.rank == 0 else { return directory.file(step: checkpoint.step) }
            var complete = checkpoint
            complete.parameters = store.flatValues
            complete.optimizerState = optimizer.state
            do { return try directory.save(complete) } catch { throw RunError(.cannotWrite, "\(error)") }
        }
    }

    /// Rank 0's parameters and optimizer state, copied to every rank.
    func broadcastState(store: ParameterStore, optimizer: Optimizer) throws {
        guard communicator.size > 1 else { return }
        do {
            try store.withValues { (v) in try communicator.broadcast(v, root: 0) }
            try optimizer.withState { (s) in try communicator.broadcast(s, root: 0) }
        } catch {
            throw RunError(.ranksDisagree, "broadcasting the initial state: \(error)")
        }
    }

    /// The identity a checkpoint records, and a resumed run must match.
    func checkpointSettings(model: Model, data: DataSplit) -> [String: String] {
        var settings = Dictionary(uniqueKeysWithValues: configuration.settings.map { (String($0.name.dropFirst(2)), $0.value) })
        settings["split"] = data.kind.rawValue
        settings["architecture"] = model.architecture
        settings["training_samples"] = "\(data.train.count)"
        settings["created_by"] = "mnist-dist \(Version.string)"
        return settings
    }

    /// Rank 0 reads the checkpoint and sends its bytes to every rank (the file need exist on rank 0's host only);
    /// every rank checks it against the run and restores parameters and optimizer state from it.
    func resumeState(from path: String, expected: [String: String], store: ParameterStore,
                     optimizer: Optimizer) throws -> Checkpoint {
        var bytes: [UInt8] = []
        try communicator.agree {
            guard communicator.rank == 0 else { return }
            do {
                let (checkpoint, file) = try loadCheckpoint(from: path) { console.error("warning: \($0)") }
                console.info("Resuming from \(file) (epoch \(checkpoint.epoch + 1), batch \(checkpoint.batch + 1), step \(checkpoint.step))")
                bytes = checkpoint.encoded()
            } catch let error as CheckpointError {
                throw RunError(error.problem.contains("no such file") ? .missingInput : .badInput, error.description)
            }
        }
        var length = [Int64(bytes.count)]
        do {
            try length.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .max) }
            if communicator.rank != 0 { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
            try bytes.withUnsafeMutableBytes { (b) in try communicator.broadcast(b, root: 0) }
        } catch {
            throw RunError(.ranksDisagree, "sending the checkpoint: \(error)")
        }
        return try communicator.agree { () throws -> Checkpoint in
            let checkpoint: Checkpoint
            do { checkpoint = try Checkpoint.decode(bytes, name: path) } catch { throw RunError(.badInput, "\(error)") }
            let identity = ["model", "architecture", "dataset", "split", "training_samples", "optimizer", "batch-size",
                            "seed", "normalize", "shuffle", "hidden", "lr", "rho", "eps", "weight-decay"]
            for key in identity where checkpoint.settings[key] != expected[key] {
                throw RunError(.badInput, communicator.rank == 0
                    ? "\(path): the checkpoint was made with \(key) \(checkpoint.settings[key] ?? "unset"), but this run has "
                        + "\(key) \(expected[key] ?? "unset"); resume with the same settings, or start a new run" : nil)
            }
            guard checkpoint.parameters.count == store.count, checkpoint.optimizerState.count == optimizer.stateCount else {
                throw RunError(.badInput, "\(path): holds \(checkpoint.parameters.count) parameters and \(checkpoint.optimizerState.count) "
                                   + "optimizer values; this model has \(store.count) and \(optimizer.stateCount)")
            }
            guard checkpoint.epoch <= configuration.epochs else {
                throw RunError(.usage, "\(path): the checkpoint is at epoch \(checkpoint.epoch), beyond --epochs \(configuration.epochs)")
            }
            store.flatValues = checkpoint.parameters
            optimizer.state = checkpoint.optimizerState
            return checkpoint
        }
    }

    func printStart(model: Model, data: DataSplit, directory: String, threads: Int, mode: ThreadMode, optimizer: Optimizer) {
        console.info("mnist-dist \(Version.string): \(configuration.model) on "
                     + (provided == nil ? "\(configuration.dataset), \(data.kind) split from \(directory)" : directory))
        console.info("  data     train \(groupedThousands(data.train.count)), test \(groupedThousands(data.test.count)) images of "
                     + "\(data.train.rows)x\(data.train.columns); inputs \(configuration.normalization.scaling)")
        let order = provided == nil ? "shuffle \(configuration.shuffle)" : "sample order given (\(provided!.order.summary))"
        console.info("  training \(configuration.epochs) epochs, global batch \(configuration.batchSize), \(optimizer.summary), "
                     + "seed \(configuration.seed), \(order)")
        let threading = switch mode {
        case .workers: "\(threads) worker thread\(threads == 1 ? "" : "s") per rank, OpenBLAS single-threaded in each"
        case .split: threads == 1 ? "1 worker per rank, OpenBLAS single-threaded"
            : "1 worker per rank, each product split over \(threads) threads of single-threaded OpenBLAS"
        case .blas, .auto: "1 worker per rank, OpenBLAS with \(threads) thread\(threads == 1 ? "" : "s")"
        }
        let overlapping = options.overlap && communicator.size > 1 && mode == .workers ? threads == 1 : (options.overlap && communicator.size > 1)
        console.info("  ranks    \(communicator.size) (\(communicator.implementation)), \(threading) (\(BLAS.coreName)); "
                     + "gradients summed in \(options.reduction == .double ? "Double" : "Float")"
                     + (communicator.size > 1 ? (overlapping ? ", all-reduce overlapped with backward" : ", one all-reduce after backward") : ""))
        console.info(formatSummary(model).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        console.detail("host \(ProcessInfo.processInfo.hostName), pid \(getpid()): local rank \(communicator.localRank) of "
                       + "\(communicator.localSize), \(threads) thread\(threads == 1 ? "" : "s") (\(mode))")
    }
}

/// The median of each phase over epochs, leaving out the first (warm-up) when there are several.
func medianPhases(_ epochs: [PhaseTimes]) -> PhaseTimes {
    let used = epochs.count > 1 ? Array(epochs.dropFirst()) : epochs
    guard !used.isEmpty else { return PhaseTimes() }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    return PhaseTimes(forward: median(used.map(\.forward)), backward: median(used.map(\.backward)),
                      allReduce: median(used.map(\.allReduce)), optimizer: median(used.map(\.optimizer)))
}
