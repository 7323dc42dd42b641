// The checkpoint file format: encoding and verified decoding. Pure functions of bytes (no file system), so the
// decoder can be fuzzed on its own (scripts/fuzz.sh); CheckpointFiles.swift reads, writes and rotates the files.
//
// Layout (all integers little-endian):
//   8 bytes   magic "MNDCKPT\n"
//   UInt32    format version (2; version 1 files, whose setting keys were command-line spellings, are read too)
//   UInt32    header length H, then H bytes of UTF-8 "key=value" lines: configuration and progress
//   UInt64    parameter count P, then P Floats (the flat parameter buffer)
//   UInt64    optimizer state count S, then S Floats (the flat optimizer state)
//   UInt32    generator words G (0, or 624 for the chapter stream), then G UInt32s
//   UInt32    CRC-32 (zlib's) of every byte before it
// Reading checks the CRC first and every length against the bytes that remain, so a truncated, bit-flipped or
// hostile file is refused before anything is allocated for it. (Floats are copied as raw bytes: every platform
// Swift on Linux runs on is little-endian.)
#if canImport(Deflate)  // absent when scripts/fuzz.sh compiles this file together with Deflate's sources
import Deflate
#endif
import Support

/// One finished epoch, kept in checkpoints so that a resumed run's metrics and plots are complete.
public struct EpochRecord: Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testAccuracy: Double
    public var seconds: Double
    public var samplesPerSecond: Double
    public var communicationShare: Double
    /// The loss of the epoch's last batch (what the chapter's CNN loop prints).
    public var lastBatchLoss: Double

    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, testAccuracy: Double, seconds: Double,
                samplesPerSecond: Double, communicationShare: Double, lastBatchLoss: Double = .nan) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
        self.communicationShare = communicationShare
        self.lastBatchLoss = lastBatchLoss
    }
}

/// Where a run stands: the epoch in progress and the next batch of it, the steps done, the epoch's totals so far,
/// the sample-order state, and the finished epochs' records.
public struct RunPosition: Equatable, Sendable {
    /// Training totals of the epoch in progress, so far.
    public struct Totals: Equatable, Sendable {
        public var lossSum = 0.0
        public var correct = 0
        public var samples = 0
        public init(lossSum: Double = 0, correct: Int = 0, samples: Int = 0) {
            self.lossSum = lossSum
            self.correct = correct
            self.samples = samples
        }
    }

    /// Epoch in progress (0-based) and the next batch of it to run; step counts batches done over the run.
    public var epoch = 0
    public var batch = 0
    public var step = 0
    public var partial = Totals()
    /// The chapter stream's generator as it stood at the start of `epoch` (nil for seeded shuffles).
    public var generator: RandomState?
    public var history: [EpochRecord] = []

    public init(epoch: Int = 0, batch: Int = 0, step: Int = 0, partial: Totals = Totals(), generator: RandomState? = nil,
                history: [EpochRecord] = []) {
        self.epoch = epoch
        self.batch = batch
        self.step = step
        self.partial = partial
        self.generator = generator
        self.history = history
    }
}

/// Everything needed to continue a run exactly where it stopped, or to use its model.
public struct Checkpoint: Equatable, Sendable {
    public static let magic = Array("MNDCKPT\n".utf8)
    public static let version: UInt32 = 2
    /// The setting keys of version 1 files, and the snake_case keys they are read as.
    public static let formerSettingKeys = ["lr": "learning_rate", "batch-size": "batch_size", "normalize": "normalization",
                                           "hidden": "hidden_sizes", "eps": "epsilon", "weight-decay": "weight_decay"]

