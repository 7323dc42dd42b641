// A picture of a digit made into a model's input, the same way for `predict` and `serve`.
import Support

/// How a picture becomes a model's input, and what was done to it.
public enum DigitPreparation {
    /// How much of MNIST's preprocessing a picture gets.
    public enum Preprocessing: String, CaseIterable, Sendable {
        /// MNIST's preprocessing, except for a picture already in MNIST's form (the model's size, light on dark).
        case auto
        /// Always MNIST's preprocessing: ink found, fitted to 20x20, centred by its centre of mass.
        case mnist
        /// None: the picture must be the model's size; only the inversion applies.
        case none
    }

    /// Whether a picture is inverted (MNIST's digits are light on dark).
    public enum Inversion: String, CaseIterable, Sendable {
        /// When its border is light.
        case auto
        case yes
        case no
    }

    /// The picture as input bytes of the model's `size` (rows x columns), and a note of what was done to it. `name`
    /// is what an error calls the picture.
    public static func prepare(_ image: GrayImage, name: String, preprocess: Preprocessing = .auto, invert: Inversion = .auto,
                               size: (rows: Int, columns: Int)) throws(FileError) -> ([UInt8], String) {
        let (rows, columns) = size
        let size = "\(image.width)x\(image.height)"
        let flip: Bool? = invert == .auto ? nil : invert == .yes
        let alreadyMNIST = image.width == columns && image.height == rows && !(flip ?? DigitPreprocessing.hasLightBorder(image))
        if preprocess == .none || (preprocess == .auto && alreadyMNIST) {
            guard image.width == columns && image.height == rows else {
                throw FileError(file: name, problem: "the picture is \(size); with --preprocess none the model takes \(columns)x\(rows)")
            }
            let inverted = flip ?? DigitPreprocessing.hasLightBorder(image)
            return (inverted ? image.pixels.map { 255 - $0 } : image.pixels, "\(size), \(inverted ? "inverted" : "as it is")")
        }
        do {
            let result = try DigitPreprocessing.mnist(image, invert: flip, side: columns)
            let crop = result.crop
            return (result.pixels, "\(size)\(result.inverted ? ", inverted" : ""), ink \(crop.width)x\(crop.height) at "
                    + "(\(crop.x), \(crop.y)) fitted to 20x20 and centred")
        } catch {
            throw FileError(file: name, problem: "\(error)")
        }
    }
}
