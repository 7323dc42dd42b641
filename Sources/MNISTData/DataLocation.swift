// Where a dataset's files are found when the command line does not say.
import Foundation
import Support

public enum DataLocation {
    /// The directory to read `dataset` from:
    ///  1. `explicit` (--data-dir), as given;
    ///  2. `$MNIST_DATA_DIR` for MNIST;
    ///  3. `data/<dataset>` under the current directory, if it exists;
    ///  4. `data/<dataset>` of the mnist-dist checkout the running binary was built in (so `mnist-dist` on the PATH
    ///     finds what scripts/setup.sh fetched, from any directory);
    ///  5. the system location (Fashion-MNIST from Debian's dataset-fashion-mnist package).
    /// - Throws: a `FileError` (missing) naming what was tried when none exists.
    public static func resolve(dataset: DatasetName, explicit: String?) throws(FileError) -> String {
        if let explicit { return explicit }
        var candidates: [String] = []
        if dataset == .mnist, let variable = ProcessInfo.processInfo.environment["MNIST_DATA_DIR"] { candidates.append(variable) }
        candidates.append(FileManager.default.currentDirectoryPath + "/data/\(dataset)")
        if let checkout = checkoutDirectory() { candidates.append("\(checkout)/data/\(dataset)") }
        if let system = systemDirectory(for: dataset) { candidates.append(system) }
        for candidate in candidates where DatasetFiles.locate(DatasetName.testImages, in: candidate) != nil {
            return candidate
        }
        let hint = dataset == .mnist
            ? "run scripts/fetch-mnist.sh (MNIST_MIRROR=DIR copies from a local mirror), or name a directory with --data-dir"
            : "install Debian's dataset-fashion-mnist package, or name a directory with --data-dir"
        throw FileError(file: "--data-dir", problem: "no \(dataset) data found (looked in \(candidates.joined(separator: ", "))): \(hint)",
                        kind: .missing)
    }

    /// The chapter's toy files (data/toy): under the current directory, or in the checkout the binary was built in.
    public static func toyDirectory(explicit: String?) throws(FileError) -> String {
        if let explicit { return explicit }
        var candidates = [FileManager.default.currentDirectoryPath + "/data/toy"]
        if let checkout = checkoutDirectory() { candidates.append("\(checkout)/data/toy") }
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate + "/img-x.tsv") { return candidate }
        throw FileError(file: "--data-dir", problem: "the toy data (img-x.tsv, img-filter.tsv) is not in "
                        + "\(candidates.joined(separator: " or ")); name its directory with --data-dir", kind: .missing)
    }

    /// Where a dataset's files are looked for when no directory is named: Fashion-MNIST in Debian's package.
    public static func systemDirectory(for dataset: DatasetName) -> String? {
        dataset == .fashionMNIST ? "/usr/share/datasets/fashion-mnist" : nil
    }

    /// The checkout the running executable was built in: the first directory above it holding Package.swift.
    public static func checkoutDirectory() -> String? {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
            url.deleteLastPathComponent()
        }
        return nil
    }
}
