// Where tests find the project, its reference values and the MNIST files.
//
// The numpy and PyTorch reference values live in Tests/References, written by the generator scripts beside them,
// so a fresh clone runs every test. MNIST comes from data/mnist (scripts/fetch-mnist.sh), MNIST_DIR, or the shared
// folder's local mirror (`../shared` beside the checkout, or MNIST_DIST_SHARED); with MNIST_DIST_REQUIRE_SHARED=1
// (set by CI) a missing MNIST fails the tests instead of disabling them: CI must never pass by skipping.
import Foundation

public enum Fixtures {
    /// The package root (the folder holding Package.swift).
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Fixtures: no Package.swift above \(#filePath)")
    }()

    /// The shared folder, if present (only its MNIST mirror is used).
    public static let sharedDirectory: URL? = {
        let environment = ProcessInfo.processInfo.environment
        let candidate = environment["MNIST_DIST_SHARED"].map { URL(fileURLWithPath: $0) }
            ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
        return FileManager.default.fileExists(atPath: candidate.appendingPathComponent("data/mnist").path)
            ? candidate : nil
    }()

    /// A reference file in Tests/References (see its README for the generators).
    public static func reference(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/References").appendingPathComponent(name)
    }

    /// A directory holding at least the MNIST t10k files: MNIST_DIR, the project's data/mnist, or the shared mirror.
    public static let mnistDirectory: String? = {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let explicit = environment["MNIST_DIR"] { candidates.append(explicit) }
        candidates.append(packageRoot.appendingPathComponent("data/mnist").path)
        if let shared = sharedDirectory { candidates.append(shared.appendingPathComponent("data/mnist").path) }
        return candidates.first {
            FileManager.default.fileExists(atPath: "\($0)/t10k-images-idx3-ubyte.gz")
                || FileManager.default.fileExists(atPath: "\($0)/t10k-images-idx3-ubyte")
        }
    }()

    /// True when the MNIST t10k files can be found (or CI demands them).
    public static var mnistAvailable: Bool {
        mnistDirectory != nil || ProcessInfo.processInfo.environment["MNIST_DIST_REQUIRE_SHARED"] == "1"
    }

    /// A new empty temporary directory, removed by the caller with `removeTemporary`.
    public static func makeTemporaryDirectory(_ label: String = "test") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("mnist-dist-\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    public static func removeTemporary(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
    }
}
