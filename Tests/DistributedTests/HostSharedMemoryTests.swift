// Memory the ranks of one host share, on thread ranks (the MPI window is tested under mpirun by the exact sum's
// end-to-end checksums, with and without it).
import Distributed
import Testing
import TestSupport

@Suite("Memory the host's ranks share", .limit(minutes: 5))
struct HostSharedMemoryTests {
    @Test("every rank sees the same memory; what a rank writes before a barrier, every rank reads after it; round after round",
          arguments: [2, 3, 5])
    func barrierOrdersWrites(ranks: Int) throws {
        let count = 1000
        let failures = try ThreadGroup.run(ranks: ranks) { communicator -> [String] in
            guard let memory = try communicator.hostSharedMemory(bytes: ranks * count * 8).memory else { return ["no memory"] }
            let values = memory.base.bindMemory(to: Int64.self, capacity: ranks * count)
            var failures: [String] = []
            for round in 0..<4 {
                for i in 0..<count { values[communicator.rank * count + i] = Int64(round * 1_000_000 + communicator.rank * count + i) }
                try memory.barrier()
                for other in 0..<ranks {
                    let i = (round * 37 + other) % count
                    if values[other * count + i] != Int64(round * 1_000_000 + other * count + i) {
                        failures.append("rank \(communicator.rank), round \(round): rank \(other)'s value \(i) is \(values[other * count + i])")
                    }
                }
                try memory.barrier()  // every rank has read before anyone writes the next round
            }
            return failures
        }
        #expect(failures.flatMap { $0 }.isEmpty, "\(failures.flatMap { $0 }.prefix(5))")
    }

    @Test("one rank, one process, or a group that all-reduces has none, and says why")
    func unavailable() throws {
        let alone = try ThreadGroup.run(ranks: 1) { try $0.hostSharedMemory(bytes: 64) }
        let allReducing = try ThreadGroup.run(ranks: 2, sharesMemory: false) { try $0.hostSharedMemory(bytes: 64) }
        for sharing in alone + allReducing + [SingleProcessCommunicator().hostSharedMemory(bytes: 64)] {
            guard case .unavailable(let reason) = sharing else { Issue.record("shared memory where there should be none"); continue }
            #expect(!reason.isEmpty)
        }
    }
}
