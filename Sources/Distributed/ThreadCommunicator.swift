// N ranks as threads of one process: the collectives over shared memory, so that everything above the
// communicator (reducers, agreement, stop and checkpoint decisions) can be tested in one process, without mpirun.
//
// Each collective posts every rank's buffer, waits at a barrier, lets each rank combine all buffers into its own
// result in a fixed rank order (ascending, or descending to show that a reduction does not depend on it), waits
// again, and only then writes the result in place, so no rank reads a buffer another has already overwritten.
import Support
#if canImport(Glibc)
import Glibc
#endif

/// The shared state of N thread ranks.
public final class ThreadGroup: @unchecked Sendable {
    // @unchecked Sendable: `posted` is written by each rank at its own index before a barrier and read by all only
    // after it; the barrier orders every access.
    public let size: Int
    /// The order in which ranks' contributions are combined.
    public let descending: Bool
    private var barrier = pthread_barrier_t()
    /// Each rank's buffer in the collective under way, by rank.
    private let posted: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>
    /// Whether the ranks offer `hostSharedMemory` (threads share all memory; without it, the reducers' all-reduce
    /// paths are tested).
    public let sharesMemory: Bool
    /// The memory `hostSharedMemory` handed out (each host's first rank allocates it; freed with the group).
    private var sharedAreas: [UnsafeMutableRawPointer] = []
    /// Simulated hosts: ranks 0..<size/hosts are the first host's, and so on. Each host has its own shared memory;
    /// the ranks at the same place on every host are peers.
    public let hosts: Int
    var perHost: Int { size / hosts }

    public init(size: Int, descending: Bool = false, sharesMemory: Bool = true, hosts: Int = 1) {
        require(size >= 1 && hosts >= 1 && size % hosts == 0, "ThreadGroup: \(size) ranks on \(hosts) hosts")
        self.size = size
        self.descending = descending
        self.sharesMemory = sharesMemory
        self.hosts = hosts
        posted = .allocate(capacity: size)
        posted.initialize(repeating: nil)
        pthread_barrier_init(&barrier, nil, UInt32(size))
    }

    deinit {
        pthread_barrier_destroy(&barrier)
        posted.deallocate()
        for area in sharedAreas { area.deallocate() }
    }

    /// Runs `body` once per rank, each on a thread of its own with that rank's communicator, and returns the
    /// results in rank order.
    public static func run<T>(ranks: Int, descending: Bool = false, sharesMemory: Bool = true, hosts: Int = 1,
                              _ body: @Sendable (Communicator) throws -> T) rethrows -> [T] {
        let group = ThreadGroup(size: ranks, descending: descending, sharesMemory: sharesMemory, hosts: hosts)
        let results = UncheckedSendable(UnsafeMutableBufferPointer<Result<T, Error>?>.allocate(capacity: ranks))
        results.value.initialize(repeating: nil)
        defer { results.value.deallocate() }
        withoutActuallyEscaping(body) { body in
            let threads = (0..<ranks).map { rank in
                RankThread {
                    results.value[rank] = Result { try body(ThreadCommunicator(group: group, rank: rank)) }
                }
            }
            for thread in threads { thread.join() }
        }
        return try results.value.map { try $0!.get() }
    }

    fileprivate func wait() { pthread_barrier_wait(&barrier) }

    /// `bytes` that every rank of a host gets the same pointer to: the host's first rank allocates them (a
    /// collective).
    fileprivate func sharedMemory(bytes: Int, rank: Int) -> UnsafeMutableRawPointer {
        let first = rank - rank % perHost
        if rank == first {
            let area = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            area.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            sharedAreas.append(area)
            posted[rank] = area
        }
        wait()
        let area = posted[first]!
        wait()  // every rank has read it before `posted` serves the next collective
        return area
    }

    /// Posts `pointer` as `rank`'s contribution, waits for every rank, and returns all contributions by rank.
    fileprivate func exchange(_ pointer: UnsafeMutableRawPointer?, rank: Int) -> [UnsafeMutableRawPointer] {
        posted[rank] = pointer
        wait()
        return posted.map { $0! }
    }
}

/// One rank of a `ThreadGroup`.
public final class ThreadCommunicator: Communicator {
    let group: ThreadGroup
    public let rank: Int
    public var size: Int { group.size }
    public var localRank: Int { rank % group.perHost }
    public var localSize: Int { group.perHost }
    /// Every thread rank is in this one process.
    public var machineSize: Int { group.size }
    public var implementation: String { "\(group.size) threads in one process" }

