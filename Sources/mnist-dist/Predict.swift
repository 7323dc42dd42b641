// mnist-dist predict: classify images from an IDX file, or pictures (PNG, JPEG, PGM) of any size, prepared as MNIST
// prepared its digits.
import ArgumentParser
import Checkpoints
import Reporting
import Support
import Foundation
import MNISTData
import Training
import Pictures

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a saved model: an IDX image file, or pictures of digits (PNG, JPEG, PGM) of any size.",
        discussion: """
            Examples:
              mnist-dist predict cnn.ckpt photo.jpg drawing.png other.pgm
              mnist-dist predict cnn.ckpt data/mnist/t10k-images-idx3-ubyte.gz --limit 5
              mnist-dist predict cnn.ckpt photo.jpg --pictures seen     the 28x28 picture the model saw
            Each line gives the file (and index in an IDX file), the predicted digit and its probability, and for a
            picture what was done to it. Pictures get MNIST's own preprocessing: grey; inverted when the ink is dark
            on a light background; the background subtracted; cropped to the ink; scaled to fit 20x20 keeping the
            aspect ratio; centred by centre of mass in 28x28. A 28x28 picture with light ink on a dark background is
            taken as it is (already MNIST's form) unless --preprocess mnist.
            """)

    @Argument(help: ArgumentHelp("The model (written by train --save, any checkpoint, or a safetensors file of one; see export), then IDX image files (.gz or raw) or PNG, JPEG or PGM pictures (told apart by their contents).", valueName: "model> <images"))
    var files: [String] = []

    @Option(name: .customLong("model"), help: .hidden)
    var oldModel: String?

    @Option(help: "Classify at most this many images of an IDX file.")
    var limit: Int = 20

    @Option(help: "Invert pictures (MNIST digits are light on dark): auto (when the border is light), yes or no.")
    var invert: DigitPreparation.Inversion = .auto

    @Option(help: ArgumentHelp("How pictures are prepared: auto (MNIST's preprocessing, except for a 28x28 picture already light on dark), mnist (always), or none (the picture must be 28x28; only --invert applies).", valueName: "auto|mnist|none"))
    var preprocess: DigitPreparation.Preprocessing = .auto

    @Option(help: ArgumentHelp("Write each picture as the model saw it (28x28 PNG, named after the file) into this directory.", valueName: "dir"))
    var pictures: String?

    @Option(name: .customLong("save-inputs"), help: .hidden)
    var oldPictures: String?

    @Flag(help: "Print one JSON object per image instead: input, index, class, and the ten log-probabilities.")
    var json = false

    @Option(help: "For a safetensors model that does not record it: how the model expects pixels, standard or none.")
    var normalize: Normalization = Defaults.normalization

    func validate() throws {
        _ = try picturesDirectory
        if try inputs.isEmpty { throw ValidationError(files.isEmpty ? "give a model and at least one image file" : "give at least one image file after the model") }
        if limit < 1 { throw ValidationError("--limit \(limit): must be at least 1") }
    }

    /// The model's file: the first argument, or the old `--model FILE`.
    var model: String {
        get throws {
            if let oldModel {
                OldSpelling.announce("--model FILE", now: "the model as the first argument")
                return oldModel
            }
            return files.first ?? ""
        }
    }

    /// The images: the arguments after the model.
    var inputs: [String] {
        get throws { oldModel == nil ? Array(files.dropFirst()) : files }
    }

    /// --pictures, or its old spelling --save-inputs.
    var picturesDirectory: String? {
        get throws { try OldSpelling.resolve(pictures, oldPictures, now: "--pictures", was: "--save-inputs") }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            let saved = try SavedModel.load(path: try model, normalization: normalize)
            let saveInputs = try picturesDirectory
            let (rows, columns) = saved.model.imageSize
            for input in try inputs {
                let (pixels, count, names) = try images(from: input, rows: rows, columns: columns, saveInputs: saveInputs)
                let logProbabilities = saved.logProbabilities(of: pixels, count: count, rows: rows, columns: columns)
                for (index, (name, scores)) in zip(names, logProbabilities).enumerated() {
                    let digit = scores.indices.max { scores[$0] < scores[$1] }!
                    if json {
                        // Floats printed in full (9 significant digits): the values read back are the model's.
                        let values = scores.map { String(format: "%.9g", $0) }.joined(separator: ", ")
                        console.report("{\"input\": \(Support.json(input)), \"index\": \(index), \"class\": \(digit), "
                                       + "\"log_probabilities\": [\(values)]}")
                    } else {
                        console.report(String(format: "%@: %d (p = %.3f)", name, digit, exp(scores[digit])))
                    }
                }
            }
        }
    }

    /// The images of one input as MNIST-style bytes, their count, and a name for each (with what was done to a
    /// picture).
    func images(from path: String, rows: Int, columns: Int, saveInputs: String?) throws -> ([UInt8], Int, [String]) {
        guard isIDX(path) else {
            let image: GrayImage
            do { image = try GrayImage.read(path: path) } catch { throw RunError(error) }
            let (pixels, note): ([UInt8], String)
            do {
                (pixels, note) = try DigitPreparation.prepare(image, name: path, preprocess: preprocess, invert: invert,
                                                              size: (rows, columns))
            } catch {
                throw RunError(error)
            }
            if let saveInputs {
                var canvas = Canvas(width: columns, height: rows, background: .black)
                for (i, value) in pixels.enumerated() { canvas.set(i % columns, i / columns, .gray(Double(value) / 255)) }
                let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent + ".png"
                do {
                    try FileManager.default.createDirectory(atPath: saveInputs, withIntermediateDirectories: true)
                    try canvas.writePNG(to: "\(saveInputs)/\(name)")
                } catch {
                    throw RunError(.cannotWrite, "--pictures \(saveInputs): \(error)")
                }
            }
            return (pixels, 1, ["\(path)  [\(note)]"])
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

    /// Whether a file is IDX (raw, magic 00 00 08 xx, or gzip-compressed) rather than a picture.
    func isIDX(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 3) else { return true }
        try? handle.close()
        let bytes = [UInt8](head)
        return bytes.starts(with: [0x1F, 0x8B]) || bytes.starts(with: [0x00, 0x00, 0x08])
    }
}

extension DigitPreparation.Preprocessing: ExpressibleByArgument {}
extension DigitPreparation.Inversion: ExpressibleByArgument {}
