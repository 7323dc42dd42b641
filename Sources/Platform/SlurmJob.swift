// What mnist-dist reads from Slurm's environment when a job runs it: the job and how often it was requeued (for
// the start block and the metrics), a checkpoint directory of the job's own when none is given, resuming from it
// on a requeue, and whether the job's time limit leaves room for the run.
import Foundation

public struct SlurmJob: Sendable, Equatable {
    public var jobID: String
    /// 0 on the first run, then 1, 2, ... after each requeue (SLURM_RESTART_COUNT).
    public var restartCount: Int
    public var nodeCount: Int?
    public var nodeList: String?

    /// The job this process runs in, if it runs under Slurm (srun, or an sbatch script's mpirun).
    public static func current(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> SlurmJob? {
        guard let id = environment["SLURM_JOB_ID"], !id.isEmpty else { return nil }
        return SlurmJob(jobID: id, restartCount: environment["SLURM_RESTART_COUNT"].flatMap { Int($0) } ?? 0,
                        nodeCount: environment["SLURM_JOB_NUM_NODES"].flatMap { Int($0) },
                        nodeList: environment["SLURM_JOB_NODELIST"])
    }

    /// The checkpoint directory a job uses when it is given none: one per job, so that a requeued job (same id)
    /// finds its own checkpoints and two jobs never mix theirs.
    public var defaultCheckpointDirectory: String { "checkpoints/slurm-\(jobID)" }

    public var summary: String {
        var text = "job \(jobID)"
        if restartCount > 0 { text += ", restart \(restartCount)" }
        if let nodeCount { text += ", \(nodeCount) node\(nodeCount == 1 ? "" : "s")" }
        if let nodeList { text += " (\(nodeList))" }
        return text
    }

    /// Seconds until the job's time limit (squeue's %L), nil when unlimited or unknown.
    public func secondsLeft() -> Double? {
        guard let text = Self.command(["squeue", "-h", "-j", jobID, "-o", "%L"]) else { return nil }
        return Self.parseDuration(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether the job's batch script asks Slurm for a signal before the time limit (an `#SBATCH --signal` line).
    /// A signal given on the sbatch command line cannot be seen from inside the job.
    public func signalArranged() -> Bool {
        guard let script = Self.command(["scontrol", "write", "batch_script", jobID, "-"]) else { return false }
        return script.split(separator: "\n").contains { $0.hasPrefix("#SBATCH") && $0.contains("--signal") }
    }

    /// Slurm's durations: "MM:SS", "HH:MM:SS", "D-HH:MM:SS", "D-HH"; nil for UNLIMITED, NOT_SET or anything else.
    public static func parseDuration(_ text: String) -> Double? {
        var days = 0.0, rest = Substring(text)
        if let dash = text.firstIndex(of: "-") {
            guard let d = Double(text[..<dash]) else { return nil }
            days = d
            rest = text[text.index(after: dash)...]
        }
        let parts = rest.split(separator: ":").map { Double($0) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        let values = parts.map { $0! }
        let seconds: Double
        switch (values.count, days > 0 || text.contains("-")) {
        case (1, true): seconds = values[0] * 3600
        case (1, false): seconds = values[0] * 60
        case (2, true): seconds = values[0] * 3600 + values[1] * 60
        case (2, false): seconds = values[0] * 60 + values[1]
        case (3, _): seconds = values[0] * 3600 + values[1] * 60 + values[2]
        default: return nil
        }
        return days * 86400 + seconds
    }

    /// A Slurm client command's output, or nil if it cannot run, fails, or takes over 10 s (a controller that does
    /// not answer must not hold up training). The output goes to a file, so waiting never blocks on a pipe.
    static func command(_ arguments: [String]) -> String? {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mnist-dist-slurm-\(getpid())-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: file.path, contents: nil),
              let output = try? FileHandle(forWritingTo: file) else { return nil }
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            return nil
        }
        try? output.close()
        guard process.terminationStatus == 0, let data = FileManager.default.contents(atPath: file.path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
