// The chapter's small experiments as values: the toy CNN's probabilities and feature maps, the smoothing example,
// and the configurations of the two training experiments.
import Foundation
import Chapter
import Support
import Testing
import TestSupport

@Suite("The chapter's small experiments", .limit(minutes: 1))
struct ChapterTests {
    static var toyDirectory: String { Fixtures.packageRoot.appendingPathComponent("data/toy").path }

    @Test("the toy CNN gives the chapter's three probability vectors (numpy's float32 figures) to 1e-6")
    func toyProbabilities() throws {
        let (probabilities, maps) = try ToyExperiment(directory: Self.toyDirectory).run()
        let expected: [[Float]] = [[0.26163495, 0.26163495, 0.47673005], [0.5937724, 0.08035836, 0.32586923],
                                   [0.08035836, 0.5937724, 0.32586923]]
        for (row, values) in zip(probabilities, expected) {
            for (a, b) in zip(row, values) { #expect(abs(a - b) <= 1e-6, "\(row) against \(values)") }
        }
        #expect(maps.count == 6 && maps.allSatisfy { $0.count == 9 })
    }

    @Test("a feature map is the image correlated with the filter (no flip), 3x3 of a 5x5 image")
    func toyFeatureMaps() throws {
        let toy = try ToyExperiment(directory: Self.toyDirectory)
        let (_, maps) = toy.run()
        for image in 0..<3 {
            for filter in 0..<2 {
                for y in 0..<3 {
                    for x in 0..<3 {
                        var sum: Float = 0
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                sum += toy.images[image * 25 + (y + ky) * 5 + x + kx] * toy.filters[filter * 9 + ky * 3 + kx]
                            }
                        }
                        #expect(abs(maps[image * 2 + filter][y * 3 + x] - sum) <= 1e-6, "image \(image) filter \(filter) (\(x), \(y))")
                    }
                }
            }
        }
    }

    @Test("a toy directory without its files, or with a malformed one, is a file error naming the file")
    func toyFiles() throws {
        let directory = Fixtures.makeTemporaryDirectory("toy-files")
        defer { Fixtures.removeTemporary(directory) }
        let missing = #expect(throws: FileError.self) { try ToyExperiment(directory: directory.path) }
        #expect(missing?.kind == .missing && missing?.file.hasSuffix("img-x.tsv") == true)
        try "1\t2\n".write(to: directory.appendingPathComponent("img-x.tsv"), atomically: true, encoding: .utf8)
        let short = #expect(throws: FileError.self) { try ToyExperiment(directory: directory.path) }
        #expect(short?.kind == .malformed && short?.problem == "1 rows, expected 15")
    }

    @Test("smoothing: numpy's noise of 0.2, and the moving average of 10 is convolve(y, ones(10)/10, mode='same')")
    func smoothing() {
        let experiment = SmoothingExperiment(seed: 0)
        #expect(experiment.x.count == 500 && experiment.smoothed.count == 500)
        #expect(abs(experiment.errors.noisy - 0.2) < 0.02)
        #expect(experiment.errors.smoothed < experiment.errors.noisy / 2)
        // mode='same' keeps the middle 500 of the full convolution's 509: output i sums inputs i-5 ... i+4.
        for i in [0, 3, 250, 499] {
            let window = (i - 5...i + 4).filter { $0 >= 0 && $0 < 500 }
            let expected = window.reduce(0.0) { $0 + Double(Float(experiment.noisy[$1])) } / 10
            #expect(abs(experiment.smoothed[i] - expected) < 1e-6, "point \(i) (summed in Float)")
        }
    }
}
