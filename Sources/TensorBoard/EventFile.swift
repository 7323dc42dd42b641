// TensorBoard's event files, written without TensorFlow: a file of records, each an `Event` protocol buffer.
//
// The record framing is TFRecord's: the payload's length as a little-endian UInt64, the masked CRC-32C of those 8
// bytes, the payload, and the masked CRC-32C of the payload. TensorBoard's reader checks both CRCs. The messages
// are the few fields of tensorboard/compat/proto/{event,summary,tensor}.proto that scalars, images and text use,
// encoded by hand (a protobuf library and its code generator would be far more than these ~150 lines).
import Foundation
import Support

/// Writes one event file: `events.out.tfevents.<seconds>.<host>.<pid>` in a run directory, as TensorBoard, PyTorch's
/// `SummaryWriter` and Keras name them. Summaries are buffered in memory until `flush()` (the trainer flushes after
/// every epoch, so a running job's curves show up in TensorBoard while it trains); a record is never rewritten.
public final class EventFileWriter {
    public let path: String
    private let handle: FileHandle
    private var pending: [UInt8] = []

    /// Creates the directory if needed and a new event file in it, beginning with the file-version event.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws(SystemError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code ?? Int(EIO)
            throw SystemError("\(directory): cannot create the TensorBoard directory", Int32(code))
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        path = "\(directory)/events.out.tfevents.\(Int(wallTime)).\(host).\(getpid())"
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw SystemError("\(path): cannot create the TensorBoard event file")
        }
        self.handle = handle
        var event = ProtobufMessage()
        event.double(1, wallTime)
        event.int(2, 0)
        event.string(3, "brain.Event:2")
        write(event)
        try flush()
    }

    deinit { try? handle.close() }

    /// A scalar (TensorBoard's "Scalars" tab) at `step`.
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Double = Date().timeIntervalSince1970) {
        var entry = ProtobufMessage()
        entry.string(1, tag)
        entry.float(2, Float(value))
        write(summary: entry, step: step, wallTime: wallTime)
    }

    /// A PNG picture (the "Images" tab).
    public func image(_ tag: String, png: [UInt8], width: Int, height: Int, step: Int,
                      wallTime: Double = Date().timeIntervalSince1970) {
        var image = ProtobufMessage()
        image.int(1, height)
        image.int(2, width)
        image.int(3, 3)  // colour space: RGB
        image.bytes(4, png)
        var entry = ProtobufMessage()
        entry.string(1, tag)
        entry.message(4, image)
        write(summary: entry, step: step, wallTime: wallTime)
    }

    /// Markdown text (the "Text" tab): a string tensor marked for the text plug-in, as TensorBoard's own
    /// `text` summary writes it.
    public func text(_ tag: String, _ markdown: String, step: Int, wallTime: Double = Date().timeIntervalSince1970) {
        var plugin = ProtobufMessage()
        plugin.string(1, "text")
        var metadata = ProtobufMessage()
        metadata.message(1, plugin)
        var tensor = ProtobufMessage()
        tensor.int(1, 7)  // DT_STRING
        tensor.message(2, ProtobufMessage())  // a scalar: the shape has no dimensions
        tensor.bytes(8, Array(markdown.utf8))
        var entry = ProtobufMessage()
        entry.string(1, tag)
        entry.message(8, tensor)
        entry.message(9, metadata)
        write(summary: entry, step: step, wallTime: wallTime)
    }

    /// Writes what is buffered to the file.
    public func flush() throws(SystemError) {
        guard !pending.isEmpty else { return }
        do {
            try handle.write(contentsOf: Data(pending))
        } catch {
            throw SystemError("\(path): cannot write the TensorBoard event file")
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func write(summary entry: ProtobufMessage, step: Int, wallTime: Double) {
        var summary = ProtobufMessage()
        summary.message(1, entry)
        var event = ProtobufMessage()
        event.double(1, wallTime)
        event.int(2, step)
        event.message(5, summary)
        write(event)
    }

    private func write(_ event: ProtobufMessage) {
        pending += EventRecord.frame(event.bytes)
    }
}

/// TFRecord framing.
public enum EventRecord {
    /// `payload` framed as one record: length, its CRC, payload, its CRC.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var length = [UInt8]()
        appendLittleEndian(UInt64(payload.count), bytes: 8, to: &length)
        var record = length
        appendLittleEndian(UInt64(maskedCRC(length)), bytes: 4, to: &record)
        record += payload
        appendLittleEndian(UInt64(maskedCRC(payload)), bytes: 4, to: &record)
        return record
    }

    /// The CRC as TFRecord stores it: rotated and offset, so that a CRC of data holding CRCs is not degenerate.
    public static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = CRC32C.checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    private static func appendLittleEndian(_ value: UInt64, bytes: Int, to output: inout [UInt8]) {
        for i in 0..<bytes { output.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord files.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ 0x82f6_3b78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xffff_ffff
    }
}
