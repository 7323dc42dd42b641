// The ranks of a job and the collectives training needs, behind one protocol; a one-process implementation makes
// every collective a no-op, so the same training code runs with or without mpirun.

/// A failure in a collective or in starting the job: what failed, said plainly.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Element types the collectives move.
public enum ReductionElement: Sendable { case float, double, int64 }

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

/// The whole job is this one process: collectives leave their buffers as they are.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
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
