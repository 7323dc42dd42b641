// Setting a run up: the data on every rank, the model and optimizer, the thread plan and the reducer, the ranks'
// agreement, the initial state (resumed or broadcast from rank 0), the output files, and the start block.
import Autodiff
import Reporting
import Platform
import Checkpoints
import Deflate
import Distributed
import Foundation
import MNISTData
import NN
import Support

/// One run of a configuration on the ranks: everything it holds once set up, and where it stands. Its methods
/// (Trainer.swift) train the epochs and finish; `Trainer.prepare` (below) builds it.
final class Run {
    let configuration: TrainingConfiguration
    let options: RunOptions
    let communicator: Communicator
    let console: Console
    let provided: ProvidedData?
    let data: DataSplit
    /// Where the data came from, for the start block.
    let source: String
    /// The model, its parameters and optimizer, and how this process computes and sums the gradients.
    let machinery: Machinery
    let policy: StopPolicy
    let metrics: MetricsLog?
    /// Rank 0's TensorBoard run (--tensorboard).
    let tensorBoard: TensorBoardLog?
    /// This rank's timeline (--trace), on every rank.
    let trace: TraceRecorder?
    /// Where the run's parameters came from (the seed, --init-from, or a checkpoint) and what checkpoints record.
    let start: StartPoint
    var position: RunPosition
    var epochPhases: [PhaseTimes] = []
    /// The slowest step so far, in seconds (the stall deadline grows with it).
    var slowestStep = 0.0
    var confusion: [[Int]] = []
    var outputs: [(what: String, path: String)] = []

    init(_ trainer: Trainer, data: (split: DataSplit, source: String), machinery: Machinery, start: StartPoint, outputs: RunOutputs) {
        configuration = trainer.configuration
        options = trainer.options
        communicator = trainer.communicator
        console = trainer.console
        provided = trainer.provided
        (self.data, source) = data
        self.machinery = machinery
        (policy, metrics, tensorBoard, trace) = (outputs.policy, outputs.metrics, outputs.tensorBoard, outputs.trace)
        self.start = start
        position = start.position
        machinery.workers.trace = trace
    }

    /// What checkpoints record about the run, and a resumed run must match.
    var settings: [String: String] { start.settings }

    /// A complete checkpoint of the run as it stands.
    func checkpoint() -> Checkpoint {
        Checkpoint(settings: settings, position: position, parameters: machinery.store.flatValues,
                   optimizerState: machinery.optimizer.state)
    }
}

/// The model and how this process computes, sums and applies its gradients: built once per run from what never
/// changes in it.
struct Machinery {
    let model: Model
    let store: ParameterStore
    let optimizer: Optimizer
    let workers: Workers
    let reducer: GradientReducer
    /// The memory the host's ranks share for the step, if they do.
    let host: HostStepMemory?
    let threads: Int
    let mode: ThreadMode
}

/// Where a run writes as it goes: checkpoints (by its stop policy), metrics, TensorBoard, the trace.
struct RunOutputs {
    let policy: StopPolicy
    let metrics: MetricsLog?
    let tensorBoard: TensorBoardLog?
    let trace: TraceRecorder?
}

/// Where a run's parameters and position came from, and the settings checkpoints record about it.
struct StartPoint {
    /// What checkpoints record about the run (`Trainer.recordedSettings`), and a resumed run must match.
    var settings: [String: String] = [:]
    var position = RunPosition()
    /// The checkpoint the run resumed from (its file as rank 0 found it) and the settings it recorded.
    var resumed: (file: String, settings: [String: String])?
    /// Why --resume found nothing to resume (the run starts afresh).
    var nothingToResume: String?
    /// The model whose parameters the run started from (--init-from).
    var initializedFrom: SavedModel?
}

/// One step's figures, summed over the ranks by one small all-reduce, or where the host's ranks share the step, in
/// their shared memory (`HostStepMemory.post`); they carry the stop request too.
struct StepMetrics {
    /// Σ per-sample loss, correct predictions, samples.
    var lossSum: Double
    var correct: Int
    var samples: Int
    /// Whether any rank asked to stop after this step.
    var stopRequested: Bool