    /// Configuration and identity: the run's settings (`TrainingConfiguration.settings`), the model's
    /// architecture, and the size of the training set.
    public var settings: [String: String]
    /// Epoch in progress (0-based) and the next batch of it to run; step counts batches done over the run.
    public var epoch: Int
    public var batch: Int
    public var step: Int
    /// Training totals of the epoch in progress, so far: Σ loss, correct, samples.
    public var partialLossSum: Double
    public var partialCorrect: Int
    public var partialSamples: Int
    /// The chapter stream's generator as it stood at the start of `epoch` (nil for seeded shuffles).
    public var generator: RandomState?
    public var history: [EpochRecord]
    public var parameters: [Float]
    public var optimizerState: [Float]

    public init(settings: [String: String], epoch: Int, batch: Int, step: Int, partialLossSum: Double = 0,
                partialCorrect: Int = 0, partialSamples: Int = 0, generator: RandomState?, history: [EpochRecord],
                parameters: [Float], optimizerState: [Float]) {
        self.settings = settings
        self.epoch = epoch
        self.batch = batch
        self.step = step
        self.partialLossSum = partialLossSum
        self.partialCorrect = partialCorrect
        self.partialSamples = partialSamples
        self.generator = generator
        self.history = history
        self.parameters = parameters
        self.optimizerState = optimizerState
    }

    /// A checkpoint of a run at `position`.
    public init(settings: [String: String], position: RunPosition, parameters: [Float], optimizerState: [Float]) {
        self.init(settings: settings, epoch: position.epoch, batch: position.batch, step: position.step,
                  partialLossSum: position.partial.lossSum, partialCorrect: position.partial.correct,
                  partialSamples: position.partial.samples, generator: position.generator, history: position.history,
                  parameters: parameters, optimizerState: optimizerState)
    }

    /// Where the run it was taken from stood.
    public var position: RunPosition {
        RunPosition(epoch: epoch, batch: batch, step: step,
                    partial: .init(lossSum: partialLossSum, correct: partialCorrect, samples: partialSamples),
                    generator: generator, history: history)
    }

