// The server in this process: a small model behind HTTP on a free port, asked for its health, a prediction from JSON
// pixels, and the refusals, then stopped by cancelling its task.
import Checkpoints
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Serving
import Support
import Testing
import TestSupport

@Suite("The digit server", .limit(minutes: 2))
struct DigitServerTests {
    /// A small MLP written as a checkpoint and read back, as `serve` reads its model.
    static func model(in directory: URL) throws -> SavedModel {
        var configuration = TrainingConfiguration()
        configuration.model = .mlp
        configuration.hiddenSizes = [16]
        let model = configuration.makeModel()
        let store = model.makeParameterStore()
        model.initialize(store, seed: 3)
        var settings = Dictionary(uniqueKeysWithValues: configuration.settings.map { ($0.key.rawValue, $0.value) })
        settings[SettingKey.architecture.rawValue] = model.architecture
        let path = directory.appendingPathComponent("small.ckpt").path
        try Checkpoint(settings: settings, position: RunPosition(), parameters: store.flatValues, optimizerState: []).write(to: path)
        return try SavedModel.load(path: path)
    }

    /// Status, headers and body of one request.
    static func ask(_ url: URL, method: String = "GET", type: String? = nil, body: Data? = nil) async throws
        -> (status: Int, headers: [AnyHashable: Any], body: [String: Any]) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let type { request.setValue(type, forHTTPHeaderField: "Content-Type") }
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return (http.statusCode, http.allHeaderFields, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    @Test("health names the model's checksum; JSON pixels get the model's own class; the wrong method, type and size are refused; cancelling stops it")
    func serves() async throws {
        let directory = Fixtures.makeTemporaryDirectory("serving")
        defer { Fixtures.removeTemporary(directory) }
        let saved = try Self.model(in: directory)
        var options = ServeOptions()
        options.port = 0
        options.maximumBodyBytes = 20_000
        let (addresses, ready) = AsyncStream.makeStream(of: String.self)
        let model = UncheckedSendable(saved)  // read-only while the server runs
        let server = Task { try await DigitServer.run(model.value, options: options) { ready.yield($0) } }
        var iterator = addresses.makeAsyncIterator()
        let address = try #require(await iterator.next())
        let base = try #require(URL(string: "http://" + address.split(separator: "/").last!))

        let health = try await Self.ask(base.appendingPathComponent("health"))
        #expect(health.status == 200 && health.body["parameter_checksum"] as? String == saved.parameterChecksumHex)

        // A 28x28 light stroke on black is MNIST's form: the server takes it as it is, as predict does.
        var pixels = [UInt8](repeating: 0, count: 784)
        for y in 6..<22 { for x in 13..<16 { pixels[y * 28 + x] = 255 } }
        let expected = saved.logProbabilities(of: pixels, count: 1, rows: 28, columns: 28)[0]
        let body = try JSONSerialization.data(withJSONObject: ["width": 28, "height": 28, "pixels": pixels.map(Int.init)])
        let answer = try await Self.ask(base.appendingPathComponent("predict"), method: "POST", type: "application/json", body: body)
        #expect(answer.status == 200, "\(answer.body)")
        #expect(answer.body["class"] as? Int == expected.indices.max { expected[$0] < expected[$1] })

        let wrongMethod = try await Self.ask(base.appendingPathComponent("predict"))
        #expect(wrongMethod.status == 405)
        let wrongType = try await Self.ask(base.appendingPathComponent("predict"), method: "POST", type: "text/plain", body: Data("7".utf8))
        #expect(wrongType.status == 415 && (wrongType.body["error"] as? String)?.contains("text/plain") == true)
        let tooLarge = try await Self.ask(base.appendingPathComponent("predict"), method: "POST", type: "image/png",
                                          body: Data(count: 30_000))
        #expect(tooLarge.status == 413)

        server.cancel()
        _ = await server.result
        await #expect(throws: (any Error).self) { _ = try await Self.ask(base.appendingPathComponent("health")) }
    }
}
