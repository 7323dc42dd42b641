// A small JSON reader that keeps numbers exact.
//
// swift-corelibs-foundation's JSONSerialization can be off by a few units in the last place when it parses doubles
// (seen with numpy's 0.5488135039273248), which would make a bit-exact comparison fail for the wrong reason. Here
// every number is parsed with Swift's correctly rounded `Double(_:)` from its exact text.

public indirect enum JSON: Equatable, CustomStringConvertible, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.description == b.description }

    /// Parses a whole JSON document.
    public static func parse(_ text: String) throws -> JSON {
        var parser = Parser(bytes: Array(text.utf8))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw parser.error("trailing characters") }
        return value
    }

    public subscript(key: String) -> JSON {
        guard case .object(let members) = self, let found = members.first(where: { $0.0 == key }) else {
            fatalError("JSON: no key '\(key)' in \(description.prefix(200))")
        }
        return found.1
    }

    public subscript(index: Int) -> JSON {
        guard case .array(let items) = self else { fatalError("JSON: not an array") }
        return items[index]
    }

    public var has: (String) -> Bool {
        { key in if case .object(let m) = self { return m.contains { $0.0 == key } } else { return false } }
    }

    public var array: [JSON] {
        guard case .array(let items) = self else { fatalError("JSON: not an array: \(description.prefix(200))") }
        return items
    }

    public var double: Double {
        guard case .number(let text) = self, let value = Double(text) else { fatalError("JSON: not a number") }
        return value
    }

    public var int: Int {
        guard case .number(let text) = self, let value = Int(text) else { fatalError("JSON: not an integer: \(self)") }
        return value
    }

    public var string: String {
        guard case .string(let text) = self else { fatalError("JSON: not a string") }
        return text
    }

    public var doubles: [Double] { array.map(\.double) }
    public var ints: [Int] { array.map(\.int) }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let text): return text
        case .string(let s): return "\"\(s)\""
        case .array(let items): return "[" + items.map(\.description).joined(separator: ",") + "]"
        case .object(let members): return "{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ message: String) -> ParseError { ParseError(description: "JSON: \(message) at byte \(index)") }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x0a, 0x0d, 0x09].contains(bytes[index]) { index += 1 }
        }

        mutating func value() throws -> JSON {
            skipSpace()
            guard index < bytes.count else { throw error("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var members: [(String, JSON)] = []
                skipSpace()
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard case .string(let key) = try value() else { throw error("object key is not a string") }
                    skipSpace()
                    guard bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    index += 1
                    members.append((key, try value()))
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "}") else { throw error("expected '}'") }
                    index += 1
                    return .object(members)
                }
            case UInt8(ascii: "["):
                index += 1
                var items: [JSON] = []
                skipSpace()
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    items.append(try value())
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "]") else { throw error("expected ']'") }
                    index += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                index += 1
                var text: [UInt8] = []
                while bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") {
                        index += 1
                        let escaped: [UInt8: UInt8] = [0x6e: 0x0a, 0x74: 0x09, 0x72: 0x0d, 0x62: 0x08, 0x66: 0x0c]
                        text.append(escaped[bytes[index]] ?? bytes[index])
                    } else {
                        text.append(bytes[index])
                    }
                    index += 1
                }
                index += 1
                return .string(String(decoding: text, as: UTF8.self))
            case UInt8(ascii: "t"): index += 4; return .bool(true)
            case UInt8(ascii: "f"): index += 5; return .bool(false)
            case UInt8(ascii: "n"): index += 4; return .null
            default:
                let start = index
                while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
                guard index > start else { throw error("unexpected character") }
                return .number(String(decoding: bytes[start..<index], as: UTF8.self))
            }
        }
    }
}

import Foundation

extension JSON {
    /// Reads and parses a JSON file.
    public static func load(_ url: URL) throws -> JSON {
        try parse(String(contentsOf: url, encoding: .utf8))
    }
}
