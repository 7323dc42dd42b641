// Memory that every rank of one host maps, a barrier that makes each rank's writes visible to the others, and the
// ranks of the other hosts that hold the same place on theirs.
//
// The step of a host's ranks runs in this memory (`HostSum`): backward writes each rank's gradient parts into it,
// each rank sums and steps one slice there, and every rank reads the stepped parameters from it. Nothing is copied
// between the ranks of a host; MPI_Allreduce would copy each rank's buffer into another's memory through the kernel
// and back. Across hosts, each rank all-reduces its slice with its peers: the ranks of the same local rank on the
// other hosts, which hold the same slice.
//
// What the barriers guarantee: a rank writes the memory of the next round only after the barrier that ends this
// one, when every rank has finished reading; what a rank reads after the first barrier of a round stays as it is
// until the first barrier of the next.

import Support

/// A block of memory every rank of one host maps at its own address, with the same layout.
public final class HostSharedMemory {
    /// The memory's start, 64-byte aligned.
    public let base: UnsafeMutableRawPointer
    public let bytes: Int
    /// This rank's index among the host's ranks, and their number.
    public let rank: Int
    public let size: Int
    /// The ranks of the other hosts at this rank's place on theirs (nil: every rank is on this host).
    public let peers: HostPeers?
    /// Waits until every rank has arrived, with the memory ordering that makes their writes visible.
    private let wait: () throws(CommunicatorError) -> Void

    /// - Parameters:
    ///   - base: `bytes` that every rank of the host maps, laid out alike, 64-byte aligned.
    ///   - barrier: a barrier over the host's `size` ranks that orders memory (MPI_Win_sync around MPI_Barrier).
    public init(base: UnsafeMutableRawPointer, bytes: Int, rank: Int, size: Int, peers: HostPeers? = nil,
                barrier: @escaping () throws(CommunicatorError) -> Void) {
        require(Int(bitPattern: base) % 64 == 0 && bytes > 0 && size > 1 && (0..<size).contains(rank),
                "HostSharedMemory: \(bytes) bytes at \(base), rank \(rank) of \(size)")
        self.base = base
        self.bytes = bytes
        self.rank = rank
        self.size = size
        self.peers = peers
        wait = barrier
    }

    /// A barrier: every rank's writes before it are visible to every rank after it. A collective.
    public func barrier() throws(CommunicatorError) { try wait() }
}

/// The ranks that hold this rank's place on every host (this one included, in host order): the collectives a rank
/// runs with them.
public struct HostPeers {
    /// How many hosts (one peer on each).
    public let hosts: Int
    /// This rank's index among its peers: its host's.
    public let host: Int
    /// Combines `buffer` elementwise over the peers, in place (as `Communicator.allReduce`).
    public let allReduce: (UnsafeMutableRawBufferPointer, Int, ReductionElement, ReductionOperation) throws(CommunicatorError) -> Void
    /// Copies `buffer` from the peer on host `root` to every peer.
    public let broadcast: (UnsafeMutableRawBufferPointer, Int) throws(CommunicatorError) -> Void

    public init(hosts: Int, host: Int,
                allReduce: @escaping (UnsafeMutableRawBufferPointer, Int, ReductionElement, ReductionOperation) throws(CommunicatorError) -> Void,
                broadcast: @escaping (UnsafeMutableRawBufferPointer, Int) throws(CommunicatorError) -> Void) {
        self.hosts = hosts
        self.host = host
        self.allReduce = allReduce
        self.broadcast = broadcast
    }
}

/// Whether the ranks can share memory, and if not, why.
public enum HostSharing {
    case shared(HostSharedMemory)
    case unavailable(String)

    public var memory: HostSharedMemory? {
        if case .shared(let memory) = self { memory } else { nil }
    }

    /// Why `size` ranks (of the whole job) cannot share `bytes`, whoever would map them: one rank, or nothing to
    /// share; nil otherwise.
    static func none(size: Int, bytes: Int) -> HostSharing? {
        size <= 1 ? .unavailable("one rank") : bytes <= 0 ? .unavailable("nothing to share") : nil
    }
}
