// mnist-dist serve: a trained model behind HTTP (Hummingbird), with a page to draw digits on.
//
//   GET  /          the drawing page (Page.swift): no external scripts or fonts
//   GET  /health    {"status": "ok", "model": ..., "parameter_checksum": ...}
//   POST /predict   a PNG or JPEG body, or JSON {"width": W, "height": H, "pixels": [W x H bytes, 0 black]}; query
//                   preprocess=auto|mnist|none and invert=auto|yes|no as predict's options. Answers the class, the ten
//                   probabilities, what was done to the picture and the model's 28x28 input.
// Bad input gets a 4xx with {"error": "one line"} (400, 405, 408 for a body slower than the request timeout, 413,
// 415, 422); the server goes on serving.
import Checkpoints
import Foundation
import Hummingbird
import Logging
import Pictures
import Support
import Training

/// Where and how the server listens.
public struct ServeOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The largest request body accepted (413 beyond).
    public var maximumBodyBytes = 4 << 20
    /// Seconds a connection may stay silent before it is closed.
    public var idleTimeout = 10
    /// Seconds a request's body may take to arrive (408 beyond): a body trickling in is cut off too.
    public var requestTimeout = 20
    public init() {}
}

/// The model, shared by the requests served at once: each prediction runs on a tape of its own and only reads the
/// parameters.
final class Predictor: @unchecked Sendable {
    let saved: SavedModel
    let checksum: String
    init(_ saved: SavedModel) {
        self.saved = saved
        checksum = saved.parameterChecksumHex
    }
}

public enum DigitServer {
    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight and returns. `ready` is called with the
    /// address once the server listens.
    public static func run(_ saved: SavedModel, options: ServeOptions, ready: @escaping @Sendable (String) -> Void) async throws {
        let predictor = Predictor(saved)
        let router = Router()
        router.add(middleware: KeepAliveAnswer())
        router.get("/") { _, _ in
            response(.ok, type: "text/html; charset=utf-8", Page.html(model: predictor.saved.model.architecture, checksum: predictor.checksum))
        }
        router.get("/health") { _, _ in
            json(.ok, ["status": "ok", "model": predictor.saved.model.architecture, "parameter_checksum": predictor.checksum])
        }
        router.post("/predict") { request, _ in
            await predict(request, predictor: predictor, limit: options.maximumBodyBytes, timeout: options.requestTimeout)
        }
        for method in [HTTPRequest.Method.get, .put, .delete, .patch] {
            router.on("/predict", method: method) { _, _ in
                var answer = json(.methodNotAllowed, ["error": "/predict takes POST with a picture or JSON pixels"])
                answer.headers[.allow] = "POST"
                return answer
            }
        }
        var logger = Logger(label: "mnist-dist serve")
        logger.logLevel = .warning
        let app = Application(router: router, server: .http1(configuration: .init(idleTimeout: .seconds(Int64(options.idleTimeout)))),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "mnist-dist"),
                              onServerRunning: { channel in ready(channel.localAddress.map { "\($0)" } ?? "\(options.host):\(options.port)") },
                              logger: logger)
        try await app.runService()
    }

    /// One prediction, or the 4xx that says why there is none.
    static func predict(_ request: Request, predictor: Predictor, limit: Int, timeout: Int) async -> Response {
        let body: ByteBuffer
        do {
            body = try await collect(request, limit: limit, seconds: timeout)
        } catch BodyTimeout.late {
            return json(.requestTimeout, ["error": "the body did not arrive within \(timeout) s"])
        } catch {
            return json(.contentTooLarge, ["error": "the body is larger than \(limit) bytes"])
        }
        let bytes = Array(body.readableBytesView)
        let query = request.uri.queryParameters
        guard let preprocess = DigitPreparation.Preprocessing(rawValue: query["preprocess"].map(String.init) ?? "auto"),
              let invert = DigitPreparation.Inversion(rawValue: query["invert"].map(String.init) ?? "auto") else {
            return json(.badRequest, ["error": "preprocess is auto, mnist or none; invert is auto, yes or no"])
        }
        let image: GrayImage
        let type = request.headers[.contentType] ?? ""
        do {
            if type.hasPrefix("application/json") {
                image = try pixels(fromJSON: bytes)
            } else if type.isEmpty || type.hasPrefix("image/") || type.hasPrefix("application/octet-stream") {
                image = try GrayImage.decode(bytes, name: "the picture")
            } else {
                return json(.unsupportedMediaType, ["error": "send a PNG or JPEG picture, or application/json pixels, not \(type)"])
            }
        } catch {
            return json(.badRequest, ["error": error.description])
        }
        let (rows, columns) = predictor.saved.model.imageSize
        let input: [UInt8], note: String
        do {
            (input, note) = try DigitPreparation.prepare(image, name: "the picture", preprocess: preprocess, invert: invert,
                                                         size: (rows, columns))
        } catch {
            return json(.unprocessableContent, ["error": error.description])
        }
        let probabilities = predictor.saved.probabilities(of: input, count: 1, rows: rows, columns: columns)[0]
        let digit = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
        let values: String = probabilities.map { String(format: "%.6g", $0) }.joined(separator: ", ")
        let pixels: String = input.map { String($0) }.joined(separator: ",")
        let text: String = "{\"class\": \(digit), \"probabilities\": [\(values)], \"prepared\": \(Support.json(note)), \"input\": [\(pixels)]}"
        return response(.ok, type: "application/json", text)
    }

    enum BodyTimeout: Error { case late }

    /// The request's body, once it has all arrived: at most `limit` bytes within `seconds`.
    static func collect(_ request: Request, limit: Int, seconds: Int) async throws -> ByteBuffer {
        try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask { try await request.body.collect(upTo: limit) }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let body = first else { throw BodyTimeout.late }
            return body
        }
    }

    /// A picture from JSON: {"width": W, "height": H, "pixels": [W x H numbers 0-255]} (both sizes default to 28).
    static func pixels(fromJSON bytes: [UInt8]) throws(FileError) -> GrayImage {
        let name = "the JSON body"
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw FileError(file: name, problem: "is not a JSON object")
        }
        let width = (object["width"] as? NSNumber)?.intValue ?? 28, height = (object["height"] as? NSNumber)?.intValue ?? 28
        guard (1...4096).contains(width), (1...4096).contains(height) else {
            throw FileError(file: name, problem: "width and height must be 1 to 4096, not \(width) and \(height)")
        }
        guard let values = object["pixels"] as? [NSNumber], values.count == width * height else {
            throw FileError(file: name, problem: "pixels must be an array of width x height = \(width * height) numbers")
        }
        let doubles = values.map(\.doubleValue)
        guard doubles.allSatisfy({ $0 >= 0 && $0 <= 255 }) else { throw FileError(file: name, problem: "pixels must lie in 0...255") }
        return GrayImage(width: width, height: height, pixels: doubles.map { UInt8($0.rounded()) })
    }

    static func json(_ status: HTTPResponse.Status, _ fields: [String: String]) -> Response {
        response(status, type: "application/json", jsonObject(fields.sorted { $0.key < $1.key }.map { ($0.key, Support.json($0.value)) }))
    }

    static func response(_ status: HTTPResponse.Status, type: String, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: type, .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Says "Connection: keep-alive" to a request that asked for it by that header (HTTP/1.0's keep-alive, as load tools
/// such as ab send it), which otherwise waits for the connection to close after each response.
struct KeepAliveAnswer<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if request.headers[.connection]?.lowercased().contains("keep-alive") == true { response.headers[.connection] = "keep-alive" }
        return response
    }
}
