// Turning any picture of a digit into what an MNIST model was trained on, by MNIST's own recipe (LeCun, Cortes and
// Burges: each digit was size-normalised to fit a 20x20 box keeping its aspect ratio, anti-aliased, then centred in
// a 28x28 field by its centre of mass):
//
//   grey -> light ink on a dark field (inverted when the border is light: dark ink on paper) -> the background
//   (the border's median) subtracted and the contrast stretched, faint specks cleared -> cropped to the ink ->
//   scaled to fit 20x20 (area-averaged when shrinking, bilinear when enlarging) -> placed in 28x28 with its centre
//   of mass at the centre (moved only as far as keeps the whole digit in the field).
import Support

public enum DigitPreprocessing {
    /// What was done to one picture, for the user and the tests.
    public struct Result: Equatable {
        /// The side x side picture the model sees: 0 background, 255 full ink.
        public var pixels: [UInt8]
        public var inverted: Bool
        /// The ink's bounding box in the original picture.
        public var crop: Box
    }

    public struct Box: Equatable {
        public var x, y, width, height: Int
    }

    public struct NoDigit: Error, CustomStringConvertible {
        public let description: String
    }

    /// Whether the picture has a light border, i.e. dark ink on a light background (the median of its outer ring).
    public static func hasLightBorder(_ image: GrayImage) -> Bool {
        median(border(image).map(Double.init)) > 127
    }

    /// MNIST's preprocessing of `image`. `invert` nil: decided by the border.
    public static func mnist(_ image: GrayImage, invert: Bool? = nil, side: Int = 28, box: Int = 20) throws(NoDigit) -> Result {
        let flip = invert ?? hasLightBorder(image)
        let ink = image.pixels.map { Double(flip ? 255 - $0 : $0) }
        // Background and contrast: the border's median is the field; the brightest ink becomes 255.
        let background = median(border(image).map { Double(flip ? 255 - $0 : $0) })
        let peak = ink.max() ?? 0
        guard peak - background >= 32 else {
            throw NoDigit(description: "no digit found: the picture is nearly uniform (contrast \(Int(peak - background)) of 255)")
        }
        let stretched = ink.map { value -> Double in
            let v = (value - background) / (peak - background)
            return v < 0.1 ? 0 : min(1, v)
        }
        // The ink's bounding box (pixels at least 20 % of full ink).
        var (x0, y0, x1, y1) = (image.width, image.height, -1, -1)
        for y in 0..<image.height {
            for x in 0..<image.width where stretched[y * image.width + x] >= 0.2 {
                (x0, y0, x1, y1) = (min(x0, x), min(y0, y), max(x1, x), max(y1, y))
            }
        }
        let (width, height) = (x1 - x0 + 1, y1 - y0 + 1)
        let cropped = (0..<(width * height)).map { stretched[(y0 + $0 / width) * image.width + x0 + $0 % width] }
        // Fit box x box, keeping the aspect ratio.
        let scale = Double(box) / Double(max(width, height))
        let (fitWidth, fitHeight) = (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
        let fitted = resample(cropped, width: width, height: height, toWidth: fitWidth, toHeight: fitHeight)
        // Centre of mass to the field's centre, clamped so that the whole digit stays inside.
        var (mass, cx, cy) = (0.0, 0.0, 0.0)
        for y in 0..<fitHeight {
            for x in 0..<fitWidth {
                let v = fitted[y * fitWidth + x]
                (mass, cx, cy) = (mass + v, cx + v * (Double(x) + 0.5), cy + v * (Double(y) + 0.5))
            }
        }
        let left = min(max(Int((Double(side) / 2 - cx / mass).rounded()), 0), side - fitWidth)
        let top = min(max(Int((Double(side) / 2 - cy / mass).rounded()), 0), side - fitHeight)
        var pixels = [UInt8](repeating: 0, count: side * side)
        for y in 0..<fitHeight {
            for x in 0..<fitWidth {
                pixels[(top + y) * side + left + x] = UInt8((min(1, max(0, fitted[y * fitWidth + x])) * 255).rounded())
            }
        }
        return Result(pixels: pixels, inverted: flip, crop: Box(x: x0, y: y0, width: width, height: height))
    }

    /// The outer ring of pixels.
    static func border(_ image: GrayImage) -> [UInt8] {
        let (w, h) = (image.width, image.height)
        var ring = (0..<w).flatMap { [image.pixels[$0], image.pixels[(h - 1) * w + $0]] }
        if h > 2 { ring += (1..<(h - 1)).flatMap { [image.pixels[$0 * w], image.pixels[$0 * w + w - 1]] } }
        return ring
    }

    /// `values` (width x height) resampled to a new size, one axis after the other.
    static func resample(_ values: [Double], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [Double] {
        let columns = weights(from: width, to: toWidth), rows = weights(from: height, to: toHeight)
        var across = [Double](repeating: 0, count: toWidth * height)
        for y in 0..<height {
            for (x, taps) in columns.enumerated() {
                across[y * toWidth + x] = taps.reduce(0) { $0 + $1.weight * values[y * width + $1.index] }
            }
        }
        var result = [Double](repeating: 0, count: toWidth * toHeight)
        for (y, taps) in rows.enumerated() {
            for x in 0..<toWidth {
                result[y * toWidth + x] = taps.reduce(0) { $0 + $1.weight * across[$1.index * toWidth + x] }
            }
        }
        return result
    }

    /// For each of `m` output samples, the input samples it takes and their weights (summing to 1): the area each
    /// input pixel covers of the output pixel when shrinking, linear interpolation between pixel centres when
    /// enlarging.
    static func weights(from n: Int, to m: Int) -> [[(index: Int, weight: Double)]] {
        let ratio = Double(n) / Double(m)
        return (0..<m).map { o in
            if m <= n {
                let (start, end) = (Double(o) * ratio, Double(o + 1) * ratio)
                return (Int(start)..<min(n, Int(end.rounded(.up)))).compactMap { i -> (Int, Double)? in
                    let covered = min(end, Double(i + 1)) - max(start, Double(i))
                    return covered > 0 ? (i, covered / ratio) : nil
                }
            }
            let position = min(max((Double(o) + 0.5) * ratio - 0.5, 0), Double(n - 1))
            let i = Int(position), fraction = position - Double(i)
            return i + 1 < n && fraction > 0 ? [(i, 1 - fraction), (i + 1, fraction)] : [(i, 1)]
        }
    }
}