    // MARK: Encoding

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var header: [(String, String)] = settings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        header += [("epoch", "\(epoch)"), ("batch", "\(batch)"), ("step", "\(step)"),
                   ("partial.loss_sum", hexBits(partialLossSum)), ("partial.correct", "\(partialCorrect)"),
                   ("partial.samples", "\(partialSamples)")]
        if let generator {
            header.append(("generator.position", "\(generator.position)"))
            header.append(("generator.gaussian", generator.cachedGaussian.map(hexBits) ?? "none"))
        }
        for record in history {
            let fields = [record.trainLoss, record.trainAccuracy, record.testAccuracy, record.seconds,
                          record.samplesPerSecond, record.communicationShare, record.lastBatchLoss].map(hexBits)
            header.append(("history.\(record.epoch)", fields.joined(separator: ",")))
        }
        var bytes = Self.magic
        append(&bytes, Self.version)
        let text = Array(header.map { "\($0.0)=\($0.1)\n" }.joined().utf8)
        append(&bytes, UInt32(text.count))
        bytes += text
        append(&bytes, UInt64(parameters.count))
        for value in parameters { append(&bytes, value.bitPattern) }
        append(&bytes, UInt64(optimizerState.count))
        for value in optimizerState { append(&bytes, value.bitPattern) }
        let words = generator?.key ?? []
        append(&bytes, UInt32(words.count))
        for word in words { append(&bytes, word) }
        append(&bytes, Zlib.crc32(bytes))
        return bytes
    }

    /// Parses and verifies a checkpoint's bytes: the frame (magic, version, CRC), the header, the two Float arrays
    /// and the generator state, in the order they are written.
    /// - Throws: `FileError` naming `name` and the problem.
    public static func decode(_ bytes: [UInt8], name: String) throws(FileError) -> Checkpoint {
        func fail(_ problem: String) -> FileError { FileError(file: name, problem: problem) }
        var (reader, version) = try verifiedFrame(bytes, fail)
        guard let headerLength: UInt32 = reader.read(), let text = reader.bytes(Int(headerLength)) else {
            throw fail("is truncated in its header")
        }
        let header = Header(try Header.lines(text, fail), fail: fail)
        guard let parameters = reader.floats() else { throw fail("is truncated in its parameters") }
        guard let state = reader.floats() else { throw fail("is truncated in its optimizer state") }
        guard let wordCount: UInt32 = reader.read(), wordCount == 0 || Int(wordCount) == RandomState.stateWords,
              let wordBytes = reader.bytes(Int(wordCount) * 4) else {
            throw fail("has a malformed generator state")
        }
        guard reader.position == reader.end else { throw fail("has \(reader.end - reader.position) unexpected bytes before its CRC") }
        let settings = header.settings
        return Checkpoint(settings: version == 1 ? withCurrentKeys(settings) : settings, epoch: try header.integer("epoch"),
                          batch: try header.integer("batch"), step: try header.integer("step"),
                          partialLossSum: try header.double("partial.loss_sum"), partialCorrect: try header.integer("partial.correct"),
                          partialSamples: try header.integer("partial.samples"), generator: try header.generator(wordBytes),
                          history: try header.history(), parameters: parameters, optimizerState: state)
    }

    /// Settings under the current keys: a former key's value moves to its new key, unless that key is set too.
    public static func withCurrentKeys(_ settings: [String: String]) -> [String: String] {
        var result = settings
        for (old, new) in formerSettingKeys {
            if let value = result.removeValue(forKey: old), result[new] == nil { result[new] = value }
        }
        return result
    }

    /// A reader positioned after the version, once the magic bytes, the version and the CRC-32 check out.
    private static func verifiedFrame(_ bytes: [UInt8], _ fail: (String) -> FileError) throws(FileError) -> (ByteReader, UInt32) {
        guard bytes.count >= magic.count + 4, Array(bytes[0..<magic.count]) == magic else {
            throw fail(bytes.isEmpty ? "is empty" : "is not an mnist-dist checkpoint (wrong magic bytes)")
        }
        guard bytes.count >= magic.count + 4 + 4 + 4 else { throw fail("is truncated") }
        var reader = ByteReader(bytes: bytes, end: bytes.count - 4)
        reader.position = magic.count
        let version: UInt32 = reader.read()!
        guard version == 1 || version == Self.version else {
            throw fail("has format version \(version); this mnist-dist reads versions 1 to \(Self.version)")
        }
        var stored: UInt32 = 0
        for b in 0..<4 { stored |= UInt32(bytes[bytes.count - 4 + b]) << UInt32(8 * b) }
        let computed = bytes.withUnsafeBytes { Zlib.crc32(UnsafeRawBufferPointer(rebasing: $0[0..<(bytes.count - 4)])) }
        guard stored == computed else {
            throw fail("is damaged or truncated (CRC-32 mismatch: stored \(hex(stored)), computed \(hex(computed)))")
        }
        return (reader, version)
    }

    /// The "key=value" lines of a checkpoint's header, and what they hold besides the settings.
    private struct Header {
        let values: [String: String]
        let fail: (String) -> FileError

        init(_ values: [String: String], fail: @escaping (String) -> FileError) {
            self.values = values
            self.fail = fail
        }

        static let progressKeys: Set<String> = ["epoch", "batch", "step", "partial.loss_sum", "partial.correct",
                                                "partial.samples", "generator.position", "generator.gaussian"]

        /// The header's lines as a dictionary. They are split on the newline and "=" scalars, not Characters: Swift
        /// reads "\r\n" (or "=" and a combining mark) as one Character, so a value ending in "\r" would swallow the
        /// next line after a round trip (found by the fuzzer).
        static func lines(_ text: ArraySlice<UInt8>, _ fail: (String) -> FileError) throws(FileError) -> [String: String] {
            guard let headerText = String(validating: text, as: UTF8.self) else { throw fail("has a header that is not UTF-8") }
            func string<S: Sequence<Unicode.Scalar>>(_ scalars: S) -> String { String(String.UnicodeScalarView(scalars)) }
            var header: [String: String] = [:]
            for line in headerText.unicodeScalars.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { throw fail("has a malformed header line '\(string(line).prefix(60))'") }
                header[string(line[..<equals])] = string(line[line.index(after: equals)...])
            }
            return header
        }

        /// Every line that is not progress or history: the run's settings.
        var settings: [String: String] {
            values.filter { !Self.progressKeys.contains($0.key) && !$0.key.hasPrefix("history.") }
        }

        func integer(_ key: String) throws(FileError) -> Int {
            guard let text = values[key], let value = Int(text), value >= 0 else { throw fail("lacks a valid '\(key)'") }
            return value
        }

        func double(_ key: String) throws(FileError) -> Double {
            guard let text = values[key], let value = fromHexBits(text) else { throw fail("lacks a valid '\(key)'") }
            return value
        }

        /// The chapter stream's generator from its little-endian key words and the header's position and cached
        /// normal, or nil when the file holds no words.
        func generator(_ wordBytes: ArraySlice<UInt8>) throws(FileError) -> RandomState? {
            guard !wordBytes.isEmpty else { return nil }
            var words = [UInt32](repeating: 0, count: wordBytes.count / 4)
            let base = wordBytes.startIndex
            for i in 0..<words.count {
                for b in 0..<4 { words[i] |= UInt32(wordBytes[base + 4 * i + b]) << UInt32(8 * b) }
            }
            let gaussian = values["generator.gaussian"].flatMap { $0 == "none" ? nil : fromHexBits($0) }
            guard let state = RandomState(key: words, position: try integer("generator.position"), cachedGaussian: gaussian) else {
                throw fail("has an invalid generator state")
            }
            return state
        }

        /// The finished epochs' records, in order.
        func history() throws(FileError) -> [EpochRecord] {
            var history: [EpochRecord] = []
            for (key, value) in values where key.hasPrefix("history.") {
                let fields = value.split(separator: ",").compactMap { fromHexBits(String($0)) }
                guard let epoch = Int(key.dropFirst("history.".count)), fields.count == 7 else { throw fail("has a malformed '\(key)'") }
                history.append(EpochRecord(epoch: epoch, trainLoss: fields[0], trainAccuracy: fields[1], testAccuracy: fields[2],
                                           seconds: fields[3], samplesPerSecond: fields[4], communicationShare: fields[5],
                                           lastBatchLoss: fields[6]))
            }
            return history.sorted { $0.epoch < $1.epoch }
        }
    }
}