    init(_ local: WorkerTotals, stopRequested: Bool) {
        lossSum = local.lossSum
        correct = local.correct
        samples = local.samples
        self.stopRequested = stopRequested
    }

    /// This rank's figures, as four Doubles.
    var local: (Double, Double, Double, Double) { (lossSum, Double(correct), Double(samples), stopRequested ? 1.0 : 0.0) }

    mutating func set(_ summed: (Double, Double, Double, Double)) {
        (lossSum, correct, samples, stopRequested) = (summed.0, Int(summed.1), Int(summed.2), summed.3 > 0)
    }

    mutating func sum(over communicator: Communicator) throws(CommunicatorError) {
        guard communicator.size > 1 else { return }
        // On the stack: nothing is allocated in the training step.
        let local = self.local
        let summed = try withUnsafeTemporaryAllocation(of: Double.self, capacity: 4) { (buffer) throws(CommunicatorError) in
            buffer.initializeElement(at: 0, to: local.0)
            buffer.initializeElement(at: 1, to: local.1)
            buffer.initializeElement(at: 2, to: local.2)
            buffer.initializeElement(at: 3, to: local.3)
            try communicator.allReduce(buffer, .sum)
            return (buffer[0], buffer[1], buffer[2], buffer[3])
        }
        set(summed)
    }
}

extension RunPosition {
    /// After a step: the next batch of this epoch, one more step, and the step's figures in the epoch's totals.
    mutating func advance(batch next: Int, by metrics: StepMetrics) {
        batch = next
        step += 1
        partial.lossSum += metrics.lossSum
        partial.correct += metrics.correct
        partial.samples += metrics.samples
    }

    /// After an epoch: its record kept, the next epoch's start.
    mutating func finishEpoch(_ record: EpochRecord) {
        history.append(record)
        epoch += 1
        batch = 0
        partial = .init()
    }
}

extension Trainer {
    /// Loads the data, builds the model, optimizer, workers and reducer, checks that the ranks agree, and sets the
    /// initial state: rank 0's initialisation (or checkpoint), broadcast so that no rank can start elsewhere.
    func prepare() throws -> Run {
        try checkRunnable()
        let (data, source) = try loadData()
        let model = configuration.makeModel(imageSize: (data.train.rows, data.train.columns))
        try checkAgreement(data, parameterCount: model.parameterCount)
        let threads = options.threads ?? Processors.defaultThreads(ranksOnMachine: communicator.machineSize)
        let mode = options.threadMode.resolved(for: configuration.model, reduction: configuration.gradientSum,
                                               precision: configuration.precision)
        let workerCount = mode == .workers ? threads : 1
        let microBatches = MicroBatches(size: configuration.microBatch)
        let (host, notShared) = try makeHostMemory(parameterCount: model.parameterCount, workers: workerCount,
                                                   microBatches: microBatches)
        let store = model.makeParameterStore(memory: host.map { ($0.values, $0.slot(rank: $0.rank, part: 0)) })
        let optimizer: Optimizer
        do {
            optimizer = try configuration.makeOptimizer(parameterCount: store.count, state: host?.state)
        } catch {
            throw RunError(.usage, "\(error)")
        }
        let reducer = store.withGradients { gradient in
            GradientReduction.make(precision: configuration.gradientSum, overlap: options.overlap, parts: workerCount,
                                   communicator: communicator, parameterRanges: store.entries.map(\.range), gradient: gradient,
                                   microBatches: microBatches, host: host, notShared: notShared, threads: threads)
        }
        let workers = makeWorkers(model: model, store: store, threads: threads, mode: mode, layout: reducer.layout)
        let machinery = Machinery(model: model, store: store, optimizer: optimizer, workers: workers, reducer: reducer, host: host,
                                  threads: threads, mode: mode)
        let start = try initialState(data: data, machinery: machinery, settings: recordedSettings(data: data, model: model))
        let outputs = RunOutputs(policy: try makePolicy(), metrics: try makeMetricsLog(),
                                 tensorBoard: try makeTensorBoardLog(settings: start.settings, step: start.position.step),
                                 trace: options.traceFile == nil ? nil
                                     : try TraceRecorder(tracks: 1 + workers.count, communicator: communicator))
        return Run(self, data: (data, source), machinery: machinery, start: start, outputs: outputs)
    }

