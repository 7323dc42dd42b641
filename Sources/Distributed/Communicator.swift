// The ranks of a job and the collectives training needs, behind one protocol; a one-process implementation makes
// every collective a no-op, so the same training code runs with or without mpirun.

/// A failure in a collective or in starting the job: what failed, said plainly.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Element types the collectives move.
public enum ReductionElement: Sendable { case float, double, int32, int64 }

/// How partial values combine in a reduction.
public enum ReductionOperation: Sendable { case sum, max, min }

/// The processes of a job: who this one is, and the collectives between them.
///
/// All collectives are blocking and must be called by every rank in the same order.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// This process's index among the processes on its host.
    var localRank: Int { get }
    /// Number of processes on this host.
    var localSize: Int { get }
    /// Number of processes on this machine's kernel, which share its cores: `localSize`, or more where one machine
    /// holds several hosts (network namespaces or containers, as the simulated cluster's are).
    var machineSize: Int { get }
    /// More processes on this machine (`machineSize`) than it has cores online (`coresOnline`): they take turns on
    /// the cores, and a rank that waits sleeps instead of spinning.
    var oversubscribed: Bool { get }
    /// A short name of the implementation ("single process", "Open MPI 4.1.4").
    var implementation: String { get }

    /// Combines `buffer` elementwise over all ranks, in place; every rank ends with the result.
    func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                   operation: ReductionOperation) throws(CommunicatorError)
    /// Starts combining `buffer` over all ranks in place, without waiting (MPI_Iallreduce); the buffer must not be
    /// touched until the returned reduction has been waited for.
    func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                        operation: ReductionOperation) throws(CommunicatorError) -> PendingReduction
    /// Copies `buffer` from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws(CommunicatorError)
    /// Ends every process of the job with `code` (the way out when ranks can no longer agree).
    func abort(code: Int32) -> Never
    /// Ends the communicator cleanly (after the last collective).
    func finalize()

    /// Gives every later collective a deadline: a rank that waits longer than `deadline` for the others calls a
    /// roll call, the ranks that do not answer are named, and the job ends with `exitCode`. Nil waits for ever.
    /// Only processes can stall (stopped, swapping, on a hung filesystem); threads in one process ignore it.
    func watchForStalls(_ deadline: StallDeadline?)
    /// What this rank is doing, for a stall report. A value, formatted only if a report is made: the training
    /// step sets it every step and allocates nothing.
    func describeActivity(_ activity: Activity)
    /// The host (under Slurm, the node) `rank` runs on, for messages that name ranks.
    func hostName(ofRank rank: Int) -> String
    /// `bytes` of memory that every rank of this host maps (`HostSharedMemory`), with the ranks at the same place on
    /// the other hosts as its peers, when every host runs the same number of ranks (more than one) and has room;
    /// else why not. A collective: every rank calls it with the same size.
    func hostSharedMemory(bytes: Int) throws(CommunicatorError) -> HostSharing
}

/// Where a run stands, as a stall report names it: "step 41 (epoch 1, batch 41)".
public struct Activity: Sendable, CustomStringConvertible {
    public enum Phase: Sendable { case startUp, step, epochEnd, runEnd, exit }
    public var phase: Phase
    /// The step (from 1), epoch and batch (from 1), where they apply.
    public var step = 0, epoch = 0, batch = 0

    public static let startUp = Activity(phase: .startUp)
    public static let runEnd = Activity(phase: .runEnd)
    /// After the run: every rank finishing together (`Communicator.finalize`).
    public static let exit = Activity(phase: .exit)
    public static func step(_ step: Int, epoch: Int, batch: Int) -> Activity {
        Activity(phase: .step, step: step, epoch: epoch, batch: batch)
    }
    public static func epochEnd(_ epoch: Int) -> Activity { Activity(phase: .epochEnd, epoch: epoch) }

