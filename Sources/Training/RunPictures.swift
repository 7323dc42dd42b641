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
        let order = (0..<Int32(shown)).map { $0 }
        var labels = [Int32](repeating: 0, count: shown)
        let logProbabilities = tape.value(at: store) { p in
            let images = tape.constant([shown, 1, test.rows, test.columns]) { buffer in
                order.withUnsafeBufferPointer { o in
                    labels.withUnsafeMutableBufferPointer { l in
                        test.fillBatch(order: o, range: 0..<shown, scaling: scaling, images: buffer.baseAddress!, labels: l.baseAddress!)
                    }
                }
            }
            return model.logProbabilities(images, p)
        }
        let predictions = logProbabilities.withUnsafeBufferPointer { values in (0..<shown).map { argmax(values, row: $0, classes: 10) } }
        let size = test.pixelsPerImage
        try save(Plots.digitGrid(title: "Test digits: true label > predicted (mistakes in red)",
                                 images: (0..<shown).map { Array(test.pixels[($0 * size)..<(($0 + 1) * size)]) },
                                 rows: test.rows, columns: test.columns,
                                 captions: (0..<shown).map { ("\(labels[$0])>\(predictions[$0])", Int(labels[$0]) != predictions[$0]) }),
                 "predictions.png")

        // First-layer filters, and (for the CNN) the first test digit's feature maps.
        if let cnn = model as? ChapterCNN {
            let weights = store["conv1.weight"].map(Double.init)
            try save(Plots.mapGrid(title: "conv1 filters (3x3; blue negative, red positive)",
                                   maps: (0..<32).map { Array(weights[($0 * 9)..<(($0 + 1) * 9)]) }, width: 3, height: 3,
                                   labels: (0..<32).map(String.init), scale: 16), "filters.png")
            let maps = tape.value(at: store) { p in
                let image = tape.constant([1, 1, test.rows, test.columns]) { buffer in
                    for i in 0..<size { buffer[i] = scaling.table[Int(test.pixels[i])] }
                }
                return cnn.conv1(image, p)
            }
            let values = maps.scalars.map(Double.init)
            let side = test.rows - 2
            try save(Plots.mapGrid(title: "conv1 feature maps (after relu) of a test digit labelled \(test.labels[0])",
                                   maps: (0..<32).map { Array(values[($0 * side * side)..<(($0 + 1) * side * side)]) },
                                   width: side, height: side, labels: (0..<32).map(String.init), scale: 3, signed: false),
                     "feature-maps.png")
        } else if let mlp = model as? MLP {
            // Each of the first 32 hidden units' input weights, as an image.
            let weights = store["W1"].map(Double.init), hidden = mlp.layerSizes[1]
            let units = min(32, hidden)
            try save(Plots.mapGrid(title: "First-layer weights of \(units) hidden units (blue negative, red positive)",
                                   maps: (0..<units).map { unit in (0..<size).map { weights[$0 * hidden + unit] } },
                                   width: test.columns, height: test.rows, labels: (0..<units).map(String.init), scale: 3),
                     "filters.png")
        }
        if !confusion.isEmpty {
            try save(Plots.confusionMatrix(confusion, title: "Confusion matrix, test set"),
                     "confusion.png")
        }
        return written
    }
}
