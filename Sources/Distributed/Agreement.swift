// Agreeing on an outcome: a step that may fail on some ranks (a missing file on one host) ends every rank the same
// way, instead of leaving the others waiting in a collective.
import Support

extension Communicator {
    /// Runs `body` on every rank and agrees on the outcome, so that a failure on some ranks (a missing file on
    /// one host) ends every rank the same way instead of leaving the others waiting in a collective.
    ///
    /// If any rank's `body` throws, every rank throws a `RunError` (a `FileError` becomes one by its kind) with the
    /// code of the lowest failing rank; only
    /// that rank's error carries the message (naming its host when the job spans several), so it is printed once.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var failure = RunError(.software, nil)
        do {
            result = try body()
        } catch let error as RunError {
            failure = error
        } catch let error as FileError {
            failure = RunError(error)
        } catch {
            failure = RunError(.software, "\(error)")
        }
        let failing: Int64
        let code: Int64
        do {
            failing = try allReduce(result == nil ? Int64(rank) : Int64(size), .min)
            code = try allReduce(result == nil && Int64(rank) == failing ? Int64(failure.code.rawValue) : 0, .max)
        } catch {
            throw RunError(.ranksDisagree, "\(error)")
        }
        if failing == Int64(size), let result { return result }
        // Across hosts, say which one failed: a file missing on one node is the typical cause.
        let message = failure.message.map { localSize < size ? "\($0) (on host \(hostName(ofRank: rank)))" : $0 }
        throw RunError(ExitCode(rawValue: Int32(code)) ?? .software, Int64(rank) == failing ? message : nil)
    }
}

extension Communicator {
    /// Every rank's `value`, indexed by rank: each rank writes its own slot and a sum gathers them.
    public func allGather(_ value: Int64) throws(CommunicatorError) -> [Int64] {
        var all = [Int64](repeating: 0, count: size)
        all[rank] = value
        try all.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in try allReduce(buffer, .sum) }
        return all
    }

    /// Every rank's `value`, indexed by rank.
    public func allGather(_ value: Double) throws(CommunicatorError) -> [Double] {
        var all = [Double](repeating: 0, count: size)
        all[rank] = value
        try all.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in try allReduce(buffer, .sum) }
        return all
    }
}
