// mnist-dist serve: a trained model behind HTTP, with a page to draw digits on.
import ArgumentParser
import Checkpoints
import Foundation
import Reporting
import Serving
import Support
import Training

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a trained model over HTTP: a page to draw digits on, and POST /predict for pictures.",
        discussion: """
            GET / is a page to draw a digit on, showing the ten probabilities
            as you draw (no external scripts or fonts: it works offline).
            POST /predict takes a PNG or JPEG body, or JSON {"width": W,
            "height": H, "pixels": [...]} (0 black, 255 white), prepares it as
            predict does (query: preprocess=auto|mnist|none, invert=auto|yes|no)
            and answers JSON: class, probabilities, prepared (what was done)
            and input (the 28x28 bytes the model saw). GET /health answers the
            model's checksum. Bad input gets a 4xx with {"error": "..."}.
            Ctrl-C or SIGTERM stops it after the requests in flight.
            Examples:
              mnist-dist train --save cnn.ckpt
              mnist-dist serve cnn.ckpt     (open http://127.0.0.1:8080)
              curl --data-binary @digit.png -H 'Content-Type: image/png' \\
                http://127.0.0.1:8080/predict
            """)

    @OptionGroup var model: ModelArgument

    @Option(help: "The address to listen on (0.0.0.0 for every interface).")
    var host: String = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port, printed at start).")
    var port: Int = 8080

    @Option(name: .customLong("max-body"), help: "The largest request body accepted, in bytes (413 beyond).")
    var maximumBody: Int = ServeOptions().maximumBodyBytes

    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may stay silent before it is closed.")
    var idleTimeout: Int = ServeOptions().idleTimeout

    @Option(name: .customLong("request-timeout"), help: "Seconds a request's body may take to arrive (408 beyond), however it trickles in.")
    var requestTimeout: Int = ServeOptions().requestTimeout

    @Option(help: "For a safetensors model that does not record it: how the model expects pixels, standard or none.")
    var normalize: Normalization = Defaults.normalization

    func validate() throws {
        _ = try model.resolved()
        if !(0...65535).contains(port) { throw ValidationError("--port \(port): must be 0 to 65535") }
        if maximumBody < 1 { throw ValidationError("--max-body \(maximumBody): must be at least 1") }
        if idleTimeout < 1 { throw ValidationError("--idle-timeout \(idleTimeout): must be at least 1") }
        if requestTimeout < 1 { throw ValidationError("--request-timeout \(requestTimeout): must be at least 1") }
    }

    /// Runs the server on Swift's concurrency threads until it stops; this thread waits for it.
    func run() throws {
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await serve() } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }

    func serve() async throws {
        let console = Console(rank: 0, ranks: 1)
        var saved: SavedModel?
        try reportingErrors(console) { saved = try SavedModel.load(path: try self.model.resolved(), normalization: normalize) }
        var options = ServeOptions()
        options.host = host
        options.port = port
        options.maximumBodyBytes = maximumBody
        options.idleTimeout = idleTimeout
        options.requestTimeout = requestTimeout
        let model = saved!.model.architecture, checksum = saved!.parameterChecksumHex
        do {
            try await DigitServer.run(saved!, options: options) { address in
                print("serving \(model) (checksum \(checksum)) on \(address.serverURLHost): open http://\(address.serverURLHost)/ ; Ctrl-C stops")
                fflush(nil)
            }
        } catch {
            console.error("error: serving on \(host):\(port): \(error)")
            throw RunError(.cannotWrite, nil)
        }
        print("stopped")
    }
}

/// The server task's error, handed to the waiting thread.
final class Outcome: @unchecked Sendable {
    var error: Error?
}

extension String {
    /// "[IPv4]127.0.0.1/127.0.0.1:8080" (NIO's address description) as "127.0.0.1:8080".
    var serverURLHost: String {
        guard let slash = lastIndex(of: "/") else { return self }
        return String(self[index(after: slash)...])
    }
}
