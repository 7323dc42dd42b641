// mnist-dist reproduce: the chapter's two training experiments, as the chapter wrote them, beside its figures.
import ArgumentParser
import Foundation
import MNISTData
import Training
import Chapter

struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the chapter's MLP and CNN experiments as written, and print our figures beside the chapter's.",
        discussion: """
            mlp  784-1024-1024-10 tanh; numpy's RandomState(0) for the split, the
                 shuffles and the weights; inputs /255, SGD 0.001, batch 128,
                 10 epochs. The chapter prints train 0.8044 and test 0.7725.
            cnn  the chapter's CNN fed literally: raw t10k rows 0-7999 in one
                 order drawn once, inputs /255, Adadelta 0.1, batch 128,
                 10 epochs, the last batch's loss printed each epoch, scored on
                 rows 8000-9999 (reference PyTorch run 95.75 %; the chapter
                 printed 96.1 %).
            Examples:
              mnist-dist reproduce
              mpirun -np 2 mnist-dist reproduce cnn --pictures pictures
            """)

    @Argument(help: "Which experiment: mlp, cnn or all.")
    var experiment: Experiment = .all

    @OptionGroup var directory: DataDirectoryOption

    @Option(help: "Threads per rank. Default: this machine's cores / the ranks sharing them.")
    var threads: Int?

    @OptionGroup var pictures: RunPicturesOption

    @OptionGroup(title: "Output") var console: ConsoleOptions
    @OptionGroup(title: "MPI") var mpi: MPIOption

    enum Experiment: String, ExpressibleByArgument, CaseIterable { case mlp, cnn, all }

    func run() throws {
        try withCommunicator(mpi, console) { communicator, console in
            var options = RunOptions()
            options.dataDirectory = directory.path
            options.threads = threads
            if experiment != .cnn {
                options.picturesDirectory = try pictures.directory.map { "\($0)/mlp" }
                console.report("== The chapter's MLP ==")
                let summary = try Trainer(configuration: ChapterExperiments.mlpConfiguration, options: options,
                                          communicator: communicator, console: console).run()
                console.report(String(format: "MLP after %d epochs    train %.4f (chapter %.4f)    test %.4f (chapter %.4f)",
                                      summary.history.count, summary.finalTrainAccuracy, ChapterExperiments.mlpTrainAccuracy,
                                      summary.finalTestAccuracy, ChapterExperiments.mlpTestAccuracy))
            }
            if experiment != .mlp {
                options.picturesDirectory = try pictures.directory.map { "\($0)/cnn" }
                console.report("== The chapter's CNN, its data stream taken literally ==")
                let directory = try communicator.agree { try DataLocation.resolve(dataset: .mnist, explicit: self.directory.path) }
                let data = try communicator.agree { try ChapterExperiments.literalCNNData(directory: directory) }
                let summary = try Trainer(configuration: ChapterExperiments.literalCNNConfiguration, options: options,
                                          communicator: communicator, console: console, data: data).run()
                console.report("epoch  last-batch loss  (reference PyTorch run)")
                for (record, reference) in zip(summary.history, ChapterExperiments.literalLosses) {
                    console.report(String(format: "%5d  %15.4f  (%.2f)", record.epoch, record.lastBatchLoss, reference))
                }
                console.report(String(format: "CNN accuracy on raw rows 8000-9999: %.2f%% (reference PyTorch run %.2f%%, chapter printed %.1f%%)",
                                      100 * summary.finalTestAccuracy, 100 * ChapterExperiments.literalAccuracy,
                                      100 * ChapterExperiments.chapterPrintedAccuracy))
            }
        }
    }
}
