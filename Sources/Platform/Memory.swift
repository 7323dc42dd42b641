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

    /// The default threads of one of `ranksOnMachine` ranks (those sharing this machine's cores): its share of the
    /// cores when it may use all of them, or the cores it is bound to; under Slurm, no more than the CPUs the job was
    /// given for each task.
    public static func defaultThreads(ranksOnMachine: Int,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        let all = ProcessInfo.processInfo.activeProcessorCount, mine = allowed
        let share = max(1, mine < all ? mine : all / max(ranksOnMachine, 1))
        return slurmCPUsPerTask(environment).map { min(share, $0) } ?? share
    }

    /// The CPUs Slurm allocated to each task on this node: SLURM_CPUS_PER_TASK (-c), else SLURM_CPUS_ON_NODE
    /// divided by this node's tasks (SLURM_TASKS_PER_NODE, e.g. "2(x3),1", at index SLURM_NODEID). Nil outside a
    /// Slurm step (an sbatch script's mpirun sees the batch step's values and is left to the host's count).
    static func slurmCPUsPerTask(_ environment: [String: String]) -> Int? {
        guard environment["SLURM_STEP_ID"] != nil, environment["SLURM_STEP_ID"] != "batch" else { return nil }
        if let perTask = environment["SLURM_CPUS_PER_TASK"].flatMap({ Int($0) }), perTask > 0 { return perTask }
        guard let onNode = environment["SLURM_CPUS_ON_NODE"].flatMap({ Int($0) }),
              let layout = environment["SLURM_TASKS_PER_NODE"],
              let node = environment["SLURM_NODEID"].flatMap({ Int($0) }) else { return nil }
        var tasks: [Int] = []
        for group in layout.split(separator: ",") {
            let parts = group.split(separator: "(")
            guard let count = Int(parts[0]) else { return nil }
            let repeats = parts.count > 1 ? Int(parts[1].dropFirst().dropLast()) ?? 1 : 1
            tasks += Array(repeating: count, count: repeats)
        }
        guard node < tasks.count, tasks[node] > 0 else { return nil }
        return max(1, onNode / tasks[node])
    }
}
