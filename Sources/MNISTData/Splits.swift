// Named datasets in a directory, and the two train/test splits: the chapter's and the standard one.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Support

/// The datasets mnist-dist knows by name; all use MNIST's four-file IDX layout.
public enum DatasetName: String, CaseIterable, Sendable, CustomStringConvertible {
    case mnist
    case fashionMNIST = "fashion-mnist"

    public var description: String { rawValue }

    /// The standard file names, without `.gz`.
    public static let trainImages = "train-images-idx3-ubyte"
    public static let trainLabels = "train-labels-idx1-ubyte"
    public static let testImages = "t10k-images-idx3-ubyte"
    public static let testLabels = "t10k-labels-idx1-ubyte"
}

/// How the data is divided into training and test sets.
public enum SplitKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The chapter's: `RandomState(0).permutation(n)` of the t10k file, the first 80 % to train, the rest to test.
    case chapter
    /// The train files to train, the t10k files to test (60,000 / 10,000 for MNIST).
    case standard

    public var description: String { rawValue }
}

/// A training set and a test set.
public struct DataSplit: Sendable {
    public let kind: SplitKind
    public let train: Dataset
    public let test: Dataset
    /// For the chapter split, the generator that drew the split, left where the chapter's code continues with it
    /// (its MLP data stream calls `permutation(8000)` on it every epoch).
    public let chapterGenerator: RandomState?

    public init(kind: SplitKind, train: Dataset, test: Dataset, chapterGenerator: RandomState?) {
        self.kind = kind
        self.train = train
        self.test = test
        self.chapterGenerator = chapterGenerator
    }
}

public enum DatasetFiles {
    /// The path of `baseName` in `directory`: the `.gz` file if present, else the raw IDX file, else nil.
    public static func locate(_ baseName: String, in directory: String) -> String? {
        for candidate in ["\(directory)/\(baseName).gz", "\(directory)/\(baseName)"] where fileExists(candidate) {
            return candidate
        }
        return nil
    }

    /// The split used when none is asked for: standard when the train files are present, else the chapter's.
    public static func defaultSplit(in directory: String) -> SplitKind {
        locate(DatasetName.trainImages, in: directory) != nil && locate(DatasetName.trainLabels, in: directory) != nil
            ? .standard : .chapter
    }

    /// Loads `dataset` from `directory` and splits it.
    /// - Parameters:
    ///   - split: the split to use, or nil for `defaultSplit(in:)`.
    /// - Throws: `FileError` naming the missing or malformed file, with what to do about a missing one.
    public static func load(_ dataset: DatasetName, directory: String, split: SplitKind?) throws(FileError) -> DataSplit {
        let kind = split ?? defaultSplit(in: directory)
        let testImages = try requireFile(DatasetName.testImages, in: directory, for: kind)
        let testLabels = try requireFile(DatasetName.testLabels, in: directory, for: kind)
        let test = try Dataset.load(name: "\(dataset) t10k", imagesPath: testImages, labelsPath: testLabels)
        switch kind {
        case .standard:
            let trainImages = try requireFile(DatasetName.trainImages, in: directory, for: kind)
            let trainLabels = try requireFile(DatasetName.trainLabels, in: directory, for: kind)
            let train = try Dataset.load(name: "\(dataset) train", imagesPath: trainImages, labelsPath: trainLabels)
            guard train.rows == test.rows && train.columns == test.columns else {
                throw FileError(file: trainImages, problem: "images are \(train.rows)x\(train.columns) but the test "
                                    + "images are \(test.rows)x\(test.columns)")
            }
            return DataSplit(kind: .standard, train: train, test: test, chapterGenerator: nil)
        case .chapter:
            var generator = RandomState(seed: 0)
            let permutation = generator.permutation(test.count)
            let trainCount = test.count * 4 / 5
            let train = test.subset(permutation[..<trainCount], name: "\(dataset) chapter train")
            let held = test.subset(permutation[trainCount...], name: "\(dataset) chapter test")
            return DataSplit(kind: .chapter, train: train, test: held, chapterGenerator: generator)
        }
    }

    private static func requireFile(_ baseName: String, in directory: String, for kind: SplitKind) throws(FileError) -> String {
        if let path = locate(baseName, in: directory) { return path }
        let hint = kind == .standard && baseName.hasPrefix("train")
            ? "the standard split needs the train files; fetch them (scripts/fetch-mnist.sh) or use --split chapter"
            : "fetch the data with scripts/fetch-mnist.sh (MNIST_MIRROR=DIR to copy from a local mirror), "
                + "or name the directory with --data-dir"
        throw FileError(file: "\(directory)/\(baseName).gz", problem: "missing (\(hint))", kind: .missing)
    }
}

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR
}
