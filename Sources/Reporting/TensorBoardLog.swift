// The run as TensorBoard shows it (--tensorboard DIR): rank 0 writes one run directory per run under DIR, with
// scalars per step and per epoch, the run's pictures at the end, and the configuration as text.
//
// Tags (what TensorBoard's Scalars tab groups by the part before the slash):
//   step/loss, step/samples_per_second, step/communication_share, step/learning_rate   x = global step (1, 2, ...)
//   epoch/train_loss, epoch/train_accuracy, epoch/test_accuracy, epoch/samples_per_second,
//   epoch/communication_share, epoch/learning_rate                                     x = epoch (1, 2, ...)
//   pictures/<name> (Images), configuration (Text)                                      x = the last step
// The epoch values are the --metrics file's, the step loss is the batch's mean loss over all ranks.
import Checkpoints
import Foundation
import Pictures
import Support
import TensorBoard

public final class TensorBoardLog {
    public let directory: String
    private let writer: EventFileWriter
    private let learningRate: Double

    /// A new run directory under `root`: `<model>-<UTC date and time>`, with a suffix if that name is taken.
    public init(root: String, model: String, learningRate: Double) throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let base = "\(root)/\(model)-\(formatter.string(from: Date()))"
        var candidate = base
        var suffix = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "\(base)-\(suffix)"
            suffix += 1
        }
        directory = candidate
        self.learningRate = learningRate
        do {
            writer = try EventFileWriter(directory: directory)
        } catch {
            throw RunError(.cannotWrite, "--tensorboard: \(error)")
        }
    }

    public func configuration(_ rows: [(String, String)], step: Int) {
        let table = "| setting | value |\n| --- | --- |\n" + rows.map { "| \($0.0) | \($0.1) |" }.joined(separator: "\n")
        writer.text("configuration", table, step: step)
    }

    public func step(_ step: Int, loss: Double, samplesPerSecond: Double, communicationShare: Double) {
        writer.scalar("step/loss", loss, step: step)
        writer.scalar("step/samples_per_second", samplesPerSecond, step: step)
        writer.scalar("step/communication_share", communicationShare, step: step)
        writer.scalar("step/learning_rate", learningRate, step: step)
    }

    public func epoch(_ record: EpochRecord) {
        let values = [("train_loss", record.trainLoss), ("train_accuracy", record.trainAccuracy),
                      ("test_accuracy", record.testAccuracy), ("samples_per_second", record.samplesPerSecond),
                      ("communication_share", record.communicationShare), ("learning_rate", learningRate)]
        for (name, value) in values { writer.scalar("epoch/\(name)", value, step: record.epoch) }
    }

    public func pictures(_ pictures: [(name: String, canvas: Canvas)], step: Int) {
        for (name, canvas) in pictures {
            let tag = "pictures/" + (name.hasSuffix(".png") ? String(name.dropLast(4)) : name)
            writer.image(tag, png: canvas.png(), width: canvas.width, height: canvas.height, step: step)
        }
    }

    /// Writes what is buffered (called after each epoch and at the end).
    public func flush() throws {
        do { try writer.flush() } catch { throw RunError(.cannotWrite, "--tensorboard: \(error)") }
    }
}