    /// Refuses, on every rank and before any work, what this run cannot do here: bfloat16 products on a CPU without
    /// them, and an exact-sum batch of more micro-batches than the sum takes.
    func checkRunnable() throws {
        if configuration.precision == .bf16 {
            try communicator.agree {
                guard BFloat16.supported else {
                    throw RunError(.usage, "--precision bf16: this CPU (\(MachineDescription.current().cpu)) has no AVX512_BF16, "
                                       + "which bfloat16 products need (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids "
                                       + "and later); use --precision float")
                }
            }
        }
        if configuration.gradientSum == .exact && configuration.batchSize > configuration.microBatch * MicroBatches.maximumCount {
            throw RunError(.usage, "--batch-size \(configuration.batchSize): with --allreduce exact a batch holds at most "
                               + "\(MicroBatches.maximumCount) micro-batches; raise --micro-batch")
        }
    }

    /// On one host the ranks share the parameters, the optimizer state and the gradient parts, and each steps a
    /// slice (HostSum); elsewhere each rank keeps its own and the gradients are all-reduced. Returns the shared
    /// memory, or why there is none (nil in one process, where there is nothing to share).
    func makeHostMemory(parameterCount: Int, workers: Int, microBatches: MicroBatches) throws
        -> (memory: HostStepMemory?, notShared: String?) {
        let stateCount = configuration.optimizerStateCount(parameterCount: parameterCount)
        do {
            switch GradientReduction.sharedStepParts(precision: configuration.gradientSum, workers: workers,
                                                     microBatches: microBatches, batchSize: configuration.batchSize,
                                                     ranks: communicator.size) {
            case .success(let parts):
                switch try HostStepMemory.make(communicator: communicator, count: parameterCount, stateCount: stateCount,
                                               partsPerRank: parts) {
                case .success(let memory): return (memory, nil)
                case .failure(let reason): return (nil, reason.description)
                }
            case .failure(let reason): return (nil, communicator.size > 1 ? reason.description : nil)
            }
        } catch {
            throw RunError(.ranksDisagree, "setting up the memory the host's ranks share: \(error)")
        }
    }

    /// What checkpoints record about the run: the configuration's settings, and the data and model it trains.
    func recordedSettings(data: DataSplit, model: Model) -> [String: String] {
        var settings = Dictionary(uniqueKeysWithValues: configuration.settings.map { ($0.key.rawValue, $0.value) })
        settings[SettingKey.split.rawValue] = data.kind.rawValue
        settings[SettingKey.architecture.rawValue] = model.architecture
        settings[SettingKey.trainingSamples.rawValue] = "\(data.train.count)"
        settings[SettingKey.createdBy.rawValue] = "mnist-dist \(Version.string)"
        return settings
    }

    /// The parameters and optimizer state the run starts from, on every rank: the seed's initialisation, or
    /// --init-from's parameters, or a checkpoint's state and position (--resume).
    func initialState(data: DataSplit, machinery: Machinery, settings: [String: String]) throws -> StartPoint {
        let (model, store, optimizer, host) = (machinery.model, machinery.store, machinery.optimizer, machinery.host)
        // Where the host's ranks share the parameters and the optimizer state, rank 0 writes them for all (and sends
        // them to the other hosts').
        let writesState = host == nil || communicator.rank == 0
        if writesState { model.initialize(store, seed: configuration.seed) }
        var start = StartPoint(settings: settings,
                               position: RunPosition(generator: configuration.shuffle == .chapter ? data.chapterGenerator : nil))
        if let path = options.resume {
            try resume(from: path, machinery: machinery, writes: writesState, into: &start)
        }
        if let path = options.initFrom, start.resumed == nil {
            start.initializedFrom = try initialParameters(from: path, model: model, store: store, writes: writesState)
        }
        try broadcastState(store: store, optimizer: optimizer, host: host)
        return start
    }

