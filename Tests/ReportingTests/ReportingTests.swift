// What a run shows: durations as the progress line prints them, and the pictures of a run.
import Autodiff
import Checkpoints
import Foundation
import MNISTData
import NN
import Reporting
import Support
import Testing
import TestSupport

@Suite("Reporting", .limit(minutes: 1))
struct ReportingTests {
    @Test("durations print as m:ss, or h:mm:ss from an hour; nothing finite prints as --:--")
    func durations() {
        #expect(formatDuration(0) == "0:00")
        #expect(formatDuration(75) == "1:15")
        #expect(formatDuration(4000) == "1:06:40")
        #expect(formatDuration(.nan) == "--:--" && formatDuration(-1) == "--:--")
    }

    @Test("a run's pictures: one PNG-ready canvas each, named as --pictures writes them")
    func runPictures() throws {
        let model = MLP(layerSizes: [16, 8, 10], imageSize: (4, 4))
        let store = model.makeParameterStore()
        model.initialize(store, seed: 0)
        let test = try Dataset(name: "synthetic", pixels: (0..<40 * 16).map { UInt8($0 % 256) }, labels: (0..<40).map { UInt8($0 % 10) },
                               rows: 4, columns: 4)
        let history = (1...3).map { EpochRecord(epoch: $0, trainLoss: 1 / Double($0), trainAccuracy: 0.5, testAccuracy: 0.4,
                                                seconds: 1, samplesPerSecond: 100, communicationShare: 0) }
        let confusion = (0..<10).map { row in (0..<10).map { row == $0 ? 4 : 0 } }
        let pictures = RunPictures.render(model: model, store: store, test: (test, scaling: .unit), history: history, confusion: confusion)
        // An MLP has no feature maps; a CNN's run adds feature-maps.png.
        #expect(pictures.map(\.name) == ["accuracy.png", "loss.png", "predictions.png", "filters.png", "confusion.png"])
        #expect(pictures.allSatisfy { $0.canvas.width >= 100 && $0.canvas.height >= 100 })
    }
}
