// What a run reports when it ends (`RunSummary`), the phases of its steps, and the --metrics file: JSON lines, one
// object per epoch and one for the whole run.
import Foundation
import Platform
import Checkpoints
import Support

/// What a finished run reports.
public struct RunSummary: Sendable {
    public init() {}

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
    /// FNV-1a (64-bit) of the final parameters' Float bit patterns: two runs trained the same model exactly when
    /// their checksums agree.
    public var parameterChecksum: UInt64 = 0
    /// The checksum as 16 hex digits, as the metrics and the run's last lines show it.
    public var parameterChecksumHex: String { StableHash.hex(parameterChecksum) }
    /// Peak resident memory of each rank, in megabytes.
    public var peakResidentMegabytes: [Double] = []
}

/// Seconds spent per phase of a step, summed over an epoch's steps.
public struct PhaseTimes: Sendable, Equatable {
    public init() {}
    public init(forward: Double, backward: Double, allReduce: Double, optimizer: Double) {
        (self.forward, self.backward, self.allReduce, self.optimizer) = (forward, backward, allReduce, optimizer)
    }

    public var forward = 0.0
    public var backward = 0.0
    public var allReduce = 0.0
    public var optimizer = 0.0
    public var total: Double { forward + backward + allReduce + optimizer }

    /// The median of each phase over epochs, leaving out the first (warm-up) when there are several.
    public static func median(_ epochs: [PhaseTimes]) -> PhaseTimes {
        let used = afterWarmUp(epochs)
        guard !used.isEmpty else { return PhaseTimes() }
        return PhaseTimes(forward: Support.median(used.map(\.forward)), backward: Support.median(used.map(\.backward)),
                          allReduce: Support.median(used.map(\.allReduce)), optimizer: Support.median(used.map(\.optimizer)))
    }
}

/// Appends JSON lines to a file (rank 0 only).
public final class MetricsLog {
    public let path: String
    public init(path: String) { self.path = path }

    /// Creates (or empties) the file.
    public func start() throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw RunError(.cannotWrite, "\(path): cannot create the metrics file")
        }
    }

    public func append(_ line: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw RunError(.cannotWrite, "\(path): cannot open the metrics file")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw RunError(.cannotWrite, "\(path): \(error.localizedDescription)")
        }
    }
}

/// The --metrics file's objects. Their keys are part of the file's format, written here and nowhere else; the
/// configuration's keys are the checkpoints' (`SettingKey`).
public enum MetricsRecord {
    public static func epoch(_ record: EpochRecord, phases: PhaseTimes, steps: Int, allReduceBytesPerStep: Int = 0,
                      slurm: SlurmJob? = nil) -> String {
        jsonObject([
            ("type", json("epoch")), ("epoch", "\(record.epoch)"), ("train_loss", json(record.trainLoss)),
            ("train_accuracy", json(record.trainAccuracy)), ("test_accuracy", json(record.testAccuracy)),
            ("seconds", json(record.seconds)), ("samples_per_second", json(record.samplesPerSecond)),
            ("communication_share", json(record.communicationShare)), ("last_batch_loss", json(record.lastBatchLoss)),
            ("steps", "\(steps)"),
            ("forward_seconds", json(phases.forward)), ("backward_seconds", json(phases.backward)),
            ("allreduce_seconds", json(phases.allReduce)), ("optimizer_seconds", json(phases.optimizer)),
            ("allreduce_bytes_per_step", "\(allReduceBytesPerStep)"),
            ("resident_mb", json(Memory.residentMegabytes()?.current ?? .nan)),
        ] + slurmFields(slurm))
    }

    /// The Slurm job and how often it was requeued, in every line of a run under Slurm.
    static func slurmFields(_ job: SlurmJob?) -> [(String, String)] {
        guard let job else { return [] }
        return [("slurm_job_id", json(job.jobID)), ("slurm_restart_count", "\(job.restartCount)")]
    }

    public static func run(_ summary: RunSummary, configuration: TrainingConfiguration, slurm: SlurmJob? = nil) -> String {
        let settings = jsonObject(configuration.settings.map { ($0.key.rawValue, json($0.value)) })
        let median = Support.median(afterWarmUp(summary.history).map(\.seconds))
        return jsonObject([
            ("type", json("run")), ("configuration", settings), ("epochs", "\(summary.history.count)"),
            ("final_test_accuracy", json(summary.finalTestAccuracy)), ("final_train_accuracy", json(summary.finalTrainAccuracy)),
            ("median_epoch_seconds", json(median)), ("total_seconds", json(summary.totalSeconds)),
            ("threads_per_rank", "\(summary.threadsPerRank)"),
            ("parameter_checksum", json(summary.parameterChecksumHex)),
            ("peak_resident_mb_per_rank", "[" + summary.peakResidentMegabytes.map(json).joined(separator: ", ") + "]"),
            ("confusion", "[" + summary.confusion.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"),
        ] + slurmFields(slurm))
    }
}