    /// Rank 0's TensorBoard run directory, created now with the configuration as its first text.
    func makeTensorBoardLog(settings: [String: String], step: Int) throws -> TensorBoardLog? {
        guard let root = options.tensorBoardDirectory else { return nil }
        return try communicator.agree { () throws -> TensorBoardLog? in
            guard communicator.rank == 0 else { return nil }
            let log = try TensorBoardLog(root: root, model: configuration.model.rawValue,
                                         learningRate: configuration.resolvedLearningRate)
            let run = [("ranks", "\(communicator.size)"), ("host", ProcessInfo.processInfo.hostName),
                       ("machine", MachineDescription.current().summary)]
            log.configuration(settings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } + run, step: step)
            try log.flush()
            return log
        }
    }

    /// The workers of a thread mode, and how their products use threads.
    func makeWorkers(model: Model, store: ParameterStore, threads: Int, mode: ThreadMode, layout: PartLayout) -> Workers {
        let precision = configuration.precision
        let scaling = configuration.normalization.scaling
        // The exact sum promises the same bits at any rank count, thread count and thread mode: every product is cut
        // where any of them would cut it (OpenBLAS's last bits depend on a call's columns).
        let fixedBlock = configuration.gradientSum == .exact ? 256 : nil
        switch mode {
        case .workers:
            let plan = BLAS.Plan(parts: 1, fixedColumnBlock: fixedBlock, precision: precision)
            return Workers(model: model, store: store, scaling: scaling, threads: (threads, plan), layout: layout)
        case .split:
            let plan = BLAS.Plan(parts: threads, fixedColumnBlock: fixedBlock, precision: precision)
            return Workers(model: model, store: store, scaling: scaling, threads: (1, plan), layout: layout)
        case .blas, .auto:
            // OpenBLAS's thread count is the process's: this mode is for a process that runs this one job.
            BLAS.useOpenBLASThreads(threads)
            return Workers(model: model, store: store, scaling: scaling, threads: (1, .serial), layout: layout)
        }
    }

    /// The checkpoint and stop policy, with the checkpoint directory created (by rank 0) if there is one.
    func makePolicy() throws -> StopPolicy {
        let directory = options.checkpointDirectory.map { CheckpointDirectory(path: $0, keep: options.keepCheckpoints) }
        if let directory {
            try communicator.agree {
                guard communicator.rank == 0 else { return }
                do { try directory.prepare() } catch { throw RunError(.cannotWrite, "\(error)") }
            }
            if communicator.size > 1 { try checkShared(directory) }
        }
        return StopPolicy(directory: directory, every: options.checkpointEvery, stopAfter: options.stopAfterSteps)
    }

    /// Rank 0 writes the checkpoints and reads them on resume, and a requeued job may start on other nodes with
    /// another rank 0: so every rank must see the directory rank 0 sees. Rank 0 writes a file with a name nobody
    /// has looked up before; every rank looks for it (for up to 2 s, for network filesystems' caches); a rank that
    /// cannot see it stops the job with the ranks and hosts that are cut off.
    func checkShared(_ directory: CheckpointDirectory) throws {
        let token: Int64
        do {
            token = try communicator.allReduce(communicator.rank == 0 ? Int64.random(in: 1...Int64.max) : 0, .max)
        } catch {
            throw RunError(.ranksDisagree, "checking that every rank sees the checkpoint directory: \(error)")
        }
        let marker = URL(fileURLWithPath: directory.path).appendingPathComponent(".mnist-dist-shared-\(String(token, radix: 16))").path
        try communicator.agree {
            guard communicator.rank == 0 else { return }
            guard FileManager.default.createFile(atPath: marker, contents: Data("written by rank 0 of a starting mnist-dist job\n".utf8)) else {
                throw RunError(.cannotWrite, "\(directory.path): cannot create a file there")
            }
        }
        var seen = FileManager.default.fileExists(atPath: marker)
        for _ in 0..<20 where !seen {
            usleep(100_000)
            seen = FileManager.default.fileExists(atPath: marker)
        }
        let blind: [Int64]
        do {
            blind = try communicator.allGather(seen ? 0 : 1)
        } catch {
            throw RunError(.ranksDisagree, "checking that every rank sees the checkpoint directory: \(error)")
        }
        if communicator.rank == 0 { try? FileManager.default.removeItem(atPath: marker) }
        let cutOff = blind.indices.filter { blind[$0] != 0 }
        guard cutOff.isEmpty else {
            let who = cutOff.map { "\($0) (\(communicator.hostName(ofRank: $0)))" }.joined(separator: ", ")
            throw RunError(.usage, communicator.rank == 0
                ? "--checkpoint-dir \(directory.path) is not shared: rank\(cutOff.count == 1 ? "" : "s") \(who) cannot see "
                    + "the file rank 0 (\(communicator.hostName(ofRank: 0))) wrote there. Rank 0 writes the checkpoints "
                    + "and a resumed or requeued job may have its rank 0 on another host: put the directory on a "
                    + "filesystem every host mounts (a home or project directory), not on node-local storage such as /tmp"
                : nil)
        }
    }

    /// Rank 0's metrics file, created (or emptied) now.
    func makeMetricsLog() throws -> MetricsLog? {
        let metrics = options.metricsFile.flatMap { communicator.rank == 0 ? MetricsLog(path: $0) : nil }
        try communicator.agree { try metrics?.start() }
        return metrics
    }

    /// Loads the data on every rank (a failure on any rank ends all of them) and checks it suits the model.
    func loadData() throws -> (DataSplit, String) {
        if let provided { return (provided.split, provided.description) }
        return try communicator.agree {
            let directory = try DataLocation.resolve(dataset: configuration.dataset, explicit: options.dataDirectory)
            let split: DataSplit
            do throws(FileError) {
                split = try DatasetFiles.load(configuration.dataset, directory: directory, split: configuration.split)
            } catch {
                throw RunError(error)
            }
            guard split.train.count > 0 else {
                throw RunError(.badInput, "\(split.train.name): the training set is empty")
            }
            if configuration.model == .cnn && (split.train.rows != 28 || split.train.columns != 28) {
                throw RunError(.badInput, "\(split.train.name): images are \(split.train.rows)x\(split.train.columns), "
                                   + "but the cnn takes 28x28 images")
            }
            return (split, "\(configuration.dataset), \(split.kind) split from \(directory)")
        }
    }

    /// Checks that every rank runs the same configuration on the same data; names the first setting that differs.
    func checkAgreement(_ data: DataSplit, parameterCount: Int) throws {
        guard communicator.size > 1 else { return }
        let entries = configuration.settings.map { ($0.key.rawValue, $0.value) } + [
            ("training samples", "\(data.train.count)"), ("test samples", "\(data.test.count)"),
            ("split", data.kind.rawValue), ("parameters", "\(parameterCount)"),
            ("data checksum", "\(Zlib.crc32(data.train.labels))-\(Zlib.crc32(Array(data.train.pixels.prefix(1 << 20))))"),
        ]
        var low = entries.map { Int64(bitPattern: StableHash.of($0.1)) }
        var high = low
        do {
            try low.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .min) }
            try high.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .max) }
        } catch {
            throw RunError(.ranksDisagree, "\(error)")
        }
        if let index = low.indices.first(where: { low[$0] != high[$0] }) {
            let (name, value) = entries[index]
            throw RunError(.ranksDisagree, communicator.rank == 0
                ? "the ranks do not agree on \(name) (rank 0 has \(value)); every rank must run the same options on the same data"
                : nil)
        }
    }

    /// Rank 0's parameters and optimizer state, copied to every rank; where the host's ranks share them, to every
    /// host's memory.
    func broadcastState(store: ParameterStore, optimizer: Optimizer, host: HostStepMemory?) throws {
        guard communicator.size > 1 else { return }
        do {
            if let host { return try host.shareInitialState() }
            try store.withValues { (v) in try communicator.broadcast(v, root: 0) }
            try optimizer.withState { (s) in try communicator.broadcast(s, root: 0) }
        } catch {
            throw RunError(.ranksDisagree, "broadcasting the initial state: \(error)")
        }
    }

    /// The parameters of a safetensors file or checkpoint (--init-from), read on every rank and checked against the
    /// run's model; the ranks that write the state copy them into the store (the broadcast that follows makes every
    /// rank start from rank 0's).
    func initialParameters(from path: String, model: Model, store: ParameterStore, writes: Bool) throws -> SavedModel {
        try communicator.agree {
            let saved = try SavedModel.load(path: path, normalization: configuration.normalization)
            guard saved.model.architecture == model.architecture else {
                throw RunError(.badInput, "--init-from \(path): holds a \(saved.model.architecture), but this run trains a \(model.architecture)")
            }
            if writes { store.flatValues = saved.store.flatValues }
            return saved
        }
    }

    /// Rank 0 reads the checkpoint and sends its bytes to every rank (the file need exist on rank 0's host only);
    /// every rank checks it against the run and restores parameters and optimizer state from it, and `start` records
    /// it. A directory that does not exist yet, or holds no checkpoint, leaves the start as it is and says why.
    /// - Parameter writes: whether this rank writes what it read into the store and the optimizer (not where the host's
    ///   ranks share them and this is not rank 0).
    func resume(from path: String, machinery: Machinery, writes: Bool, into start: inout StartPoint) throws {
        let (store, optimizer, expected) = (machinery.store, machinery.optimizer, start.settings)
        var bytes: [UInt8] = []
        var file = path
        try communicator.agree {
            guard communicator.rank == 0 else { return }
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if !exists && !path.hasSuffix(".ckpt") {
                start.nothingToResume = "\(path) does not exist yet"
                return
            }
            if exists && isDirectory.boolValue && CheckpointDirectory(path: path).files().isEmpty {
                start.nothingToResume = "\(path) holds no checkpoint yet"
                return
            }
            do throws(FileError) {
                let (checkpoint, found) = try loadCheckpoint(from: path) { console.error("warning: \($0)") }
                (bytes, file) = (checkpoint.encoded(), found)
            } catch {
                throw RunError(error)
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
        guard length[0] > 0 else {
            start.nothingToResume = start.nothingToResume ?? "nothing to resume"
            return
        }
        let resumed = try communicator.agree { () throws -> (position: RunPosition, settings: [String: String]) in
            let checkpoint: Checkpoint
            do throws(FileError) { checkpoint = try Checkpoint.decode(bytes, name: path) } catch { throw RunError(error) }
            for key in SettingKey.identity.map(\.rawValue) where checkpoint.settings[key] != expected[key] {
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
            if writes {
                store.flatValues = checkpoint.parameters
                optimizer.state = checkpoint.optimizerState
            }
            return (checkpoint.position, checkpoint.settings)
        }
        start.position = resumed.position
        start.resumed = (file, resumed.settings)
    }
}

extension Run {
    /// The start block: what runs, on what, with what, from where.
    func printStart() {
        console.info("mnist-dist \(Version.string): \(configuration.model) on \(source)")
        console.info("  data     train \(groupedThousands(data.train.count)), test \(groupedThousands(data.test.count)) "
                     + "images of \(data.train.rows)x\(data.train.columns); inputs \(configuration.normalization.scaling)")
        let order = provided.map { "sample order given (\($0.order.summary))" } ?? "shuffle \(configuration.shuffle)"
        console.info("  training \(configuration.epochs) epochs, global batch \(configuration.batchSize), \(machinery.optimizer.summary), "
                     + "seed \(configuration.seed), \(order)")
        console.info("  ranks    \(communicator.size) (\(communicator.implementation)), \(threading); \(machinery.reducer.summary)")
        printProductsAndMemory()
        if let job = options.slurm {
            let left = communicator.rank == 0 ? job.secondsLeft().map { "; \(formatDuration($0)) left" } ?? "" : ""
            console.info("  slurm    \(job.summary)\(left)")
        }
        for note in options.notes { console.info("  note     \(note)") }
        printMachine()
        printOrigin()
        if let log = tensorBoard {
            console.info("  tensorboard \(log.directory) (view: tensorboard --logdir \(options.tensorBoardDirectory!))")
        }
        console.info(formatSummary(machinery.model).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        console.detail("host \(ProcessInfo.processInfo.hostName), pid \(getpid()): local rank \(communicator.localRank) of "
                       + "\(communicator.localSize), \(machinery.threads) thread\(machinery.threads == 1 ? "" : "s") (\(machinery.mode))")
    }

    /// How each rank uses its threads, for the ranks line.
    private var threading: String {
        let threads = machinery.threads, plural = threads == 1 ? "" : "s"
        return switch machinery.mode {
        case .workers: "\(threads) worker thread\(plural) per rank, OpenBLAS single-threaded in each"
        case .split: threads == 1 ? "1 worker per rank, OpenBLAS single-threaded"
            : "1 worker per rank, each product split over \(threads) threads of single-threaded OpenBLAS"
        case .blas, .auto: "1 worker per rank, OpenBLAS with \(threads) thread\(plural)"
        }
    }

    /// The products' precision (bfloat16 only), and what memory each rank holds (several ranks only).
    private func printProductsAndMemory() {
        if configuration.precision == .bf16 {
            console.info("  products bfloat16 operands (AVX512_BF16), summed in Float, in every dense product and convolution; "
                         + "parameters, optimizer state, loss and gradient sums in Float")
            if communicator.rank == 0, let rate = BFloat16.measuredRateAgainstFloat(), rate < 0.9 {
                console.info("  note     this CPU multiplies and adds in bfloat16 at \(String(format: "%.2f", rate))x its Float rate "
                             + "(measured just now): bf16 products cannot outrun Float ones here; `mnist-dist bench --precision "
                             + "float,bf16` compares whole epochs")
            }
        }
        if let host = machinery.host {
            console.info("  memory   \(host.description)")
        } else if communicator.size > 1 {
            console.info("  memory   each rank keeps the parameters (\(megabytes(machinery.store.count * 4))), its gradients and the whole "
                         + "optimizer state (\(megabytes(machinery.optimizer.stateCount * 4)))")
        }
    }

    /// The machine, and what about it or the thread mode the user should know: its kernels' hint, more ranks than
    /// cores, a thread mode that could not be had.
    private func printMachine() {
        let machine = MachineDescription.current()
        console.info("  machine  \(machine.summary)")
        if let hint = machine.hint { console.info("  note     \(hint)") }
        if communicator.oversubscribed {
            let cores = coresOnline
            console.info("  note     \(communicator.machineSize) ranks share this machine's \(cores) core\(cores == 1 ? "" : "s") and take turns on them; each "
                         + "computes whole products and a whole gradient part for its shard, so as many ranks as cores is as fast "
                         + "or faster for most models and sums (docs/scaling.md)")
        }
        if options.threadMode == .blas && machinery.mode != .blas {
            console.info(configuration.precision == .bf16
                ? "  note     --thread-mode blas runs as split with --precision bf16: OpenBLAS does not compute bfloat16 products"
                : "  note     --thread-mode blas runs as split under --allreduce exact: OpenBLAS's own threads cut each "
                    + "product by their count, which would change its last bits")
        }
    }

    /// Where the run starts from: a checkpoint it resumes (and the settings that differ from it), or why there is
    /// none, and parameters from --init-from.
    private func printOrigin() {
        if let (file, recorded) = start.resumed {
            let position = start.position
            console.info("  resume   \(file) (epoch \(position.epoch + 1), batch \(position.batch + 1), step \(position.step))")
            // Checkpoints from before precision was recorded were trained in Float.
            let before = [SettingKey.precision.rawValue: ProductPrecision.float.rawValue].merging(recorded) { $1 }
            for (key, option) in [(SettingKey.precision, "--precision"), (.gradientSum, "--allreduce"), (.microBatch, "--micro-batch")] {
                guard let then = before[key.rawValue], then != settings[key.rawValue] else { continue }
                console.info("  note     the checkpoint was trained with \(option) \(then); this run goes on with \(option) "
                             + (settings[key.rawValue] ?? "unset"))
            }
        } else if let reason = start.nothingToResume {
            console.info("  resume   \(reason): a fresh start")
        }
        if let saved = start.initializedFrom {
            console.info("  init     parameters from \(saved.path) (checksum \(saved.parameterChecksumHex)), not from the seed; "
                         + "the optimizer starts afresh")
            if saved.configuration.normalization != configuration.normalization
                && Checkpoint.withCurrentKeys(saved.settings)[SettingKey.normalization.rawValue] != nil {
                console.info("  note     \(saved.path) was trained with --normalize \(saved.configuration.normalization); this run uses "
                             + "\(configuration.normalization)")
            }
        } else if options.initFrom != nil && start.resumed != nil {
            console.info("  note     --init-from is not used: the run resumes from its checkpoint")
        }
    }
}