// MARK: Byte helpers

private func append<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
}

private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

/// A Double as the 16 hex digits of its bits: exact and locale-proof.
func hexBits(_ value: Double) -> String { StableHash.hex(value.bitPattern) }

func fromHexBits(_ text: String) -> Double? {
    guard text.count == 16, let bits = UInt64(text, radix: 16) else { return nil }
    return Double(bitPattern: bits)
}

/// Reads little-endian values from a byte array, refusing to read past `end`.
private struct ByteReader {
    let bytes: [UInt8]
    let end: Int
    var position = 0

    mutating func read<T: FixedWidthInteger>() -> T? {
        let size = MemoryLayout<T>.size
        guard end - position >= size else { return nil }
        var value: T = 0
        for i in 0..<size { value |= T(bytes[position + i]) << (8 * i) }
        position += size
        return value
    }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, end - position >= count else { return nil }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    /// A UInt64 count followed by that many Floats; nil if the count exceeds what remains.
    mutating func floats() -> [Float]? {
        guard let count: UInt64 = read(), count <= UInt64((end - position) / 4) else { return nil }
        let n = Int(count)
        var result = [Float](repeating: 0, count: n)
        bytes.withUnsafeBytes { raw in
            result.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[position..<(position + 4 * n)])) }
        }
        position += 4 * n
        return result
    }
}
