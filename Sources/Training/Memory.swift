// This process's memory and the CPUs it may run on, from /proc/self/status (Linux).
import Foundation

public enum Memory {
    /// Resident set size now, and its peak so far (VmRSS, VmHWM), in megabytes; nil where /proc is not there.
    public static func residentMegabytes() -> (current: Double, peak: Double)? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Double? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Double($0) }.first.map { $0 / 1024 }  // kB -> MB
        }
        guard let current = field("VmRSS"), let peak = field("VmHWM") else { return nil }
        return (current, peak)
    }
}

public enum Processors {
    /// CPUs this process may run on (its affinity: mpirun binds each rank to a core by default), else all online.
    public static var allowed: Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) {
            var count = 0
            for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
                let bounds = part.split(separator: "-").compactMap { Int($0) }
                count += bounds.count == 2 ? bounds[1] - bounds[0] + 1 : (bounds.count == 1 ? 1 : 0)
            }
            if count > 0 { return min(count, ProcessInfo.processInfo.activeProcessorCount) }
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// The default threads of one of `ranksOnHost` ranks: its share of the host's cores when it may use all of
    /// them, or the cores it is bound to.
    public static func defaultThreads(ranksOnHost: Int) -> Int {
        let all = ProcessInfo.processInfo.activeProcessorCount, mine = allowed
        return max(1, mine < all ? mine : all / max(ranksOnHost, 1))
    }
}
