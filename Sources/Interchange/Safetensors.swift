// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, and the tensors' bytes. mnist-dist writes and reads float32 tensors.
import Foundation
import Support

/// One named float32 tensor, row-major.
public struct NamedTensor: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The tensors and string metadata of a safetensors file.
public struct SafetensorsFile: Equatable, Sendable {
    public var tensors: [NamedTensor]
    public var metadata: [String: String]

    public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`, if there is one.
    public subscript(name: String) -> NamedTensor? { tensors.first { $0.name == name } }

    /// The file's bytes: tensors in the order given, each F32, the header padded with spaces to a multiple of 8
    /// bytes (so that the data starts aligned, as the format's writers do).
    public func encoded() -> [UInt8] {
        var entries: [(String, Any)] = []
        var offset = 0
        for tensor in tensors {
            let bytes = tensor.values.count * 4
            entries.append((tensor.name, ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]))
            offset += bytes
        }
        // JSONSerialization does not keep key order; the format does not need any, but sorted keys keep files stable.
        var object: [String: Any] = Dictionary(uniqueKeysWithValues: entries)
        if !metadata.isEmpty { object["__metadata__"] = metadata }
        var header = Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var result: [UInt8] = []
        result.reserveCapacity(8 + header.count + offset)
        for i in 0..<8 { result.append(UInt8(truncatingIfNeeded: UInt64(header.count) >> (8 * UInt64(i)))) }
        result += header
        for tensor in tensors {
            tensor.values.withUnsafeBytes { result += $0 }  // little-endian Float32 on every platform mnist-dist runs on
        }
        return result
    }

    /// Reads a safetensors file, checking its header against its size; every tensor must be F32. Problems are
    /// reported as `FileError`s naming `file`.
    public static func decode(_ bytes: [UInt8], file: String) throws(FileError) -> SafetensorsFile {
        func malformed(_ problem: String) -> FileError { FileError(file: file, problem: problem) }
        guard bytes.count >= 8 else { throw malformed("\(bytes.count) bytes: too short for a safetensors file") }
        let headerSize = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) }
        guard headerSize <= UInt64(bytes.count - 8), headerSize <= 100_000_000 else {
            throw malformed("the header claims \(headerSize) bytes, but the file has \(bytes.count - 8) after its length: not a safetensors file, or cut short")
        }
        let header = Data(bytes[8..<(8 + Int(headerSize))])
        guard let object = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else {
            throw malformed("the header is not a JSON object: not a safetensors file")
        }
        let dataStart = 8 + Int(headerSize), dataSize = bytes.count - dataStart
        var metadata: [String: String] = [:]
        if let entries = object["__metadata__"] {
            guard let strings = entries as? [String: String] else { throw malformed("__metadata__ must map strings to strings") }
            metadata = strings
        }
        var located: [(name: String, shape: [Int], range: Range<Int>)] = []
        for (name, value) in object where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = (entry["shape"] as? [NSNumber])?.map(\.intValue),
                  let offsets = (entry["data_offsets"] as? [NSNumber])?.map(\.intValue), offsets.count == 2 else {
                throw malformed("tensor \(name): its header entry needs dtype, shape and data_offsets")
            }
            guard dtype == "F32" else {
                throw malformed("tensor \(name) is \(dtype); mnist-dist reads F32 tensors (in PyTorch: model.float() before saving)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw malformed("tensor \(name): bytes \(offsets[0])..<\(offsets[1]) lie outside the file's \(dataSize) bytes of data")
            }
            let count = shape.reduce(1, *)
            guard (offsets[1] - offsets[0]) == count * 4 else {
                throw malformed("tensor \(name): shape \(shape) needs \(count * 4) bytes, its range holds \(offsets[1] - offsets[0])")
            }
            located.append((name, shape, offsets[0]..<offsets[1]))
        }
        located.sort { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(located, located.dropFirst()) where a.range.upperBound > b.range.lowerBound {
            throw malformed("tensors \(a.name) and \(b.name) overlap")
        }
        let tensors = located.map { entry in
            var values = [Float](repeating: 0, count: entry.range.count / 4)
            values.withUnsafeMutableBytes { destination in
                bytes.withUnsafeBytes { source in
                    destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(dataStart + entry.range.lowerBound)..<(dataStart + entry.range.upperBound)]))
                }
            }
            return NamedTensor(name: entry.name, shape: entry.shape, values: values)
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }
}
