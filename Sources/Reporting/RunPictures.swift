// The pictures of a training run (--plots DIR, and TensorBoard's Images tab): accuracy and loss per epoch, test
// digits with their predicted labels, the first layer's filters, one digit's feature maps, and the confusion matrix.
import Autodiff
import Checkpoints
import Foundation
import MNISTData
import NN
import Pictures
import Support

public enum RunPictures {
    /// Writes `pictures` into `directory` (created if needed); returns the files written.
    public static func write(_ pictures: [(name: String, canvas: Canvas)], to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try pictures.map { picture in
            let path = "\(directory)/\(picture.name)"
            try picture.canvas.writePNG(to: path)
            return path
        }
    }

    /// Draws every picture, each with its file name.
    /// - Parameter test: the test set and the pixel scaling the model takes.
    public static func render(model: Model, store: ParameterStore, test set: (Dataset, scaling: PixelScaling),
                              history: [EpochRecord], confusion: [[Int]]) -> [(name: String, canvas: Canvas)] {
        let (test, scaling) = set
        var pictures: [(name: String, canvas: Canvas)] = []
        func save(_ canvas: Canvas, _ name: String) { pictures.append((name, canvas)) }
        let epochs = history.map { Double($0.epoch) }
        save(Plots.lineChart(title: "Accuracy per epoch", xLabel: "epoch", yLabel: "accuracy", series: [
            .init(name: "train", color: .blue, points: Array(zip(epochs, history.map(\.trainAccuracy)))),
            .init(name: "test", color: .orange, points: Array(zip(epochs, history.map(\.testAccuracy)))),
        ], integerX: true, legend: .bottomRight), "accuracy.png")
        save(Plots.lineChart(title: "Training loss per epoch", xLabel: "epoch", yLabel: "loss", series: [
            .init(name: "train loss", color: .blue, points: Array(zip(epochs, history.map(\.trainLoss)))),
        ], integerX: true), "loss.png")

        // The first 40 test digits with true and predicted labels.
        let shown = min(40, test.count)
        let tape = Tape(recording: false)
        let size = test.pixelsPerImage
        let labels = test.labels.prefix(shown)
        let logProbabilities = tape.value(at: store) { p in
            model.logProbabilities(tape.images(test.pixels.prefix(shown * size), count: shown, rows: test.rows,
                                               columns: test.columns, scaling: scaling), p)
        }
        let classes = logProbabilities.shape[1]
        let predictions = logProbabilities.withUnsafeBufferPointer { values in (0..<shown).map { argmax(values, row: $0, classes: classes) } }
        save(Plots.digitGrid(title: "Test digits: true label > predicted (mistakes in red)",
                                 images: (0..<shown).map { Array(test.pixels[($0 * size)..<(($0 + 1) * size)]) },
                                 rows: test.rows, columns: test.columns,
                                 captions: (0..<shown).map { ("\(labels[$0])>\(predictions[$0])", Int(labels[$0]) != predictions[$0]) }),
                 "predictions.png")

        // The first layer's weights, and (where it has spatial maps) its output for the first test digit.
        let weights = model.firstLayerWeights(store, limit: 32)
        save(Plots.mapGrid(title: weights.title, maps: weights.maps, width: weights.width, height: weights.height,
                               labels: weights.maps.indices.map(String.init), scale: max(3, 48 / max(weights.width, weights.height))),
                 "filters.png")
        let firstMaps = tape.value(at: store) { p in
            model.firstLayerMaps(tape.images(test.pixels.prefix(size), count: 1, rows: test.rows, columns: test.columns,
                                             scaling: scaling), p)
        }
        if let maps = firstMaps {
            let (count, side) = (min(32, maps.shape[1]), maps.shape[2] * maps.shape[3])
            let values = maps.scalars.map(Double.init)
            save(Plots.mapGrid(title: "First-layer feature maps (after relu) of a test digit labelled \(test.labels[0])",
                                   maps: (0..<count).map { Array(values[($0 * side)..<(($0 + 1) * side)]) },
                                   width: maps.shape[3], height: maps.shape[2], labels: (0..<count).map(String.init), scale: 3,
                                   signed: false),
                     "feature-maps.png")
        }
        if !confusion.isEmpty {
            save(Plots.confusionMatrix(confusion, title: "Confusion matrix, test set"),
                     "confusion.png")
        }
        return pictures
    }
}
