// Pictures: what the canvas writes reads back as written, and a picture of a digit is prepared as MNIST's were.
import Foundation
import Pictures
import Support
import Testing
import TestSupport

@Suite("Pictures", .limit(minutes: 1))
struct PicturesTests {
    @Test("a grey canvas written as PNG reads back pixel for pixel")
    func pngRoundTrip() throws {
        let directory = Fixtures.makeTemporaryDirectory("png")
        defer { Fixtures.removeTemporary(directory) }
        var canvas = Canvas(width: 7, height: 5, background: .black)
        for y in 0..<5 { for x in 0..<7 { canvas.set(x, y, .gray(Double((x * 37 + y * 11) % 256) / 255)) } }
        let path = directory.appendingPathComponent("grey.png").path
        try canvas.writePNG(to: path)
        let image = try GrayImage.read(path: path)
        #expect(image.width == 7 && image.height == 5)
        let expected: [UInt8] = (0..<35).map { (index: Int) -> UInt8 in
            let (x, y) = (index % 7, index / 7)
            return UInt8((x * 37 + y * 11) % 256)
        }
        #expect(image.pixels == expected)
    }

    @Test("a 28x28 digit light on dark is taken as it is; dark on light is inverted, cropped and centred")
    func preparation() throws {
        var pixels = [UInt8](repeating: 0, count: 28 * 28)
        for y in 6..<22 { for x in 12..<16 { pixels[y * 28 + x] = 255 } }
        let mnist = GrayImage(width: 28, height: 28, pixels: pixels)
        let (same, note) = try DigitPreparation.prepare(mnist, name: "a", size: (28, 28))
        #expect(same == pixels && note == "28x28, as it is")
        // The same stroke, dark on white, twice the size and off centre.
        var large = [UInt8](repeating: 255, count: 56 * 56)
        for y in 4..<36 { for x in 2..<10 { large[y * 56 + x] = 0 } }
        let (prepared, described) = try DigitPreparation.prepare(GrayImage(width: 56, height: 56, pixels: large), name: "b",
                                                                 size: (28, 28))
        #expect(described.hasPrefix("56x56, inverted, ink 8x32 at (2, 4) fitted to 20x20"), "\(described)")
        // Centred by centre of mass: the ink's columns are balanced around column 14, its rows around row 14.
        let ink = prepared.enumerated().filter { $0.element > 0 }
        let meanX = Double(ink.reduce(0) { $0 + $1.offset % 28 }) / Double(ink.count)
        let meanY = Double(ink.reduce(0) { $0 + $1.offset / 28 }) / Double(ink.count)
        #expect(abs(meanX - 13.5) <= 1 && abs(meanY - 13.5) <= 1, "centre of mass (\(meanX), \(meanY))")
    }

    @Test("with --preprocess none a picture of the wrong size is a file error naming it")
    func wrongSize() {
        let error = #expect(throws: FileError.self) {
            try DigitPreparation.prepare(GrayImage(width: 30, height: 28, pixels: [UInt8](repeating: 0, count: 840)), name: "c.png",
                                         preprocess: .none, size: (28, 28))
        }
        #expect(error?.description == "c.png: the picture is 30x28; with --preprocess none the model takes 28x28")
    }
}
