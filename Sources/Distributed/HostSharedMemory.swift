// Memory that every rank of one host maps, a barrier that makes each rank's writes visible to the others, and the
// ranks of the other hosts that hold the same place on theirs.
//
// The step of a host's ranks runs in this memory (`HostSum`): backward writes each rank's gradient parts into it,
// each rank sums and steps one slice there, and every rank reads the stepped parameters from it. Nothing is copied
// between the ranks of a host; MPI_Allreduce would copy each rank's buffer into another's memory through the kernel
// and back. Across hosts, each rank all-reduces its slice with its peers: the ranks of the same local rank on the
// other hosts, which hold the same slice.
//
// What the barriers guarantee: a rank writes the memory of the next step only after the barrier that ends this
// one, when every rank has finished reading; what a rank reads after the first barrier of a step stays as it is
// until the first barrier of the next. The barrier lives in the memory's first line (CHostBarrier): no MPI call, and
// a rank that waits sleeps in the kernel until the last rank arrives, so that with more ranks than cores it leaves
// its core to the ranks that still compute.

import CHostBarrier
import Dispatch
import Support
#if canImport(Glibc)
import Glibc
#endif

/// A block of memory every rank of one host maps at its own address, with the same layout.
public final class HostSharedMemory {
    /// The memory's start, 64-byte aligned, after the barrier's line.
    public let base: UnsafeMutableRawPointer
    public let bytes: Int
    /// This rank's index among the host's ranks, and their number.
    public let rank: Int
    public let size: Int
    /// The ranks of the other hosts at this rank's place on theirs (nil: every rank is on this host).
    public let peers: HostPeers?
    private let control: UnsafeMutableRawPointer
    private let spins: UInt32
    /// Called about every `HostSharedMemory.watchInterval` seconds while this rank waits at the barrier, with the
    /// seconds it has waited: it may end the process (a deadline, a roll call).
    private let watch: (Double) throws(CommunicatorError) -> Void

    /// The bytes before `base`: the barrier's line.
    public static let controlBytes = Int(HOST_BARRIER_BYTES)
    static let watchInterval = 0.1

    /// - Parameters:
    ///   - region: `controlBytes + bytes` that every rank of the host maps, laid out alike, 64-byte aligned, whose
    ///     first `controlBytes` are zeros before any rank calls `barrier()`.
    ///   - oversubscribed: more ranks on the host than cores: a waiting rank sleeps at once instead of spinning first.
    ///   - watch: see `watch`.
    public init(region: UnsafeMutableRawPointer, bytes: Int, rank: Int, size: Int, peers: HostPeers? = nil,
                oversubscribed: Bool, watch: @escaping (Double) throws(CommunicatorError) -> Void = { _ in }) {
        require(Int(bitPattern: region) % 64 == 0 && bytes > 0 && size > 1 && (0..<size).contains(rank),
                "HostSharedMemory: \(bytes) bytes at \(region), rank \(rank) of \(size)")
        control = region
        base = region + Self.controlBytes
        self.bytes = bytes
        self.rank = rank
        self.size = size
        self.peers = peers
        // A short spin first (tens of microseconds): balanced ranks usually arrive that close together.
        spins = oversubscribed ? 0 : 2000
        self.watch = watch
    }

    /// Publishes `value` at byte `offset` of the memory (8-byte aligned) for the other ranks: the writes this rank made
    /// before it are visible to a rank that reads the value with `read(at:)`.
    public func publish(_ value: UInt64, at offset: Int) { host_counter_publish(base + offset, value) }

    /// The value last published at byte `offset`.
    public func read(at offset: Int) -> UInt64 { host_counter_read(base + offset) }

    /// Waits until `done()` holds, calling `meanwhile()` between its checks (about every 20 µs): a wait on what
    /// other ranks publish (`read(at:)`), watched against the stall deadline like the barrier.
    public func poll(until done: () -> Bool, meanwhile: () -> Void) throws(CommunicatorError) {
        let begun = DispatchTime.now().uptimeNanoseconds
        var watched = begun
        while !done() {
            meanwhile()
            usleep(20)
            let now = DispatchTime.now().uptimeNanoseconds
            if now - watched >= UInt64(Self.watchInterval * 1e9) {
                watched = now
                try watch(Double(now - begun) / 1e9)
            }
        }
    }

    /// A barrier: every rank's writes before it are visible to every rank after it. A collective.
    public func barrier() throws(CommunicatorError) {
        let generation = host_barrier_arrive(control, UInt32(size))
        guard generation >= 0 else { return }
        let begun = DispatchTime.now().uptimeNanoseconds
        while host_barrier_wait(control, generation, spins, UInt32(Self.watchInterval * 1e6)) == 0 {
            try watch(Double(DispatchTime.now().uptimeNanoseconds - begun) / 1e9)
        }
    }
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
    /// Starts that combination and returns at once (as `Communicator.startAllReduce`).
    public let startAllReduce: (UnsafeMutableRawBufferPointer, Int, ReductionElement, ReductionOperation) throws(CommunicatorError)
        -> PendingReduction
    /// Copies `buffer` from the peer on host `root` to every peer.
    public let broadcast: (UnsafeMutableRawBufferPointer, Int) throws(CommunicatorError) -> Void

    public init(hosts: Int, host: Int,
                allReduce: @escaping (UnsafeMutableRawBufferPointer, Int, ReductionElement, ReductionOperation) throws(CommunicatorError) -> Void,
                startAllReduce: @escaping (UnsafeMutableRawBufferPointer, Int, ReductionElement, ReductionOperation)
                    throws(CommunicatorError) -> PendingReduction,
                broadcast: @escaping (UnsafeMutableRawBufferPointer, Int) throws(CommunicatorError) -> Void) {
        self.hosts = hosts
        self.host = host
        self.allReduce = allReduce
        self.startAllReduce = startAllReduce
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
