// Writing JSON text: the metrics lines and the bench output.
import Foundation

/// A JSON object from (key, value) pairs whose values are already JSON.
public func jsonObject(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
}

/// A number as JSON (null for NaN or infinity).
public func json(_ value: Double) -> String {
    value.isFinite ? String(format: "%.6g", value) : "null"
}

public func json(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
