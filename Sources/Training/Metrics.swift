// The --metrics file: JSON lines, one object per epoch and one for the whole run.
import Foundation
import Platform
import Checkpoints
import Support

/// Appends JSON lines to a file (rank 0 only).
final class MetricsLog {
    let path: String
    init(path: String) { self.path = path }

    /// Creates (or empties) the file.
    func start() throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw RunError(.cannotWrite, "\(path): cannot create the metrics file")
        }
    }

    func append(_ line: String) throws {
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
enum MetricsRecord {
    static func epoch(_ record: EpochRecord, phases: PhaseTimes, steps: Int, allReduceBytesPerStep: Int = 0,
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

    static func run(_ summary: RunSummary, configuration: TrainingConfiguration, slurm: SlurmJob? = nil) -> String {
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