    init(group: ThreadGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    public func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                          operation: ReductionOperation) {
        guard count > 0 else { return }  // as MPI: nothing to wait for
        allReduce(buffer, count: count, element: element, operation: operation, peersOnly: false)
    }

    /// `allReduce` over every rank, or over this rank's peers (the ranks at its place on every host). Every rank of
    /// the group takes part either way, each with its own peers, even with nothing to combine.
    private func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                           operation: ReductionOperation, peersOnly: Bool) {
        let everyone = group.exchange(buffer.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 64)!, rank: rank)
        let all = peersOnly ? everyone.indices.filter { $0 % group.perHost == localRank }.map { everyone[$0] } : everyone
        switch element {
        case .float: combine(Float.self, all, buffer, count, operation)
        case .double: combine(Double.self, all, buffer, count, operation)
        case .int32: combine(Int32.self, all, buffer, count, operation)
        case .int64: combine(Int64.self, all, buffer, count, operation)
        }
    }

    /// Combines every rank's `count` values in the group's order into a result of this rank's, then (after every
    /// rank has read every buffer) writes it over this rank's buffer.
    private func combine<T: Numeric & Comparable>(_: T.Type, _ all: [UnsafeMutableRawPointer], _ buffer: UnsafeMutableRawBufferPointer,
                                                  _ count: Int, _ operation: ReductionOperation) {
        let byRank = all.map { $0.assumingMemoryBound(to: T.self) }
        let sources = group.descending ? byRank.reversed() : byRank
        var result = (0..<count).map { sources[0][$0] }
        for source in sources.dropFirst() {
            for i in 0..<count {
                switch operation {
                case .sum: result[i] += source[i]
                case .max: result[i] = max(result[i], source[i])
                case .min: result[i] = min(result[i], source[i])
                }
            }
        }
        group.wait()
        let target = buffer.baseAddress!.assumingMemoryBound(to: T.self)
        for i in 0..<count { target[i] = result[i] }
    }

    /// Completes at once: every rank reaches its starts in the same order, so the blocking reduction is safe here.
    public func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                               operation: ReductionOperation) -> PendingReduction {
        allReduce(buffer, count: count, element: element, operation: operation)
        return FinishedReduction()
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard buffer.count > 0 else { return }
        let all = group.exchange(buffer.baseAddress, rank: rank)
        if rank != root { buffer.baseAddress!.copyMemory(from: all[root], byteCount: buffer.count) }
        group.wait()
    }

    public func hostSharedMemory(bytes: Int) -> HostSharing {
        guard group.sharesMemory else { return .unavailable("this thread group all-reduces") }
        if let none = HostSharing.none(size: size, bytes: bytes) { return none }
        guard group.perHost > 1 else { return .unavailable("one rank per host") }
        let region = group.sharedMemory(bytes: HostSharedMemory.controlBytes + bytes, rank: rank)
        let peers = group.hosts == 1 ? nil : HostPeers(
            hosts: group.hosts, host: rank / group.perHost,
            allReduce: { [self] buffer, count, element, operation in
                allReduce(buffer, count: count, element: element, operation: operation, peersOnly: true)
            },
            startAllReduce: { [self] buffer, count, element, operation in
                allReduce(buffer, count: count, element: element, operation: operation, peersOnly: true)
                return FinishedReduction()
            },
            broadcast: { [self, group] buffer, root in
                let all = group.exchange(buffer.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 64)!, rank: rank)
                let source = all[root * group.perHost + localRank]
                if rank / group.perHost != root && buffer.count > 0 { buffer.baseAddress!.copyMemory(from: source, byteCount: buffer.count) }
                group.wait()
            })
        return .shared(HostSharedMemory(region: region, bytes: bytes, rank: localRank, size: localSize, peers: peers,
                                        oversubscribed: false))
    }

    public func abort(code: Int32) -> Never {
        fatalError("rank \(rank) of a thread group aborted with code \(code)")
    }

    public func finalize() {}
}

/// A POSIX thread with a stack as large as the main thread's (a secondary thread's default is small for the
/// training step's deep generic code): a rank's thread, or the stall watchdog.
struct RankThread {
    private var thread = pthread_t()

    /// The closure a thread runs; retained by the thread alone, and released when it ends.
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    init(_ body: @escaping () -> Void) {
        self.init(body, stack: 16 << 20)
    }

    init(_ body: @escaping () -> Void, stack: Int) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, stack)
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let status = pthread_create(&thread, &attributes, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        pthread_attr_destroy(&attributes)
        require(status == 0, "ThreadGroup: cannot start a rank's thread (error \(status))")
    }

    func join() { pthread_join(thread, nil) }
}
