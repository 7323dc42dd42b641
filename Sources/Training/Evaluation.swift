// Accuracy and confusion matrices, computed across the ranks, for training runs and for `evaluate`.
import Autodiff
import Checkpoints
import Distributed
import Foundation
import MNISTData
import NN
import Support

public enum Evaluation {
    /// Accuracy and confusion matrix ([true][predicted]) on `dataset`, split across ranks: each rank predicts a
    /// contiguous part and the counts are summed, so every sample is counted exactly once.
    static func run(_ workers: Workers, _ dataset: Dataset, communicator: Communicator) throws -> (accuracy: Double, confusion: [[Int]]) {
        let mine = shard(of: 0..<dataset.count, rank: communicator.rank, ranks: communicator.size)
        let samples = OrderedSamples(dataset: dataset, order: (0..<Int32(dataset.count)).map { $0 })
        var predictions = [Int32](repeating: 0, count: dataset.count)
        let chunk = 1000
        predictions.withUnsafeMutableBufferPointer { output in
            var start = mine.lowerBound
            while start < mine.upperBound {
                let end = min(start + chunk, mine.upperBound)
                workers.predict(samples, range: start..<end, into: output)
                start = end
            }
        }
        let classes = Dataset.classCount
        var counts = [Int64](repeating: 0, count: classes * classes)
        for index in mine { counts[Int(dataset.labels[index]) * classes + Int(predictions[index])] += 1 }
        do {
            try counts.withUnsafeMutableBufferPointer { (b) in try communicator.allReduce(b, .sum) }
        } catch {
            throw RunError(.ranksDisagree, "evaluation: \(error)")
        }
        let confusion = (0..<classes).map { row in (0..<classes).map { Int(counts[row * classes + $0]) } }
        let correct = (0..<classes).reduce(0) { $0 + confusion[$1][$1] }
        return (dataset.count == 0 ? .nan : Double(correct) / Double(dataset.count), confusion)
    }
}

extension SavedModel {
    /// Workers for evaluating this model on this process's threads, each product one call.
    func workers(threads: Int) -> Workers {
        Workers(model: model, store: store, scaling: scaling, threads: (threads, .serial))
    }

    /// Accuracy and confusion matrix on `dataset`, split across the communicator's ranks.
    public func evaluate(_ dataset: Dataset, communicator: Communicator, threads: Int) throws -> (accuracy: Double, confusion: [[Int]]) {
        try Evaluation.run(workers(threads: threads), dataset, communicator: communicator)
    }
}
