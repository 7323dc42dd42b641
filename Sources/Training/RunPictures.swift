// The pictures of a training run (--plots DIR): accuracy and loss per epoch, test digits with their predicted
// labels, the first layer's filters, one digit's feature maps, and the confusion matrix.
import Autodiff
import Foundation
import MNISTData
import NN
import Pictures

enum RunPictures {
    /// Writes every picture into `directory` (created if needed); returns the files written.
    static func write(to directory: String, model: Model, store: ParameterStore, test: Dataset, scaling: PixelScaling,
                      history: [EpochRecord], confusion: [[Int]]) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        func save(_ canvas: Canvas, _ name: String) throws {
            let path = "\(directory)/\(name)"
            try canvas.writePNG(to: path)
            written.append(path)
        }
        let epochs = history.map { Double($0.epoch) }
        try save(Plots.lineChart(title: "Accuracy per epoch", xLabel: "epoch", yLabel: "accuracy", series: [
            .init(name: "train", color: .blue, points: Array(zip(epochs, history.map(\.trainAccuracy)))),
            .init(name: "test", color: .orange, points: Array(zip(epochs, history.map(\.testAccuracy)))),
        ], integerX: true, legend: .bottomRight), "accuracy.png")
        try save(Plots.lineChart(title: "Training loss per epoch", xLabel: "epoch", yLabel: "loss", series: [
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
        try save(Plots.digitGrid(title: "Test digits: true label > predicted (mistakes in red)",
                                 images: (0..<shown).map { Array(test.pixels[($0 * size)..<(($0 + 1) * size)]) },
                                 rows: test.rows, columns: test.columns,
                                 captions: (0..<shown).map { ("\(labels[$0])>\(predictions[$0])", Int(labels[$0]) != predictions[$0]) }),
                 "predictions.png")

        // The first layer's weights, and (where it has spatial maps) its output for the first test digit.
        let weights = model.firstLayerWeights(store, limit: 32)
        try save(Plots.mapGrid(title: weights.title, maps: weights.maps, width: weights.width, height: weights.height,
                               labels: weights.maps.indices.map(String.init), scale: max(3, 48 / max(weights.width, weights.height))),
                 "filters.png")
        let firstMaps = tape.value(at: store) { p in
            model.firstLayerMaps(tape.images(test.pixels.prefix(size), count: 1, rows: test.rows, columns: test.columns,
                                             scaling: scaling), p)
        }
        if let maps = firstMaps {
            let (count, side) = (min(32, maps.shape[1]), maps.shape[2] * maps.shape[3])
            let values = maps.scalars.map(Double.init)
            try save(Plots.mapGrid(title: "First-layer feature maps (after relu) of a test digit labelled \(test.labels[0])",
                                   maps: (0..<count).map { Array(values[($0 * side)..<(($0 + 1) * side)]) },
                                   width: maps.shape[3], height: maps.shape[2], labels: (0..<count).map(String.init), scale: 3,
                                   signed: false),
                     "feature-maps.png")
        }
        if !confusion.isEmpty {
            try save(Plots.confusionMatrix(confusion, title: "Confusion matrix, test set"),
                     "confusion.png")
        }
        return written
    }
}
