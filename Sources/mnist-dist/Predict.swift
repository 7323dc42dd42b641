// mnist-dist predict: classify images from an IDX file or from PNG/PGM files.
import ArgumentParser
import Foundation
import MNISTData
import Training
import Pictures

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a saved model: an IDX image file, or 28x28 grayscale PNG/PGM files.",
        discussion: """
            Examples:
              mnist-dist predict --model cnn.ckpt digit.png other.pgm
              mnist-dist predict --model cnn.ckpt data/mnist/t10k-images-idx3-ubyte.gz --limit 5
            Each line gives the file (and index in an IDX file), the predicted digit and its probability.
            """)

    @Option(help: "A model written by train --save (or any checkpoint).")
    var model: String

    @Argument(help: "IDX image files (.gz or raw) or PNG/PGM images.")
    var inputs: [String]

    @Option(help: "Classify at most this many images of an IDX file.")
    var limit: Int = 20

    @Option(help: "Invert PNG/PGM images (MNIST digits are light on dark): auto (when the border is light), yes or no.")
    var invert: Inversion = .auto

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one image file") }
        if limit < 1 { throw ValidationError("--limit \(limit): must be at least 1") }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            let saved = try SavedModel.load(path: model)
            let (rows, columns) = saved.model.imageSize
            for input in inputs {
                let (pixels, count, names) = try images(from: input, rows: rows, columns: columns)
                let probabilities = saved.probabilities(of: pixels, count: count, rows: rows, columns: columns)
                for (name, p) in zip(names, probabilities) {
                    let digit = p.indices.max { p[$0] < p[$1] }!
                    console.report(String(format: "%@: %d (p = %.3f)", name, digit, p[digit]))
                }
            }
        }
    }

    /// The images of one input as MNIST-style bytes, their count, and a name for each.
    func images(from path: String, rows: Int, columns: Int) throws -> ([UInt8], Int, [String]) {
        let lower = path.lowercased()
        if lower.hasSuffix(".png") || lower.hasSuffix(".pgm") {
            let image: GrayImage
            do { image = try GrayImage.read(path: path) } catch { throw RunError(error) }
            guard image.width == columns && image.height == rows else {
                throw RunError(.badInput, "\(path): the image is \(image.width)x\(image.height); the model takes \(columns)x\(rows)")
            }
            let border = (0..<image.width).flatMap { [image.pixels[$0], image.pixels[(image.height - 1) * image.width + $0]] }
            let lightBorder = border.reduce(0) { $0 + Int($1) } / max(border.count, 1) > 127
            let flip = invert == .yes || (invert == .auto && lightBorder)
            return (flip ? image.pixels.map { 255 - $0 } : image.pixels, 1, [path])
        }
        let array: IDXArray
        do { array = try IDX.read(path: path, kind: .images) } catch {
            throw RunError(error)
        }
        guard array.dimensions[1] == rows && array.dimensions[2] == columns else {
            throw RunError(.badInput, "\(path): images are \(array.dimensions[1])x\(array.dimensions[2]); the model takes \(rows)x\(columns)")
        }
        let count = min(limit, array.dimensions[0])
        return (Array(array.bytes.prefix(count * rows * columns)), count, (0..<count).map { "\(path)[\($0)]" })
    }
}

enum Inversion: String, ExpressibleByArgument, CaseIterable {
    case auto, yes, no
}
