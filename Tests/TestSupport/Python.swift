// Other tools' own readers, run in the tests' Python environment (scripts/python-env.sh, which scripts/test.sh runs):
// TensorBoard's event reader, Pillow, onnx, onnxruntime, safetensors and PyTorch. The scripts are in Tests/Readers.
import Foundation

public enum Python {
    /// The environment's interpreter: MNIST_DIST_PYTHON, else .venv-tests in the checkout.
    public static var interpreter: String {
        ProcessInfo.processInfo.environment["MNIST_DIST_PYTHON"]
            ?? Fixtures.packageRoot.appendingPathComponent(".venv-tests/bin/python").path
    }

    /// A script in Tests/Readers.
    public static func script(_ name: String) -> String {
        Fixtures.packageRoot.appendingPathComponent("Tests/Readers").appendingPathComponent(name).path
    }

    /// Runs `script` with `arguments`; returns its exit status and standard output (standard error joins the
    /// output when it fails, so a test's message shows the traceback).
    public static func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: interpreter) else {
            throw PythonMissing(interpreter: interpreter)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = [Python.script(script)] + arguments
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("python-\(UUID().uuidString).out")
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("python-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        return (process.terminationStatus, process.terminationStatus == 0 ? stdout : stdout + stderr)
    }
}

public struct PythonMissing: Error, CustomStringConvertible {
    public let interpreter: String
    public var description: String {
        "\(interpreter) is missing: run scripts/python-env.sh (scripts/test.sh does), or set MNIST_DIST_PYTHON"
    }
}
