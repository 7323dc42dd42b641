// How numbers are written for people: counts, sizes, durations and settings, the same in every message.
import Foundation

/// 1199882 -> "1,199,882".
public func groupedThousands(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var result = ""
    for (i, character) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return (value < 0 ? "-" : "") + result
}

/// A number as short as it can be written exactly enough for a reader ("0.1", "1e-06", "128").
public func formatNumber(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    let short = String(format: "%g", value)
    return Double(short) == value ? short : "\(value)"
}

/// 75 -> "1:15", 4000 -> "1:06:40".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite && seconds >= 0 else { return "--:--" }
    let total = Int(seconds.rounded())
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
}

/// "4.8 MB".
public func megabytes(_ bytes: Int) -> String {
    let value = Double(bytes) / 1e6
    return value < 10 ? String(format: "%.1f MB", value) : String(format: "%.0f MB", value)
}
