// mnist-dist evaluate: accuracy and confusion matrix of a saved model.
import ArgumentParser
import Checkpoints
import Foundation
import MNISTData
import NN
import Platform
import Support
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy and confusion matrix of a saved model on a dataset (distributed under mpirun).",
        discussion: """
            Examples:
              mnist-dist train --epochs 3 --save cnn.ckpt && mnist-dist evaluate cnn.ckpt
              mpirun -np 2 mnist-dist evaluate cnn.ckpt --dataset mnist --split chapter --set train
            """)

    @OptionGroup var model: ModelArgument

    @OptionGroup(title: "Data") var data: DataOptions

    @Option(help: "Which part of the split to score: test or train.")
    var set: DataPart = .test

    @Option(help: "Threads per rank. Default: this machine's cores / the ranks sharing them.")
    var threads: Int?

    @OptionGroup(title: "Output") var console: ConsoleOptions
    @OptionGroup(title: "MPI") var mpi: MPIOption

    func validate() throws {
        _ = try model.resolved()
        if let threads, threads < 1 { throw ValidationError("--threads \(threads): must be at least 1") }
    }

    func run() throws {
        try withCommunicator(mpi, console) { communicator, console in
            let saved = try communicator.agree { try SavedModel.load(path: try model.resolved(), normalization: data.normalize) }
            let split = try communicator.agree { try loadSplit(data) }
            let dataset = set == .test ? split.test : split.train
            let threads = self.threads ?? Processors.defaultThreads(ranksOnMachine: communicator.machineSize)
            let (accuracy, confusion) = try saved.evaluate(dataset, communicator: communicator, threads: threads)
            console.report("\(saved.model.architecture) from \(try model.resolved())")
            console.report(String(format: "accuracy on %@ (%@ images): %.4f (%.2f%%)", dataset.name, groupedThousands(dataset.count),
                                  accuracy, 100 * accuracy))
            console.report(formatConfusion(confusion))
        }
    }
}

/// The part of a split to use.
enum DataPart: String, ExpressibleByArgument, CaseIterable {
    case test, train
}

/// Loads the dataset the options name (on every rank; failures end all ranks, see `Communicator.agree`).
func loadSplit(_ data: DataOptions) throws -> DataSplit {
    let directory = try DataLocation.resolve(dataset: data.dataset, explicit: data.dataDirectory)
    do {
        return try DatasetFiles.load(data.dataset, directory: directory, split: data.split)
    } catch {
        throw RunError(error)
    }
}

/// The confusion matrix as a text table (rows: true class, columns: predicted).
func formatConfusion(_ matrix: [[Int]]) -> String {
    let width = max(5, (matrix.flatMap { $0 }.max().map { String($0).count } ?? 1) + 1)
    func cell(_ text: String) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
    var lines = ["confusion matrix (rows: true class, columns: predicted)", cell("") + (0..<matrix.count).map { cell("\($0)") }.joined()]
    for (row, counts) in matrix.enumerated() {
        lines.append(cell("\(row)") + counts.map { cell("\($0)") }.joined())
    }
    return lines.joined(separator: "\n")
}
