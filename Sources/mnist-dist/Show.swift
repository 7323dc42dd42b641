// mnist-dist show: the first digits of a dataset with their labels, as a picture (the chapter's first figure).
import ArgumentParser
import Foundation
import Reporting
import Support
import Training
import Pictures

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the first N digits of a dataset with their labels as a PNG picture.",
        discussion: """
            Examples:
              mnist-dist show                                  the first 25 training digits -> digits.png
              mnist-dist show --count 50 --set test --output test-digits.png
              mnist-dist show --dataset fashion-mnist --output clothes.png
            """)

    @OptionGroup(title: "Data") var data: DataOptions

    @Option(help: "Which part of the split to show: train or test.")
    var set: DataPart = .train

    @Option(help: "How many digits.")
    var count: Int = 25

    @Option(help: "The PNG file to write.")
    var output: String = "digits.png"

    func validate() throws {
        if count < 1 || count > 1000 { throw ValidationError("--count \(count): must be between 1 and 1000") }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            let split = try loadSplit(data)
            let dataset = set == .test ? split.test : split.train
            let shown = min(count, dataset.count)
            let size = dataset.pixelsPerImage
            let canvas = Plots.digitGrid(title: "\(dataset.name): the first \(shown) images and their labels",
                                         images: (0..<shown).map { Array(dataset.pixels[($0 * size)..<(($0 + 1) * size)]) },
                                         rows: dataset.rows, columns: dataset.columns,
                                         captions: (0..<shown).map { ("\(dataset.labels[$0])", false) }, perRow: min(shown, 10))
            do { try canvas.writePNG(to: output) } catch { throw RunError(.cannotWrite, "\(output): \(error)") }
            console.report("wrote \(shown) digits of \(dataset.name) to \(output)")
        }
    }
}