    public var description: String {
        switch phase {
        case .startUp: "start-up"
        case .step: "step \(step) (epoch \(epoch), batch \(batch))"
        case .epochEnd: "the end of epoch \(epoch) (evaluation, metrics, checkpoint)"
        case .runEnd: "the end of the run (checksum, model, metrics, pictures)"
        case .exit: "the job's exit (the run had finished)"
        }
    }
}

/// How long a collective may wait, and how a stalled job ends.
public struct StallDeadline: Sendable, Equatable {
    /// Seconds a rank waits in one collective before it calls the roll call.
    public var seconds: Double
    /// The exit code of a job that stalled.
    public var exitCode: Int32
    public init(seconds: Double, exitCode: Int32) {
        self.seconds = seconds
        self.exitCode = exitCode
    }
}

extension Communicator {
    public func watchForStalls(_ deadline: StallDeadline?) {}
    public func describeActivity(_ activity: Activity) {}
    /// One process, or threads in one: every rank is on this host.
    public func hostName(ofRank rank: Int) -> String { localHostName() }
    public func hostSharedMemory(bytes: Int) -> HostSharing { .unavailable("one process") }
}

/// This host's name: under Slurm the node's (what --exclude takes), elsewhere the host name.
func localHostName() -> String {
    if let node = getenv("SLURMD_NODENAME") { return String(cString: node) }
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, 255)
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension Communicator {
    /// In-place sum of Floats over all ranks (the gradient all-reduce).
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws(CommunicatorError) {
        try allReduce(UnsafeMutableRawBufferPointer(buffer), count: buffer.count, element: .float, operation: .sum)
    }

    /// In-place reduction of Doubles over all ranks (metrics).
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReductionOperation) throws(CommunicatorError) {
        try allReduce(UnsafeMutableRawBufferPointer(buffer), count: buffer.count, element: .double, operation: operation)
    }

    /// In-place reduction of 32-bit integers over all ranks (the narrow fixed-point sum).
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Int32>, _ operation: ReductionOperation) throws(CommunicatorError) {
        try allReduce(UnsafeMutableRawBufferPointer(buffer), count: buffer.count, element: .int32, operation: operation)
    }

    /// In-place reduction of 64-bit integers over all ranks (counts, hashes, flags).
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReductionOperation) throws(CommunicatorError) {
        try allReduce(UnsafeMutableRawBufferPointer(buffer), count: buffer.count, element: .int64, operation: operation)
    }

    /// The reduction of one integer over all ranks.
    public func allReduce(_ value: Int64, _ operation: ReductionOperation) throws(CommunicatorError) -> Int64 {
        var result = [value]
        try result.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in try allReduce(buffer, operation) }
        return result[0]
    }

    /// Broadcasts a Float buffer from `root`.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws(CommunicatorError) {
        try broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
    }
}

/// A reduction under way.
public protocol PendingReduction: AnyObject {
    /// Lets it progress; true once it has finished.
    func test() throws(CommunicatorError) -> Bool
    /// Waits until it has finished.
    func wait() throws(CommunicatorError)
}

/// A reduction that was complete when it started (one process, or threads).
final class FinishedReduction: PendingReduction {
    func test() -> Bool { true }
    func wait() {}
}

extension Communicator {
    public var oversubscribed: Bool { machineSize > coresOnline }
}

/// The cores online on this machine, read once: what the processes on it share.
public let coresOnline = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

/// The whole job is this one process: collectives leave their buffers as they are.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var machineSize: Int { 1 }
    public var implementation: String { "single process (no MPI)" }
    public func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                          operation: ReductionOperation) {}
    public func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                               operation: ReductionOperation) -> PendingReduction { FinishedReduction() }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    public func abort(code: Int32) -> Never { exitProcess(code) }
    public func finalize() {}
}

#if canImport(Glibc)
import Glibc
#endif

func exitProcess(_ code: Int32) -> Never {
    fflush(nil)  // every open output stream
    exit(code)
}
