// A labelled image dataset kept as bytes, and the conversion of one batch at a time to Float.
//
// Images stay UInt8 in memory (60,000 MNIST images take 47 MB rather than 188 MB as Float); a batch is converted
// through a 256-entry lookup table into a caller-owned buffer, so the training step allocates nothing.
import Support

/// Labelled grayscale images, stored row-major as bytes.
public struct Dataset: Sendable {
    /// A short name for messages ("mnist train", "fashion-mnist test").
    public let name: String
    /// Pixels, image after image (count, rows, columns).
    public let pixels: [UInt8]
    /// One class label 0...9 per image.
    public let labels: [UInt8]
    public let rows: Int
    public let columns: Int

    /// Number of classes every dataset here has.
    public static let classCount = 10

    public var count: Int { labels.count }
    public var pixelsPerImage: Int { rows * columns }

    /// Builds a dataset, checking that pixels, labels and sizes agree and that every label is a class 0...9.
    /// - Throws: `FileError` naming `labelFile` or `name` and the problem.
    public init(name: String, pixels: [UInt8], labels: [UInt8], rows: Int, columns: Int,
                labelFile: String? = nil) throws(FileError) {
        guard rows > 0, columns > 0 else {
            throw FileError(file: name, problem: "images have an empty size \(rows)x\(columns)")
        }
        guard pixels.count == labels.count * rows * columns else {
            throw FileError(file: name,
                            problem: "holds \(pixels.count / (rows * columns)) images but \(labels.count) labels")
        }
        if let bad = labels.firstIndex(where: { $0 >= Self.classCount }) {
            throw FileError(file: labelFile ?? name,
                            problem: "label \(labels[bad]) at index \(bad) is not a digit class 0-9")
        }
        self.name = name
        self.pixels = pixels
        self.labels = labels
        self.rows = rows
        self.columns = columns
    }

    /// Reads a dataset from an IDX image file and an IDX label file (each raw or gzip).
    public static func load(name: String, imagesPath: String, labelsPath: String) throws(FileError) -> Dataset {
        let images = try IDX.read(path: imagesPath, kind: .images)
        let labels = try IDX.read(path: labelsPath, kind: .labels)
        if images.dimensions[0] != labels.dimensions[0] {
            throw FileError(file: imagesPath, problem: "holds \(images.dimensions[0]) images but \(labelsPath) "
                                + "holds \(labels.dimensions[0]) labels")
        }
        return try Dataset(name: name, pixels: images.bytes, labels: labels.bytes, rows: images.dimensions[1],
                           columns: images.dimensions[2], labelFile: labelsPath)
    }

    /// The images at `indices`, in that order.
    public func subset(_ indices: some Collection<Int32>, name: String) -> Dataset {
        let size = pixelsPerImage
        var newPixels = [UInt8](repeating: 0, count: indices.count * size)
        var newLabels = [UInt8](repeating: 0, count: indices.count)
        pixels.withUnsafeBufferPointer { source in
            newPixels.withUnsafeMutableBufferPointer { target in
                for (row, index) in indices.enumerated() {
                    let from = Int(index)
                    require(from >= 0 && from < count, "Dataset.subset: index \(from) outside 0..<\(count)")
                    target.baseAddress!.advanced(by: row * size)
                        .update(from: source.baseAddress!.advanced(by: from * size), count: size)
                    newLabels[row] = labels[from]
                }
            }
        }
        // Sizes and labels were validated when self was built.
        return try! Dataset(name: name, pixels: newPixels, labels: newLabels, rows: rows, columns: columns)
    }

    /// Converts the images at `order[range]` to Float with `scaling`, writing them one after another into `images`
    /// (`range.count` x rows x columns) and their labels into `labels`.
    public func fillBatch(order: UnsafeBufferPointer<Int32>, range: Range<Int>, scaling: PixelScaling,
                          images: UnsafeMutablePointer<Float>, labels batchLabels: UnsafeMutablePointer<Int32>) {
        let size = pixelsPerImage
        scaling.table.withUnsafeBufferPointer { table in
            pixels.withUnsafeBufferPointer { source in
                for (row, position) in range.enumerated() {
                    let index = Int(order[position])
                    let from = source.baseAddress! + index * size
                    let to = images + row * size
                    for pixel in 0..<size { to[pixel] = table[Int(from[pixel])] }
                    batchLabels[row] = Int32(labels[index])
                }
            }
        }
    }
}

/// How bytes 0...255 become network inputs.
public struct PixelScaling: Equatable, Sendable, CustomStringConvertible {
    /// Mean and standard deviation subtracted and divided after scaling to [0, 1], or nil for plain /255.
    public let standardization: (mean: Float, std: Float)?
    /// The Float value of each byte.
    public let table: [Float]

    /// Inputs in [0, 1]: byte / 255 (computed in Float, as numpy does `uint8.astype(float32) / 255.0`).
    public static let unit = PixelScaling(standardization: nil)
    /// The usual MNIST standardisation: (byte / 255 - 0.1307) / 0.3081, as pytorch/examples does.
    public static let mnistStandard = PixelScaling(standardization: (0.1307, 0.3081))

    public init(standardization: (mean: Float, std: Float)?) {
        self.standardization = standardization
        table = (0...255).map { byte in
            let unit = Float(byte) / 255
            guard let (mean, std) = standardization else { return unit }
            return (unit - mean) / std
        }
    }

    public static func == (a: PixelScaling, b: PixelScaling) -> Bool { a.table == b.table }

    public var description: String {
        guard let (mean, std) = standardization else { return "x/255" }
        return "(x/255 - \(mean))/\(std)"
    }
}
