// mnist-dist toy and smooth: the chapter's two small examples.
import ArgumentParser
import Foundation
import MNISTData
import Reporting
import Support
import Training
import Chapter
import Pictures

struct Toy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The chapter's toy CNN: three 5x5 images, two hand-made filters, max-pool, softmax.",
        discussion: """
            Reads img-x.tsv and img-filter.tsv (data/toy), prints each image's class probabilities and writes the
            images, the filters and the six feature maps as PNG pictures: toy-images.png, toy-filters.png and
            toy-feature-maps.png.
            Example:
              mnist-dist toy --pictures pictures
            """)

    @OptionGroup var directory: DataDirectoryOption

    @Option(help: ArgumentHelp("Where to write toy-images.png, toy-filters.png and toy-feature-maps.png.", valueName: "dir"))
    var pictures: String = "."

    @Option(name: .customLong("output-dir"), help: .hidden)
    var oldPictures: String?

    func validate() throws {
        _ = try picturesDirectory
    }

    /// --pictures, or its old spelling --output-dir.
    var picturesDirectory: String {
        get throws { try OldSpelling.resolve(pictures == "." ? nil : pictures, oldPictures, now: "--pictures", was: "--output-dir") ?? pictures }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            let outputDirectory = try picturesDirectory
            let toy = try ToyExperiment(directory: try DataLocation.toyDirectory(explicit: directory.path))
            let (probabilities, maps) = toy.run()
            for (name, p) in zip(ToyExperiment.imageNames, probabilities) { console.report("\(name) \(numpyStyle(p))") }
            let images = Plots.mapGrid(title: "Toy images", maps: (0..<3).map { Array(toy.images[($0 * 25)..<(($0 + 1) * 25)]).map(Double.init) },
                                       width: 5, height: 5, labels: ToyExperiment.imageNames, perRow: 3, scale: 24, signed: false)
            let filters = Plots.mapGrid(title: "Toy filters", maps: (0..<2).map { Array(toy.filters[($0 * 9)..<(($0 + 1) * 9)]).map(Double.init) },
                                        width: 3, height: 3, labels: ["diagonal", "anti-diagonal"], perRow: 2, scale: 32, signed: false)
            let featureMaps = Plots.mapGrid(title: "Toy feature maps (image x filter)", maps: maps.map { $0.map(Double.init) },
                                            width: 3, height: 3,
                                            labels: ToyExperiment.imageNames.flatMap { ["\($0) f1", "\($0) f2"] }, perRow: 2, scale: 32,
                                            signed: false)
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            for (canvas, name) in [(images, "toy-images.png"), (filters, "toy-filters.png"), (featureMaps, "toy-feature-maps.png")] {
                let path = "\(outputDirectory)/\(name)"
                do { try canvas.writePNG(to: path) } catch { throw RunError(.cannotWrite, "\(path): \(error)") }
                console.report("wrote \(path)")
            }
        }
    }
}

struct Smooth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The chapter's 1-D smoothing: sin(x) plus noise, smoothed by a moving average of 10.",
        discussion: """
            500 points of sin(x) on [0, 10] plus 0.2 x Gaussian noise from numpy's RandomState(--seed), smoothed by
            convolve(y, ones(10)/10, mode='same'); prints how far each curve is from sin(x) and writes a plot.
            Example:
              mnist-dist smooth --output smoothing.png
            """)

    @Option(help: "Seed of the noise.")
    var seed: UInt32 = 0

    @Option(help: "The PNG file to write.")
    var output: String = "smoothing.png"

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        let experiment = SmoothingExperiment(seed: seed)
        let errors = experiment.errors
        console.report(String(format: "RMS distance from sin(x): noisy %.4f, smoothed %.4f", errors.noisy, errors.smoothed))
        let canvas = Plots.lineChart(title: "Smoothing by convolution with ones(10)/10", xLabel: "x", yLabel: "y", series: [
            .init(name: "sin(x) + noise", color: .gray, points: Array(zip(experiment.x, experiment.noisy)), markers: false),
            .init(name: "smoothed", color: .red, points: Array(zip(experiment.x, experiment.smoothed)), markers: false),
        ], width: 900, height: 500)
        do { try canvas.writePNG(to: output) } catch {
            console.error("error: \(output): \(error)")
            throw RunError(.cannotWrite, nil)
        }
        console.report("wrote \(output)")
    }
}
