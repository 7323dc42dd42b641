// When a run checkpoints and when it stops early, and what it says then: one place for the decisions the loop
// takes after each step and each epoch. The inputs are values every rank agreed on (the step count, and the stop
// request summed by the step's metrics all-reduce), so every rank decides alike and none is left in a collective.
import Foundation
import Platform
import Checkpoints
import Support

package struct StopPolicy {
    /// Where checkpoints go (nil: none are written).
    package let directory: CheckpointDirectory?
    /// Also checkpoint every this many steps.
    package let every: Int?
    /// Stop after this many steps of the run (--stop-after).
    package let stopAfter: Int?

    package struct Decision: Equatable {
        package var checkpoint: Bool
        package var stop: Bool
        package init(checkpoint: Bool, stop: Bool) {
            self.checkpoint = checkpoint
            self.stop = stop
        }
    }

    package init(directory: CheckpointDirectory?, every: Int?, stopAfter: Int?) {
        self.directory = directory
        self.every = every
        self.stopAfter = stopAfter
    }

    /// Whether this rank asks to stop once step `step` (counted from 1) is done: a stop signal arrived, or
    /// --stop-after is reached.
    package func stopRequested(afterStep step: Int) -> Bool {
        StopSignals.requested != nil || stopAfter.map { step >= $0 } ?? false
    }

    /// After a step. The last step of an epoch leaves both decisions to the epoch's end, which always checkpoints.
    package func afterStep(_ step: Int, lastOfEpoch: Bool, stopAgreed: Bool) -> Decision {
        guard !lastOfEpoch else { return Decision(checkpoint: false, stop: false) }
        let periodic = every.map { step % $0 == 0 } ?? false
        return Decision(checkpoint: directory != nil && (stopAgreed || periodic), stop: stopAgreed)
    }

    /// At the end of epoch `epoch` (0-based) of `epochs`: a checkpoint whenever there is a directory; a stop when
    /// asked for, unless the run has finished anyway.
    package func afterEpoch(_ epoch: Int, of epochs: Int, stopAgreed: Bool) -> Decision {
        Decision(checkpoint: directory != nil, stop: stopAgreed && epoch + 1 < epochs)
    }

    /// Why the run stops after `step`: the signal this rank received, --stop-after, or (when only another rank saw
    /// a signal) that.
    package func reason(step: Int, signal: Int32? = StopSignals.requested) -> String {
        if let signal { return "\(StopSignals.name(signal)) received" }
        if let stopAfter, step >= stopAfter { return "--stop-after \(stopAfter) reached" }
        return "a stop signal reached another rank"
    }

    /// The one line a stopped run prints: where it stopped, why, and how to continue.
    /// - Parameter place: "after step 12 (epoch 1, batch 12 of 63)", "at the end of epoch 2".
    package func stopMessage(at place: String, step: Int, checkpoint: String?, signal: Int32? = StopSignals.requested) -> String {
        let next = if let checkpoint, let directory {
            "checkpoint written to \(checkpoint); continue with --resume \(directory.path)"
        } else {
            "no --checkpoint-dir was given, so nothing was saved"
        }
        return "stopped \(place): \(reason(step: step, signal: signal)); \(next)"
    }

    /// A step's mean loss above this has exploded: 100 x ln 10, a hundred times the loss of a model that gives all
    /// ten classes the same probability. Training that works never comes near it (the chapter's models start at
    /// 2.3-4.5 and fall); a learning rate far too large crosses it within a few steps, long before the loss (if
    /// ever) stops being a finite number. The same on every rank, from the same reduced loss: no rank goes on alone.
    package static let explodingLoss = 100 * log(10.0)

    /// What went wrong in a step, if anything: a non-finite loss or gradient, or an exploded loss.
    package static func divergence(meanLoss: Double, gradientFinite: Bool) -> String? {
        if !meanLoss.isFinite { return "the loss is not finite" }
        if !gradientFinite { return "the gradient is not finite" }
        if meanLoss > explodingLoss {
            return "the loss exploded (mean loss \(meanLoss < 1e15 ? groupedThousands(Int(meanLoss)) : formatNumber(meanLoss)) over the batch, above \(String(format: "%.0f", explodingLoss)) = "
                + "100 x ln 10, a hundred times the loss of guessing)"
        }
        return nil
    }

    /// The line a diverged run prints.
    /// - Parameter place: "step 12 (epoch 1, batch 12)".
    package func divergenceMessage(at place: String, problem: String, learningRate: Double) -> String {
        "training diverged at \(place): \(problem). Try a smaller learning rate (--lr, now \(formatNumber(learningRate)))"
            + (directory != nil ? "; the checkpoints written so far are untouched" : "") + "."
    }
}
