// The sum through memory the ranks of one host share, on thread ranks (the MPI window is tested under mpirun by the
// exact sum's end-to-end checksums).
import Distributed
import Testing

@Suite("The host-shared Int32 sum")
struct HostSharedSumTests {
    /// Rank r's contribution to sum number `round`: values that differ per rank, element and round, of both signs,
    /// some near Int32's ends, so that a missed or doubled slot or a stale value shows.
    static func contribution(rank: Int, element: Int, round: Int) -> Int32 {
        let value = (element &* 7919 &+ rank &* 104_729 &+ round &* 15_485_863) % 2_000_003 - 1_000_001
        return element % 97 == 0 ? (rank == 0 ? Int32.max / 4 : Int32.min / 4) &+ Int32(value) : Int32(value)
    }

    @Test("every rank reads the sum of every rank's contribution, in slices that cover all values; round after round",
          arguments: [(2, 10_000), (3, 9_001), (5, 3), (4, 1)])
    func sums(ranks: Int, count: Int) throws {
        let failures = try ThreadGroup.run(ranks: ranks) { communicator -> [String] in
            guard let shared = try communicator.hostSharedSum(count: count).sum else { return ["rank \(communicator.rank): no shared sum"] }
            var failures: [String] = []
            for round in 0..<3 {
                for i in 0..<count { shared.contribution[i] = Self.contribution(rank: communicator.rank, element: i, round: round) }
                try shared.sum(threads: round == 2 ? 2 : 1)
                for i in 0..<count {
                    let expected = (0..<ranks).reduce(Int32(0)) { $0 &+ Self.contribution(rank: $1, element: i, round: round) }
                    if shared.result[i] != expected {
                        failures.append("rank \(communicator.rank), round \(round), element \(i): \(shared.result[i]) != \(expected)")
                        break
                    }
                }
            }
            return failures
        }
        #expect(failures.flatMap { $0 }.isEmpty, "\(failures.flatMap { $0 }.prefix(5))")
    }

    @Test("one rank, or a group that all-reduces, has none, and says why")
    func unavailable() throws {
        let alone = try ThreadGroup.run(ranks: 1) { try $0.hostSharedSum(count: 8) }
        let allReducing = try ThreadGroup.run(ranks: 2, sharedSums: false) { try $0.hostSharedSum(count: 8) }
        for sharing in alone + allReducing {
            guard case .unavailable(let reason) = sharing else { Issue.record("shared memory where there should be none"); continue }
            #expect(!reason.isEmpty)
        }
        #expect(SingleProcessCommunicator().hostSharedSum(count: 8).sum == nil)
    }
}
