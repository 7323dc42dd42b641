// The one file that talks to MPI. Every call's return code is checked; MPI's error handler is set to return codes
// (not to abort silently), so a failure becomes a CommunicatorError with MPI's own explanation.
import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// A communicator over MPI_COMM_WORLD.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    public let implementation: String
    private let world: MPI_Comm
    private var finalized = false

    /// Initialises MPI (thread level FUNNELED: only the main thread calls MPI) and reads the job's layout.
    public init() throws(CommunicatorError) {
        var provided: Int32 = 0
        var argc: Int32 = 0
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            let code = MPI_Init_thread(&argc, nil, cmpi_thread_funneled(), &provided)
            guard code == cmpi_success() else { throw CommunicatorError("MPI_Init_thread failed (code \(code))") }
        }
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
        try Self.check(MPI_Comm_rank(local, &value), "MPI_Comm_rank (host)")
        localRank = Int(value)
        try Self.check(MPI_Comm_size(local, &value), "MPI_Comm_size (host)")
        localSize = Int(value)
        MPI_Comm_free(&local)
        var version = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let full = string(version)
        implementation = full.split(separator: ",").first.map(String.init) ?? "MPI"
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
        guard count > 0 else { return }
        let (type, width, op) = Self.describe(element, operation)
        // MPI counts are 32-bit: reduce larger buffers in pieces.
        var start = 0
        while start < count {
            let piece = min(count - start, Int(Int32.max))
            try Self.check(MPI_Allreduce(cmpi_in_place(), buffer.baseAddress! + start * width, Int32(piece), type, op, world),
                           "MPI_Allreduce of \(count) values")
            start += piece
        }
    }

    public func startAllReduce(_ buffer: UnsafeMutableRawBufferPointer, count: Int, element: ReductionElement,
                               operation: ReductionOperation) throws(CommunicatorError) -> PendingReduction {
        guard count > 0 else { return FinishedReduction() }
        guard count <= Int(Int32.max) else {
            try allReduce(buffer, count: count, element: element, operation: operation)  // too large for one request
            return FinishedReduction()
        }
        let (type, _, op) = Self.describe(element, operation)
        let pending = MPIReduction()
        try Self.check(MPI_Iallreduce(cmpi_in_place(), buffer.baseAddress, Int32(count), type, op, world, &pending.request),
                       "MPI_Iallreduce of \(count) values")
        return pending
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws(CommunicatorError) {
        var start = 0
        while start < buffer.count {
            let piece = min(buffer.count - start, Int(Int32.max))
            try Self.check(MPI_Bcast(buffer.baseAddress! + start, Int32(piece), cmpi_byte(), Int32(root), world),
                           "MPI_Bcast of \(buffer.count) bytes")
            start += piece
        }
    }

    public func abort(code: Int32) -> Never {
        fflush(nil)
        MPI_Abort(world, code)
        exit(code)  // MPI_Abort does not return; this keeps the compiler and a broken MPI honest
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        MPI_Finalize()
    }

    /// Turns an MPI return code into a CommunicatorError with MPI's message.
    fileprivate static func check(_ code: Int32, _ call: String) throws(CommunicatorError) {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw CommunicatorError("\(call) failed: \(string(text))")
    }
}

/// An MPI_Iallreduce under way.
private final class MPIReduction: PendingReduction {
    var request = cmpi_request_null()
    private var done = false

    func test() throws(CommunicatorError) -> Bool {
        guard !done else { return true }
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test")
        done = flag != 0
        return done
    }

    func wait() throws(CommunicatorError) {
        guard !done else { return }
        try MPICommunicator.check(MPI_Wait(&request, cmpi_status_ignore()), "MPI_Wait")
        done = true
    }
}

/// The text of a NUL-terminated C character buffer.
private func string(_ characters: [CChar]) -> String {
    String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
