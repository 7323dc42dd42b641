// A timeline of the run (--trace FILE): every rank records its phases, and at the end all ranks' events go to
// rank 0, which writes one Chrome trace-event JSON file (ui.perfetto.dev, chrome://tracing, Speedscope read it).
//
// Tracks: one process per rank ("rank 2 on host-b"), and in it one thread for the step (step, all-reduce wait,
// optimizer, evaluation, checkpoint) and one per worker thread (data, forward, backward), so a slow worker or a
// rank that keeps the others waiting shows at a glance. Times are microseconds from an origin every rank takes
// as it leaves the same collective at start (a barrier of three all-reduces), which aligns the ranks' clocks to
// the collective's exit skew: microseconds on one host, tens of microseconds across hosts.
import Dispatch
import Distributed
import Foundation
import Support

/// The phases on the timeline.
public enum TracePhase: Int, CaseIterable {
    case step, data, forward, backward, allReduceWait, optimizer, evaluation, checkpoint

    public var name: String {
        switch self {
        case .step: "step"
        case .data: "data"
        case .forward: "forward"
        case .backward: "backward"
        case .allReduceWait: "all-reduce wait"
        case .optimizer: "optimizer"
        case .evaluation: "evaluation"
        case .checkpoint: "checkpoint"
        }
    }
}

/// One rank's events, on tracks that each belong to one thread (no locks: a worker appends to its own track).
public final class TraceRecorder: @unchecked Sendable {
    /// Events kept per track at most (about 64 MB per rank); later ones are counted and dropped.
    public static let maximumEventsPerTrack = 1 << 20
    private static let fields = 4  // phase, start µs, duration µs, step

    public let origin: DispatchTime
    /// The step being computed (set by the trainer before the workers start on it).
    public var step = 0
    private var tracks: [[Double]]
    private var dropped: [Int]

    /// Aligns this rank's clock with the others' (every rank must call this at the same point) and starts recording.
    public init(tracks count: Int, communicator: Communicator) throws {
        for _ in 0..<3 {
            do { _ = try communicator.allReduce(Int64(0), .max) } catch {
                throw RunError(.ranksDisagree, "aligning the trace's clocks: \(error)")
            }
        }
        origin = .now()
        tracks = Array(repeating: [], count: count)
        dropped = Array(repeating: 0, count: count)
        for t in tracks.indices { tracks[t].reserveCapacity(4096) }
    }

    /// Records `phase` from `start` to `end` on `track` (0: the step's thread; 1 + w: worker w).
    public func record(_ phase: TracePhase, track: Int, from start: DispatchTime, to end: DispatchTime = .now(), step: Int? = nil) {
        guard tracks[track].count < Self.maximumEventsPerTrack * Self.fields else {
            dropped[track] += 1
            return
        }
        let begin = Double(Int64(start.uptimeNanoseconds) - Int64(origin.uptimeNanoseconds)) / 1000
        // Four appends, no temporary array: this runs in every step.
        tracks[track].append(Double(phase.rawValue))
        tracks[track].append(begin)
        tracks[track].append(Double(end.uptimeNanoseconds - start.uptimeNanoseconds) / 1000)
        tracks[track].append(Double(step ?? self.step))
    }

    /// Gathers every rank's events on rank 0, which writes `path` (atomically); every rank learns the outcome.
    public func write(to path: String, communicator: Communicator) throws {
        // Sizes first, then one buffer with a slot per rank: [track count, dropped, host name (64 bytes), then per
        // track: event count, events].
        let mine = serialized()
        var longest = Int64(mine.count)
        do { longest = try communicator.allReduce(longest, .max) } catch {
            throw RunError(.ranksDisagree, "gathering the trace: \(error)")
        }
        let slot = Int(longest)
        var all = [Double](repeating: 0, count: slot * communicator.size)
        all.replaceSubrange((communicator.rank * slot)..<(communicator.rank * slot + mine.count), with: mine)
        do {
            try all.withUnsafeMutableBufferPointer { (buffer) in try communicator.allReduce(buffer, .sum) }
        } catch {
            throw RunError(.ranksDisagree, "gathering the trace: \(error)")
        }
        try communicator.agree {
            guard communicator.rank == 0 else { return }
            let text = Self.json(ranks: (0..<communicator.size).map { Array(all[($0 * slot)..<(($0 + 1) * slot)]) })
            do { try writeFileAtomically(Array(text.utf8), to: path) } catch {
                throw RunError(.cannotWrite, "--trace: \(error)")
            }
        }
    }

    private func serialized() -> [Double] {
        var host = Array(ProcessInfo.processInfo.hostName.utf8.prefix(64)).map(Double.init)
        host += Array(repeating: 0, count: 64 - host.count)
        var out: [Double] = [Double(tracks.count), Double(dropped.reduce(0, +))] + host
        for track in tracks {
            out.append(Double(track.count / Self.fields))
            out += track
        }
        return out
    }

    /// The trace-event JSON of every rank's serialized events.
    public static func json(ranks: [[Double]]) -> String {
        var events: [String] = []
        var dropped = 0
        for (rank, data) in ranks.enumerated() {
            // Process and thread ids unique across the file (Perfetto takes thread ids as system-wide, and pid 0 as
            // the kernel's): rank r is process r + 1, its tracks threads 1000 (r + 1) + track.
            let pid = rank + 1
            func tid(_ track: Int) -> Int { 1000 * pid + track }
            let trackCount = Int(data[0])
            dropped += Int(data[1])
            let host = String(decoding: data[2..<66].prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
            events.append(#"{"name":"process_name","ph":"M","pid":\#(pid),"tid":\#(tid(0)),"args":{"name":\#(Support.json("rank \(rank) on \(host)"))}}"#)
            events.append(#"{"name":"process_sort_index","ph":"M","pid":\#(pid),"tid":\#(tid(0)),"args":{"sort_index":\#(rank)}}"#)
            var at = 66
            for track in 0..<trackCount {
                let name = track == 0 ? "step" : "worker \(track - 1)"
                events.append(#"{"name":"thread_name","ph":"M","pid":\#(pid),"tid":\#(tid(track)),"args":{"name":"\#(name)"}}"#)
                let count = Int(data[at])
                at += 1
                // In time order on each track (a step's span is recorded after the phases inside it).
                let order = (0..<count).sorted { data[at + fields * $0 + 1] < data[at + fields * $1 + 1] }
                for e in order {
                    let base = at + fields * e
                    let phase = TracePhase(rawValue: Int(data[base]))!
                    events.append(#"{"name":"\#(phase.name)","cat":"train","ph":"X","pid":\#(pid),"tid":\#(tid(track)),"ts":\#(format(data[base + 1])),"dur":\#(format(data[base + 2])),"args":{"step":\#(Int(data[base + 3]))}}"#)
                }
                at += fields * count
            }
        }
        return "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"mnist-dist \(Version.string)\",\"ranks\":\(ranks.count),"
            + "\"dropped_events\":\(dropped)},\"traceEvents\":[\n" + events.joined(separator: ",\n") + "\n]}\n"
    }

    private static func format(_ microseconds: Double) -> String { String(format: "%.3f", microseconds) }
}
