// The one file that talks to MPI. Every call's return code is checked; MPI's error handler is set to return codes
// (not to abort silently), so a failure becomes a CommunicatorError with MPI's own explanation.
//
// Collectives are started non-blocking and waited for here, so that a wait can have a deadline (`watchForStalls`).
// A rank whose wait passes it calls a roll call on a communicator of its own: it sends what it is doing to every
// other rank and listens for a grace period. A rank that hears the call answers from whichever collective it is
// waiting in. Ranks that never answer are the stalled ones (stopped, swapping, hung in I/O or still computing long
// after the others arrived); the lowest rank that did answer names them, with their hosts and process ids, and
// every answering rank then ends the job with the deadline's exit code. Nothing is written at that point, so the
// last checkpoint stays as it was.
//
// The wait for arrival is a non-blocking barrier polled here; the collective itself then runs blocking, at full
// speed. A rank that freezes during that transfer, after every rank arrived, is caught by a watchdog thread: when a
// transfer outlasts the deadline, the watchdog holds the roll call in the main thread's place (MPI runs at thread
// level MULTIPLE for it), so the rank that froze mid-transfer, or whose host dropped off the network, is named like
// one that never arrived. Where MPI offers only FUNNELED, the watchdog says that a transfer hangs and ends the
// process with the same code, and the launcher ends the others. MPI_Finalize is watched the same way, without a
// roll call.
import CMPI
import Dispatch
import Support
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A communicator over MPI_COMM_WORLD.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    public let machineSize: Int
    public let implementation: String
    private let world: MPI_Comm
    /// The ranks of this host (in world order), and the ranks at this rank's place on every host (`hostSharedMemory`).
    private let host: MPI_Comm?
    private var peers: MPI_Comm?
    private var finalized = false
    /// The roll call's own communicator (a duplicate of the world, so its messages never meet the training's).
    private var watch: MPI_Comm?
    /// Every rank's host name and process id, for naming a stalled rank.
    private let hosts: [String]
    private let processIDs: [Int32]
    private var deadline: StallDeadline?
    private var activity = Activity.startUp
    /// The roll call's receive, always posted, and what it receives: one `RollCall.bytes` message.
    private var callRequest = cmpi_request_null()
    private var callMessage = [UInt8](repeating: 0, count: RollCall.bytes)
    /// The ranks that have answered a roll call, with what they were doing; empty until one is called.
    private var answers: [Int: String] = [:]
    /// Held while a thread uses the roll call's state (`callRequest`, `callMessage`, `answers`): the main thread while
    /// it polls for or holds a roll call, the watchdog when it holds one for a frozen transfer.
    private let rollCallLock = Mutex(())
    /// MPI runs at thread level MULTIPLE: the watchdog may hold a roll call.
    private let watchdogCalls: Bool
    /// For the watchdog: when the current blocking transfer started (uptime in ns, 0 when none), the deadline in
    /// ns, and what the transfer is.
    private let transferStart = Atomic<UInt64>(0)
    private let transferLimit = Atomic<UInt64>(0)
    private let stallExitCode = Atomic<Int32>(1)
    private let transferWhat = Mutex((Activity.startUp, Collective.broadcast(bytes: 0, root: 0)))
    private var watchdog: RankThread?
    /// More ranks on this machine than it has cores (`machineSize`, `coresOnline`): waits sleep between polls
    /// (`complete`).
    public let oversubscribed: Bool
    /// The shared-memory windows `hostSharedMemory` made, freed at `finalize`.
    private var windows: [MPI_Win?] = []

    /// Initialises MPI and reads the job's layout. The thread level asked for is MULTIPLE, for the watchdog's roll
    /// call; otherwise only the main thread calls MPI.
    public init() throws(CommunicatorError) {
        var provided: Int32 = 0
        var argc: Int32 = 0
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            let code = MPI_Init_thread(&argc, nil, cmpi_thread_multiple(), &provided)
            guard code == cmpi_success() else { throw CommunicatorError("MPI_Init_thread failed (code \(code))") }
        } else {
            MPI_Query_thread(&provided)
        }
        watchdogCalls = provided >= cmpi_thread_multiple()
        world = cmpi_comm_world()
        MPI_Comm_set_errhandler(world, cmpi_errors_return())
        var value: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &value), "MPI_Comm_rank")
        rank = Int(value)
        try Self.check(MPI_Comm_size(world, &value), "MPI_Comm_size")
        size = Int(value)
        // Processes sharing this host: a communicator split by shared memory.
        var local = cmpi_comm_null()
        try Self.check(MPI_Comm_split_type(world, cmpi_comm_type_shared(), Int32(rank), cmpi_info_null(), &local),
                       "MPI_Comm_split_type")
        MPI_Comm_set_errhandler(local, cmpi_errors_return())
        try Self.check(MPI_Comm_rank(local, &value), "MPI_Comm_rank (host)")
        localRank = Int(value)
        try Self.check(MPI_Comm_size(local, &value), "MPI_Comm_size (host)")
        localSize = Int(value)
        host = local
        machineSize = try Self.ranksOnThisMachine(of: world, rank: rank, hostRanks: localSize)
        oversubscribed = machineSize > coresOnline
        var version = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let full = string(version)
        implementation = full.split(separator: ",").first.map(String.init) ?? "MPI"
        // Who is where, once: a fixed-width record per rank (host name, then the process id), for naming a stalled
        // rank.
        var mine = [UInt8](repeating: 0, count: 68)
        for (i, c) in localHostName().utf8.prefix(63).enumerated() { mine[i] = c }
        withUnsafeBytes(of: getpid()) { for (i, b) in $0.enumerated() { mine[64 + i] = b } }
        var all = [UInt8](repeating: 0, count: 68 * size)
        try Self.check(MPI_Allgather(&mine, 68, cmpi_byte(), &all, 68, cmpi_byte(), world), "MPI_Allgather (hosts)")
        hosts = (0..<size).map { r in
            String(decoding: all[(68 * r)..<(68 * r + 64)].prefix { $0 != 0 }, as: UTF8.self)
        }
        processIDs = (0..<size).map { r in
            all[(68 * r + 64)..<(68 * r + 68)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        }
        watch = cmpi_comm_null()
        try Self.check(MPI_Comm_dup(world, &watch), "MPI_Comm_dup")
        MPI_Comm_set_errhandler(watch, cmpi_errors_return())
    }

    /// True when this process was started by an MPI launcher (mpirun, srun, mpiexec).
    public static var launchedByMPI: Bool {
        let variables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"]
        return variables.contains { (name: String) -> Bool in getenv(name) != nil }
    }

    /// MPI's datatype and width for an element type, and its reduction operation.
    private static func describe(_ element: ReductionElement, _ operation: ReductionOperation) -> (MPI_Datatype, Int, MPI_Op) {
        let type: MPI_Datatype, width: Int
        switch element {
        case .float: (type, width) = (cmpi_float(), 4)
        case .double: (type, width) = (cmpi_double(), 8)
        case .int32: (type, width) = (cmpi_int32(), 4)
        case .int64: (type, width) = (cmpi_int64(), 8)
        }
        let op: MPI_Op
        switch operation {
        case .sum: op = cmpi_op_sum()
        case .max: op = cmpi_op_max()
        case .min: op = cmpi_op_min()
        }
        return (type, width, op)
    }

    public func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                          operation: ReductionOperation) throws(CommunicatorError) {
        try allReduce(buffer, count: count, element: element, operation: operation, over: world)
    }

    /// `allReduce` over `communicator` (the world, or a rank's peers on the other hosts).
    private func allReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                           operation: ReductionOperation, over communicator: MPI_Comm?) throws(CommunicatorError) {
        guard count > 0 else { return }
        let (type, width, op) = Self.describe(element, operation)
        try arrive(.allReduce(count: count), over: communicator)
        defer { transferStart.store(0, ordering: .releasing) }
        // MPI counts are 32-bit: reduce larger buffers in pieces.
        var start = 0
        while start < count {
            let piece = min(count - start, Int(Int32.max))
            try Self.check(MPI_Allreduce(cmpi_in_place(), buffer.baseAddress! + start * width, Int32(piece), type, op, communicator),
                           "MPI_Allreduce of \(count) values")
            start += piece
        }
    }

    public func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                               operation: ReductionOperation) throws(CommunicatorError) -> PendingReduction {
        try startAllReduce(buffer, count: count, element: element, operation: operation, over: world)
    }

    /// `startAllReduce` over `communicator` (the world, or a rank's peers on the other hosts).
    private func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                                operation: ReductionOperation, over communicator: MPI_Comm?) throws(CommunicatorError) -> PendingReduction {
        guard count > 0 else { return FinishedReduction() }
        guard count <= Int(Int32.max) else {
            // too large for one request
            try allReduce(buffer, count: count, element: element, operation: operation, over: communicator)
            return FinishedReduction()
        }
        let (type, _, op) = Self.describe(element, operation)
        let pending = MPIReduction(communicator: self, what: .allReduce(count: count, overlapped: true))
        try Self.check(MPI_Iallreduce(cmpi_in_place(), buffer.baseAddress, Int32(count), type, op, communicator, &pending.request),
                       "MPI_Iallreduce of \(count) values")
        return pending
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws(CommunicatorError) {
        try broadcast(buffer, root: root, over: world)
    }

    /// `broadcast` over `communicator`, from its rank `root`.
    private func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int, over communicator: MPI_Comm?) throws(CommunicatorError) {
        try arrive(.broadcast(bytes: buffer.count, root: root), over: communicator)
        defer { transferStart.store(0, ordering: .releasing) }
        var start = 0
        while start < buffer.count {
            let piece = min(buffer.count - start, Int(Int32.max))
            try Self.check(MPI_Bcast(buffer.baseAddress! + start, Int32(piece), cmpi_byte(), Int32(root), communicator),
                           "MPI_Bcast of \(buffer.count) bytes")
            start += piece
        }
    }

    // MARK: Memory the ranks of one host share

    /// One window per host that its first rank allocates (MPI_Win_allocate_shared) and every rank of the host maps,
    /// locked for the job (passive target), so that `MPI_Win_sync` orders each rank's accesses around the host's
    /// barriers; and, with several hosts, a communicator of each rank's peers (split by local rank).
    public func hostSharedMemory(bytes: Int) throws(CommunicatorError) -> HostSharing {
        if let none = HostSharing.none(size: size, bytes: bytes) { return none }
        // Every host must run as many ranks, so that the same local rank holds the same slice everywhere.
        var counts: [Int64] = [Int64(localSize), -Int64(localSize)]
        try counts.withUnsafeMutableBufferPointer { (b) throws(CommunicatorError) in try allReduce(b, .max) }
        let (most, fewest) = (Int(counts[0]), Int(-counts[1]))
        guard most == fewest else { return .unavailable("the hosts run \(fewest) to \(most) ranks each") }
        guard localSize > 1 else { return .unavailable("one rank per host") }
        // Open MPI backs the window with a file in this directory; a full tmpfs would end the job with SIGBUS at the
        // first touch, so every rank checks for room (twice the size, the rest for others) and all must agree.
        let directory = getenv("OMPI_MCA_osc_sm_backing_directory").map { String(cString: $0) } ?? "/dev/shm"
        var status = statvfs()
        let room = statvfs(directory, &status) == 0 ? Int(status.f_bavail) * Int(status.f_frsize) : 0
        let enough = try allReduce(Int64(room >= 2 * bytes ? 1 : 0), .min)
        guard enough == 1 else { return .unavailable("too little room in \(directory) on some rank for \(bytes >> 20) MB") }
        let hosts = size / localSize
        if hosts > 1 && peers == nil {
            var split = cmpi_comm_null()
            try Self.check(MPI_Comm_split(world, Int32(localRank), Int32(rank), &split), "MPI_Comm_split (peers)")
            MPI_Comm_set_errhandler(split, cmpi_errors_return())
            peers = split
        }
        try arrive(.sharedMemory(bytes: bytes))
        defer { transferStart.store(0, ordering: .releasing) }
        let asked = HostSharedMemory.controlBytes + bytes + 64  // the barrier's line, and room to align the start
        var window = cmpi_win_null()
        var mine: UnsafeMutableRawPointer?
        try Self.check(MPI_Win_allocate_shared(localRank == 0 ? asked : 0, 1, cmpi_info_null(), host, &mine, &window),
                       "MPI_Win_allocate_shared of \(asked) bytes")
        windows.append(window)
        MPI_Win_set_errhandler(window, cmpi_errors_return())
        var first: UnsafeMutableRawPointer?
        var firstBytes = 0
        var unit: Int32 = 0
        try Self.check(MPI_Win_shared_query(window, 0, &firstBytes, &unit, &first), "MPI_Win_shared_query")
        guard let first, firstBytes >= asked else { throw CommunicatorError("MPI_Win_shared_query: \(firstBytes) bytes, \(asked) asked") }
        try Self.check(MPI_Win_lock_all(Int32(cmpi_mode_nocheck()), window), "MPI_Win_lock_all")
        let aligned = first + (64 - Int(bitPattern: first) % 64) % 64
        if localRank == 0 { aligned.initializeMemory(as: UInt8.self, repeating: 0, count: HostSharedMemory.controlBytes) }
        try Self.check(MPI_Win_sync(window), "MPI_Win_sync")
        try barrier(.sharedMemory(bytes: bytes), over: host)  // the barrier's line is zeros before anyone uses it
        var hostIndex: Int32 = 0
        if let peers { try Self.check(MPI_Comm_rank(peers, &hostIndex), "MPI_Comm_rank (peers)") }
        let peerGroup = peers.map { comm in
            HostPeers(hosts: hosts, host: Int(hostIndex),
                      allReduce: { [unowned self] (buffer, count, element, operation) throws(CommunicatorError) in
                          try allReduce(buffer, count: count, element: element, operation: operation, over: comm)
                      },
                      startAllReduce: { [unowned self] (buffer, count, element, operation) throws(CommunicatorError) in
                          try startAllReduce(buffer, count: count, element: element, operation: operation, over: comm)
                      },
                      broadcast: { [unowned self] (buffer, root) throws(CommunicatorError) in try broadcast(buffer, root: root, over: comm) })
        }
        return .shared(HostSharedMemory(region: aligned, bytes: bytes, rank: localRank, size: localSize, peers: peerGroup,
                                        oversubscribed: oversubscribed) { [unowned self] waited in
            // The barrier makes no MPI call; its waits are watched as a polled collective's (`complete`).
            watchWait(in: .sharedMemory(bytes: bytes), waited: waited)
        })
    }

    /// How many ranks run on this machine's kernel, and so share its cores: the ranks whose Linux boot id is this
    /// rank's. That is more than MPI's host when one machine holds several hosts (network namespaces or containers,
    /// as the simulated cluster's are). A collective.
    private static func ranksOnThisMachine(of world: MPI_Comm?, rank: Int, hostRanks: Int) throws(CommunicatorError) -> Int {
        // A rank without a boot id to read counts its host's ranks: its colour is its own rank number.
        let bootID = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
        let color = bootID.map { Int32(truncatingIfNeeded: StableHash.of($0) & 0x7fff_ffff) } ?? Int32(rank)
        var machine = cmpi_comm_null()
        try check(MPI_Comm_split(world, color, Int32(rank), &machine), "MPI_Comm_split (machine)")
        defer { MPI_Comm_free(&machine) }
        var count: Int32 = 0
        try check(MPI_Comm_size(machine, &count), "MPI_Comm_size (machine)")
        return max(hostRanks, Int(count))
    }

    /// A barrier over every rank; with a deadline, polled, with the roll call when it passes (`complete`).
    private func barrier(_ what: Collective, over communicator: MPI_Comm? = nil) throws(CommunicatorError) {
        let communicator = communicator ?? world
        guard deadline != nil || oversubscribed else { return try Self.check(MPI_Barrier(communicator), "MPI_Barrier (\(what))") }
        var request = cmpi_request_null()
        try Self.check(MPI_Ibarrier(communicator, &request), "MPI_Ibarrier")
        try complete(&request, what)
    }

    // MARK: Deadlines

    public func watchForStalls(_ deadline: StallDeadline?) {
        self.deadline = deadline
        transferLimit.store(deadline.map { UInt64($0.seconds * 1e9) } ?? 0, ordering: .relaxed)
        stallExitCode.store(deadline?.exitCode ?? 1, ordering: .relaxed)
        guard deadline != nil, size > 1 else { return }
        if callRequest == cmpi_request_null() { postRollCallReceive() }
        if watchdog == nil {
            watchdog = RankThread({ [unowned self] in watchTransfers() }, stack: 1 << 20)
        }
    }

    public func describeActivity(_ activity: Activity) { self.activity = activity }

    public func hostName(ofRank rank: Int) -> String { hosts[rank] }

    /// With a deadline: waits, polling, until every rank has arrived at this collective (a non-blocking barrier),
    /// so that the blocking collective after it runs at its full speed. (Waiting for the collective itself without
    /// blocking, with MPI_Iallreduce, made the MLP's -np 2 epoch 4 % slower.)
    private func arrive(_ what: Collective, over communicator: MPI_Comm? = nil) throws(CommunicatorError) {
        guard deadline != nil, size > 1 else { return }
        try barrier(what, over: communicator)
        transferWhat.withLock { [activity] in $0 = (activity, what) }
        transferStart.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing)
    }

    /// The watchdog's loop: a blocking transfer that outlasts the deadline ends this process.
    private func watchTransfers() {
        while true {
            usleep(200_000)
            let start = transferStart.load(ordering: .acquiring), limit = transferLimit.load(ordering: .relaxed)
            guard start != 0, limit != 0 else { continue }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now > start, now - start > limit else { continue }
            let (doing, what) = transferWhat.withLock { $0 }, code = stallExitCode.load(ordering: .relaxed)
            let waited = formatSeconds(Double(now - start) / 1e9)
            if what.kind != .finish, watchdogCalls, let deadline {
                holdRollCall(saying: "\(doing): \(what), every rank had arrived; the transfer had run \(waited)",
                             deadline: deadline, stage: .transfer)
            }
            let message = what.kind == .finish
                ? "error: rank \(rank) (host \(hosts[rank])): \(doing): every rank reached the end, but MPI_Finalize has "
                    + "not returned after \(waited): a rank froze while exiting, or the network hangs (the ranks that "
                    + "report this line are alive). Ending the job with exit \(code); the run had finished, and the "
                    + "files it wrote are complete\n"
                : "error: rank \(rank) (host \(hosts[rank])): \(doing): \(what): every rank arrived, but the transfer has "
                    + "not finished after \(waited): a rank froze during it, or the network hangs (the ranks that report "
                    + "this line are alive). Ending the job with exit \(code); the last checkpoint is intact\n"
            _ = Array(message.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            _exit(code)
        }
    }

    /// Waits for `request`; with a deadline, polls it and calls the roll call when the deadline passes or another
    /// rank has called one.
    fileprivate func complete(_ request: inout MPI_Request?, _ what: Collective) throws(CommunicatorError) {
        guard (deadline != nil && size > 1) || oversubscribed else {
            try Self.check(MPI_Wait(&request, cmpi_status_ignore()), "MPI_Wait (\(what))")
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        var flag: Int32 = 0
        var polls = 0
        while true {
            try Self.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test (\(what))")
            if flag != 0 { return }
            polls &+= 1
            // More ranks than cores: a rank that has waited a while sleeps between polls and leaves its core to a
            // rank that still computes (spinning, it would take half that rank's core).
            if oversubscribed && polls > 64 { usleep(20) }
            guard polls & 63 == 0 else { continue }
            watchWait(in: what, waited: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
    }

    /// For a wait in `what` that has lasted `waited` seconds: the roll call, when the deadline has passed or another
    /// rank has called one.
    private func watchWait(in what: Collective, waited: Double) {
        guard let deadline, size > 1 else { return }
        if waited > deadline.seconds || rollCallHeard() { stalled(in: what, waited: waited, deadline: deadline) }
    }

    private func postRollCallReceive() {
        callMessage.withUnsafeMutableBytes { buffer in
            _ = MPI_Irecv(buffer.baseAddress, Int32(RollCall.bytes), cmpi_byte(), cmpi_any_source(), RollCall.tag, watch,
                          &callRequest)
        }
    }

    /// Takes in every roll-call message that has arrived; true once any has. While the watchdog holds a roll call,
    /// this waits for it to end the process.
    private func rollCallHeard() -> Bool {
        rollCallLock.withLock { _ in takeAnswers() }
    }

    private func takeAnswers() -> Bool {
        var flag: Int32 = 1
        var status = MPI_Status()
        while callRequest != cmpi_request_null() {
            guard MPI_Test(&callRequest, &flag, &status) == cmpi_success(), flag != 0 else { break }
            answers[Int(status.MPI_SOURCE)] = RollCall.decode(callMessage)
            postRollCallReceive()
        }
        return !answers.isEmpty
    }

    /// The roll call of the main thread, whose wait in `what` passed the deadline or heard another rank's call.
    private func stalled(in what: Collective, waited: Double, deadline: StallDeadline) -> Never {
        holdRollCall(saying: "\(activity): \(what), waiting \(formatSeconds(waited))", deadline: deadline,
                     stage: what.kind == .finish ? .finish : .arrival)
    }

    /// The roll call: tell every rank what this one waits in, hear who else answers within the grace period, have
    /// the lowest answering rank name the silent ones, and end the job.
    private func holdRollCall(saying mine: String, deadline: StallDeadline, stage: RollCall.Stage) -> Never {
        rollCallLock.withLock { _ in
            var message = RollCall.encode(mine)
            var sends = [MPI_Request?](repeating: cmpi_request_null(), count: size)
            message.withUnsafeMutableBytes { buffer in
                for other in 0..<size where other != rank {
                    _ = MPI_Isend(buffer.baseAddress, Int32(RollCall.bytes), cmpi_byte(), Int32(other), RollCall.tag, watch,
                                  &sends[other])
                }
            }
            answers[rank] = mine
            // Every answering rank has been waiting in a collective; a second or two is plenty for their answers, and
            // a long deadline earns a little more.
            let grace = min(max(2, deadline.seconds / 20), 15)
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(grace * 1e9)
            while DispatchTime.now().uptimeNanoseconds < end {
                _ = takeAnswers()
                for index in sends.indices where sends[index] != cmpi_request_null() {
                    var flag: Int32 = 0
                    _ = MPI_Test(&sends[index], &flag, cmpi_status_ignore())
                }
                if answers.count == size { break }  // everyone answered: nobody is stalled, the slow one arrived late
                usleep(1000)
            }
            let silent = (0..<size).filter { answers[$0] == nil }
            if rank == answers.keys.min() {
                let roll = RollCall.Result(silent: silent, answers: answers, hosts: hosts, processIDs: processIDs)
                let report = RollCall.report(roll, deadline: deadline, grace: grace, stage: stage)
                fflush(nil)
                _ = Array(report.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                MPI_Abort(world, deadline.exitCode)
            }
        }
        // The reporter ends the job; should it not manage to, end it from here after a moment.
        sleep(3)
        MPI_Abort(world, deadline.exitCode)
        exit(deadline.exitCode)
    }

    public func abort(code: Int32) -> Never {
        fflush(nil)
        MPI_Abort(world, code)
        exit(code)  // MPI_Abort does not return; this keeps the compiler and a broken MPI honest
    }

    /// Ends MPI. MPI_Finalize (and freeing a shared window) waits for every rank, so with a deadline the exit is
    /// watched like a collective: a polled barrier first, whose roll call names a rank that never gets there, then
    /// the watchdog over MPI's own teardown, for a rank that freezes after the barrier. Either way the job ends
    /// within the deadline (and the roll call's grace), with the deadline's exit code; what the run wrote stays.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        let watched = deadline != nil && size > 1
        if watched {
            activity = .exit
            try? barrier(.finish)  // a stall ends the process in there; an MPI error leaves MPI_Finalize to report
            transferWhat.withLock { $0 = (.exit, .finish) }
            transferStart.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing)
        }
        if callRequest != cmpi_request_null() {
            MPI_Cancel(&callRequest)
            MPI_Wait(&callRequest, cmpi_status_ignore())
        }
        for index in windows.indices {
            MPI_Win_unlock_all(windows[index])
            MPI_Win_free(&windows[index])
        }
        MPI_Comm_free(&watch)
        MPI_Finalize()
        if watched { transferStart.store(0, ordering: .releasing) }
    }

    /// Turns an MPI return code into a CommunicatorError with MPI's message.
    fileprivate static func check(_ code: Int32, _ call: @autoclosure () -> String) throws(CommunicatorError) {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw CommunicatorError("\(call()) failed: \(string(text))")
    }
}

/// An MPI_Iallreduce under way.
private final class MPIReduction: PendingReduction {
    var request = cmpi_request_null()
    private var done = false
    private unowned let communicator: MPICommunicator
    private let what: Collective

    init(communicator: MPICommunicator, what: Collective) {
        self.communicator = communicator
        self.what = what
    }

    func test() throws(CommunicatorError) -> Bool {
        guard !done else { return true }
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test")
        done = flag != 0
        return done
    }

    func wait() throws(CommunicatorError) {
        guard !done else { return }
        try communicator.complete(&request, what)
        done = true
    }
}

/// A collective, as a stall report names it ("all-reduce of 1863690 values"); formatted only for a report.
struct Collective: CustomStringConvertible {
    enum Kind { case allReduce, overlappedAllReduce, broadcast, sharedMemory, finish }
    let kind: Kind
    let count: Int
    let root: Int

    static func allReduce(count: Int, overlapped: Bool = false) -> Collective {
        Collective(kind: overlapped ? .overlappedAllReduce : .allReduce, count: count, root: 0)
    }
    static func broadcast(bytes: Int, root: Int) -> Collective { Collective(kind: .broadcast, count: bytes, root: root) }
    static func sharedMemory(bytes: Int) -> Collective { Collective(kind: .sharedMemory, count: bytes, root: 0) }
    /// The barrier before MPI_Finalize.
    static let finish = Collective(kind: .finish, count: 0, root: 0)

    var description: String {
        switch kind {
        case .allReduce: "all-reduce of \(count) values"
        case .overlappedAllReduce: "all-reduce of \(count) values (overlapped)"
        case .broadcast: "broadcast of \(count) bytes from rank \(root)"
        case .sharedMemory: "barrier around \(count) bytes of memory the host's ranks share"
        case .finish: "barrier before MPI_Finalize"
        }
    }
}

/// The roll call's messages and report.
enum RollCall {
    /// Each message: what the sending rank is doing, as UTF-8, NUL-padded.
    static let bytes = 256
    static let tag: Int32 = 7901

    static func encode(_ text: String) -> [UInt8] {
        var message = Array(text.utf8.prefix(bytes - 1))
        message += [UInt8](repeating: 0, count: bytes - message.count)
        return message
    }

    static func decode(_ message: [UInt8]) -> String {
        String(decoding: message.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// What a roll call found: the ranks that did not answer, what the others said they were doing, and where every
    /// rank runs.
    struct Result {
        let silent: [Int]
        let answers: [Int: String]
        let hosts: [String]
        let processIDs: [Int32]
    }

    /// Where the calling rank waited: for every rank to arrive at a collective, in a transfer every rank had
    /// arrived at (the watchdog's call), or at the end of the run.
    enum Stage { case arrival, transfer, finish }

    /// One message for the user: which ranks did not arrive, where, and what the others were doing.
    static func report(_ roll: Result, deadline: StallDeadline, grace: Double, stage: Stage = .arrival) -> String {
        let (silent, answers, hosts, processIDs) = (roll.silent, roll.answers, roll.hosts, roll.processIDs)
        func who(_ rank: Int) -> String { "rank \(rank) (host \(hosts[rank]), pid \(processIDs[rank]))" }
        var lines: [String] = []
        let exiting = answers.keys.sorted().filter { answers[$0]!.hasPrefix(Activity.exit.description) }
        if silent.isEmpty && !exiting.isEmpty && exiting.count < answers.count {
            lines.append("error: " + exiting.map(who).joined(separator: ", ") + " had left the run and waited to exit "
                         + "while the other ranks waited in a collective: the ranks disagree on where the run ends (a "
                         + "rank stopped on an error the others did not learn of?)")
        } else if silent.isEmpty {
            lines.append("error: a collective waited longer than the stall deadline (\(formatSeconds(deadline.seconds))); "
                         + "every rank answered the roll call, so the job was slow rather than stalled. A larger "
                         + "--stall-timeout lets it run")
        } else if stage == .transfer {
            lines.append("error: \(silent.count == 1 ? "" : "\(silent.count) ranks stalled: ")"
                         + silent.map(who).joined(separator: ", ")
                         + " froze during a transfer every rank had arrived at: it ran past the stall deadline "
                         + "(\(formatSeconds(deadline.seconds))), and \(silent.count == 1 ? "that rank" : "those ranks") did not "
                         + "answer a roll call for \(formatSeconds(grace)): stopped, swapping, or cut off from the network?")
        } else {
            lines.append("error: \(silent.count == 1 ? "" : "\(silent.count) ranks stalled: ")"
                         + silent.map(who).joined(separator: ", ")
                         + " did not arrive within the stall deadline (\(formatSeconds(deadline.seconds))) and did not "
                         + "answer a roll call for \(formatSeconds(grace)): stopped, swapping, or hung in I/O?")
        }
        for rank in answers.keys.sorted() {
            lines.append("  rank \(rank) (host \(hosts[rank])) was in \(answers[rank]!)")
        }
        lines.append(stage == .finish
            ? "  ending the job with exit \(deadline.exitCode); the run had finished, and the files it wrote are complete"
            : "  ending the job with exit \(deadline.exitCode); nothing was written after the last checkpoint, which "
                + "resumes the run (as a requeued job does)")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Seconds for a message: "5 s", "2.5 s", "300 s".
private func formatSeconds(_ seconds: Double) -> String {
    seconds >= 10 || seconds == seconds.rounded() ? "\(Int(seconds.rounded())) s" : "\((seconds * 10).rounded() / 10) s"
}

/// The text of a NUL-terminated C character buffer.
private func string(_ characters: [CChar]) -> String {
    String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
