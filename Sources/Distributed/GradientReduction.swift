// How a step's partial gradients become the gradient of the global batch: one strategy per type, chosen once when
// a run starts (`GradientReduction.make`); the training step calls `reduce`, steps the range it returns, calls
// `finish`, and never asks which strategy it has.
//
// A rank computes its shard's gradient in parts (one per worker thread, or one per micro-batch for the exact sum),
// each a Float buffer of the flat gradient's layout, written where the reducer's `layout` says. What the sum
// guarantees is the strategy's:
//   HostSum        the ranks of a host share one memory: each sums and steps its 1/k slice over every rank's parts,
//                  with any of the three sums below; across hosts each rank all-reduces its slice with its peers
//                  (HostSum.swift), with --overlap per bucket during backward. Used whenever it can be (not with
//                  one rank per host, hosts of unequal rank counts, too little shared memory, or the Int64 exact sum).
//   FloatSum       Float additions, then a Float all-reduce: half the bytes, but the low bits depend on how the
//                  batch was split and on MPI's reduction order.
//   DoubleSum      each Float part converted to Double, summed across parts and ranks in Double, rounded once:
//                  exact while the summed values' exponents span less than Double's 29 extra bits, and so the
//                  same bits whatever the split or the order.
//   OverlappedSum  either of those sums, started per bucket of parameters while backward is still running.
//   FixedPointSum  fixed micro-batches summed in fixed point: the same bits at any rank and thread count; Int32
//                  on the wire (Float's bytes) for batches of up to 64 micro-batches, Int64 beyond
//                  (FixedPointSum.swift); with overlap, the Int32 sum started per bucket during the backward of
//                  each rank's last micro-batch.
import Dispatch
import Support

/// Which sum the ranks' gradients go through.
public enum ReductionPrecision: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Fixed micro-batches summed exactly in fixed point (`FixedPointSum`: Int32 blocks of 256 values for batches of up
    /// to 64 micro-batches, Int64 per tensor beyond): the same bits at every rank count,
    /// thread count and thread mode. Costs the micro-batches' smaller products and a conversion pass.
    case exact
    /// Sum in Double and round once: the result does not depend on how the batch was split or on MPI's reduction
    /// order, so N ranks reproduce one process with N workers bit for bit. Twice the bytes on the wire.
    case double
    /// Sum in Float: half the bytes, but the low bits depend on the split, and the CNN's relu and max-pool decisions
    /// amplify them (measured: 5e-4 of the largest parameter after 20 Adadelta steps between 1 and 3 workers).
    case float
    public var description: String { rawValue }
}

/// Callbacks a reducer gives backward, to start communicating before backward has finished.
public struct BackwardHooks {
    /// Called with a parameter's index once its gradient is final.
    public let parameterReady: (Int) -> Void
    /// Called after each pullback and between the chunks of a long one (`Tape.backward`'s `progress`), to let
    /// started reductions progress (Open MPI's TCP transport moves data only inside MPI calls).
    public let progress: () -> Void
    /// For a reducer that sums micro-batches: called with this rank's micro-batch parts before the backward of its
    /// last one, which the two hooks above then follow (every other part is final by then). Nil: the hooks follow
    /// the one backward of a single part.
    public var microBatchParts: ((ArraySlice<UnsafeMutableBufferPointer<Float>>) -> Void)? = nil
}

/// Contiguous ranges of the flat gradient, each of whole parameters, taken from its end (backward finishes the last
/// layer first) until a range holds at least `minimumBytes` of Float gradients; the first parameter closes the last.
struct GradientBuckets {
    /// Each bucket's elements, the last parameters' first.
    let ranges: [Range<Int>]
    /// The bucket each parameter belongs to, and how many parameters each bucket has.
    let bucketOf: [Int]
    let members: [Int]

    init(parameterRanges: [Range<Int>], count: Int, minimumBytes: Int) {
        var ranges: [Range<Int>] = [], bucketOf = [Int](repeating: 0, count: parameterRanges.count), members: [Int] = []
        var end = count, parameters = 0
        for index in parameterRanges.indices.reversed() {
            let start = parameterRanges[index].lowerBound
            bucketOf[index] = ranges.count
            parameters += 1
            if (end - start) * 4 >= minimumBytes || index == 0 {
                ranges.append(start..<end)
                members.append(parameters)
                end = start
                parameters = 0
            }
        }
        self.ranges = ranges
        self.bucketOf = bucketOf
        self.members = members
    }

    var description: String { "\(ranges.count) bucket\(ranges.count == 1 ? "" : "s")" }
}

/// The one bucket scheduler of the reducers that start during backward: counts each bucket's parameters down as
/// backward makes them final, and says which bucket a parameter completes.
struct BucketSchedule {
    let buckets: GradientBuckets
    private var remaining: [Int]

    init(_ buckets: GradientBuckets) {
        self.buckets = buckets
        remaining = buckets.members
    }

    /// Starts a step: every bucket waits for all its parameters.
    mutating func reset() { remaining = buckets.members }

    /// Parameter `parameter` is final: the bucket it completes, if it completes one.
    mutating func ready(_ parameter: Int) -> Int? {
        let bucket = buckets.bucketOf[parameter]
        remaining[bucket] -= 1
        return remaining[bucket] == 0 ? bucket : nil
    }

    /// Whether every bucket has been completed this step.
    var complete: Bool { remaining.allSatisfy { $0 == 0 } }
}

/// The all-reduces a reducer starts during backward: progressed after each pullback and between the chunks of a long
/// one, waited for after backward. The time spent starting and progressing them is the step's all-reduce time spent
/// inside backward.
struct InFlightReductions {
    private var requests: [PendingReduction] = []
    /// The first error a start or a progress call met; `finish` throws it.
    private(set) var failure: CommunicatorError?
    private(set) var secondsDuringBackward = 0.0

    /// Forgets the last step's.
    mutating func reset() {
        requests.removeAll(keepingCapacity: true)
        failure = nil
        secondsDuringBackward = 0
    }

    /// Runs `body`, which starts one all-reduce (and may first prepare its buffer), timed; an error is kept.
    mutating func start(_ body: () throws(CommunicatorError) -> PendingReduction) {
        let begin = DispatchTime.now()
        do { requests.append(try body()) } catch { failure = error }
        secondsDuringBackward += seconds(begin)
    }

    /// Lets every started all-reduce progress.
    mutating func progress() {
        guard !requests.isEmpty else { return }
        let begin = DispatchTime.now()
        for request in requests {
            do { _ = try request.test() } catch { failure = error }
        }
        secondsDuringBackward += seconds(begin)
    }

    /// Waits for every started all-reduce; throws the first error any start or progress call met.
    mutating func finish() throws(CommunicatorError) {
        if let failure { throw failure }
        for request in requests { try request.wait() }
        requests.removeAll(keepingCapacity: true)
    }
}

/// What the optimizer reads after a step's reduction: the elements this rank steps, and where their Float gradient is.
public struct ReducedGradient {
    /// The elements this rank steps: every one, or, where the host's ranks share the step (`HostSum`), this rank's
    /// slice.
    public let range: Range<Int>
    /// Writes the Float gradient of a block of `range` to `out[0..<block.count]`: a sum kept wider than Float
    /// (Double, fixed point), or summed from the host's parts, rounded a block at a time, so that rounding, the
    /// finiteness check and the optimizer's step walk it once (`Optimizer.stepIfFinite(values:range:threads:rounding:)`).
    /// Callable from several threads at once for disjoint blocks, until the next step. Nil: the Float gradient is in
    /// the first part.
    public let rounding: ((Range<Int>, UnsafeMutablePointer<Float>) -> Void)?

    public init(range: Range<Int>, rounding: ((Range<Int>, UnsafeMutablePointer<Float>) -> Void)?) {
        self.range = range
        self.rounding = rounding
    }
}

/// How backward must hand a reducer its parts, fixed when the run starts.
public struct PartLayout {
    /// Cut the batch into fixed micro-batches of this size, each computed as a unit, one part each (nil: a contiguous
    /// shard per rank, and a part per worker within it).
    public var microBatches: MicroBatches?
    /// Where this rank's parts are written, the j-th part into the j-th slot (each as long as the gradient): memory
    /// the host's ranks share, which the reducer then sums without copies. Empty: buffers of the workers' own.
    public var slots: [UnsafeMutablePointer<Float>] = []

    public init(microBatches: MicroBatches? = nil, slots: [UnsafeMutablePointer<Float>] = []) {
        self.microBatches = microBatches
        self.slots = slots
    }
}

/// Sums a step's partial gradients over this rank's parts and all ranks.
///
/// A step is: `backwardHooks(batch:)` (reducers that start during backward), backward into parts laid out as
/// `layout` says, `reduce(_:batch:)`, the optimizer's step on the returned range, then `finish(finite:)`.
public protocol GradientReducer: AnyObject {
    /// What it sums how, for the start block ("summed in Double, one all-reduce after backward").
    var summary: String { get }
    /// How backward lays out the parts.
    var layout: PartLayout { get }
    /// Hooks for the backward of a step on the global `batch` (positions in the epoch's order), for reducers that
    /// overlap it; nil for those that wait until it has finished. Asking for them starts a step.
    func backwardHooks(batch: Range<Int>) -> BackwardHooks?
    /// Seconds of the last step's communication that ran inside backward (to count as all-reduce, not backward).
    var secondsDuringBackward: Double { get }
    /// Sums `parts` (this rank's, laid out as `layout` says, of equal length; the later ones may be used as
    /// scratch) over every rank for a step on the global `batch` (positions in the epoch's order), and says what
    /// the optimizer reads. Every rank calls it once per step.
    func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient
    /// After the optimizer has stepped the reduced range: whether every rank's gradient was finite (`finite` is this
    /// rank's), with every rank's stepped parameters visible to this one. A collective where ranks share the step.
    func finish(finite: Bool) throws(CommunicatorError) -> Bool
    /// Bytes each rank hands to the all-reduce in the last step (0 on one rank): what a ring all-reduce moves
    /// about twice over the wire. Where the host's ranks share memory: the bytes of other ranks' parts it read.
    var bytesPerStep: Int { get }
}

extension GradientReducer {
    public var layout: PartLayout { PartLayout() }
    public func backwardHooks(batch: Range<Int>) -> BackwardHooks? { nil }
    public var secondsDuringBackward: Double { 0 }
    public func finish(finite: Bool) -> Bool { finite }

    /// The whole Float sum of `parts` over every rank, left in the first part: `reduce` and the rounding, without an
    /// optimizer step (checks, and callers that want the gradient itself). Not for reducers that share the step.
    public func sum(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) {
        let total = parts.first!
        let reduced = try reduce(parts, batch: batch)
        require(reduced.range == 0..<total.count, "\(type(of: self)).sum: this rank steps \(reduced.range) only")
        if let rounding = reduced.rounding, let base = total.baseAddress { rounding(reduced.range, base) }
    }
}

public enum GradientReduction {
    /// The end of an all-reducing strategy's summary: nothing on one rank, else when it all-reduces and, if the
    /// host's ranks could not share the step, why.
    static func allReduceSummary(_ communicator: Communicator, notShared: String?) -> String {
        communicator.size > 1 ? ", one all-reduce after backward" + (notShared.map { " (\($0))" } ?? "") : ""
    }

    /// How many parts a rank hands a reducer that shares the step with the host's other ranks (`HostSum`): one per
    /// worker, or for the exact sum the most micro-batches a rank computes; or why the step cannot be shared
    /// whatever the memory: one rank, or a batch of more than 64 micro-batches (the Int64 sum).
    public static func sharedStepParts(precision: ReductionPrecision, workers: Int, microBatches: MicroBatches,
                                       batchSize: Int, ranks: Int) -> Result<Int, HostStepUnavailable> {
        guard ranks > 1 else { return .failure(HostStepUnavailable("one rank")) }
        guard precision == .exact else { return .success(workers) }
        let terms = microBatches.count(of: 0..<batchSize)
        guard NarrowFixedPoint.valueBits(terms: terms) != nil else {
            return .failure(HostStepUnavailable("\(terms) micro-batches a batch: the Int64 sum"))
        }
        return .success((terms + ranks - 1) / ranks)
    }

    /// The reducer for a run: `precision` says how values are summed. With `host` (memory every rank maps, from
    /// `HostStepMemory.make`), the ranks sum and step one slice each there (`HostSum`), and `overlap` starts each
    /// slice's all-reduce with the other hosts per bucket during backward; otherwise they all-reduce, and `overlap`
    /// starts bucketed all-reduces during backward (for the exact sum, during the backward of each rank's last
    /// micro-batch). Overlap needs a single worker per rank and more than one host or rank to mean anything.
    /// - Parameter parameterRanges: each parameter's elements in the flat gradient, in layout order.
    /// - Parameter gradient: the buffer backward writes the single part into (for `overlap`).
    /// - Parameters:
    ///   - microBatches: how the exact sum cuts the batch.
    ///   - threads: the rank's threads, for reducers that convert.
    public static func make(precision: ReductionPrecision, overlap: Bool, parts: Int, communicator: Communicator,
                            parameterRanges: [Range<Int>], gradient: UnsafeMutableBufferPointer<Float>,
                            microBatches: MicroBatches, host: HostStepMemory? = nil, notShared: String? = nil,
                            threads: Int) -> GradientReducer {
        if let host {
            return HostSum(precision: precision, memory: host, tensors: parameterRanges,
                           microBatches: precision == .exact ? microBatches : nil, threads: threads, overlap: overlap && parts == 1)
        }
        let overlapping = overlap && parts == 1 && communicator.size > 1
        switch precision {
        case .exact:
            return FixedPointSum(communicator: communicator, tensors: parameterRanges, count: gradient.count,
                                 microBatches: microBatches, threads: threads, overlap: overlapping, notShared: notShared)
        case .double where overlapping, .float where overlapping:
            return OverlappedSum(precision: precision, communicator: communicator, parameterRanges: parameterRanges,
                                 gradient: gradient)
        case .double: return DoubleSum(communicator: communicator, count: gradient.count, notShared: notShared)
        case .float: return FloatSum(communicator: communicator, notShared: notShared)
        }
    }
}

// MARK: The strategies

/// Float additions of the parts in order, then one Float all-reduce.
public final class FloatSum: GradientReducer {
    let communicator: Communicator
    /// Why the host's ranks do not share the step (for the summary).
    let notShared: String?
    public init(communicator: Communicator, notShared: String? = nil) {
        self.communicator = communicator
        self.notShared = notShared
    }

    public var summary: String {
        "gradients summed in Float" + GradientReduction.allReduceSummary(communicator, notShared: notShared)
    }

    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient {
        let total = parts.first!
        for part in parts.dropFirst() { ReductionKernels.add(part, into: total) }
        try communicator.allReduceSum(total)
        bytesPerStep = communicator.size > 1 ? total.count * 4 : 0
        return ReducedGradient(range: 0..<total.count, rounding: nil)
    }

    public private(set) var bytesPerStep = 0
}

/// The parts summed in Double, all-reduced in Double, rounded to Float once.
public final class DoubleSum: GradientReducer {
    let communicator: Communicator
    let notShared: String?
    /// The Double sum, allocated once.
    private var sum: [Double]
    /// `round(_:into:)`, made once (a step allocates nothing).
    private lazy var rounding: (Range<Int>, UnsafeMutablePointer<Float>) -> Void = { [unowned self] in round($0, into: $1) }

    public init(communicator: Communicator, count: Int, notShared: String? = nil) {
        self.communicator = communicator
        self.notShared = notShared
        sum = [Double](repeating: 0, count: communicator.size > 1 ? count : 0)
    }

    public var summary: String {
        "gradients summed in Double" + GradientReduction.allReduceSummary(communicator, notShared: notShared)
    }

    /// On one rank the sum and its rounding are one pass, into the first part; on several the Double sum is kept
    /// and rounded a block at a time by the step.
    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient {
        let total = parts.first!
        guard communicator.size > 1 else {
            // One part: its Double sum rounds back to itself.
            if parts.count > 1 { ReductionKernels.exactSumRounded(parts) }  // nothing to send: no Double buffer
            return ReducedGradient(range: 0..<total.count, rounding: nil)
        }
        require(sum.count == total.count, "DoubleSum: \(total.count) gradients, made for \(sum.count)")
        try sum.withUnsafeMutableBufferPointer { (sum) throws(CommunicatorError) in
            ReductionKernels.exactSum(parts, into: sum)
            try communicator.allReduce(sum, .sum)
        }
        bytesPerStep = total.count * 8
        return ReducedGradient(range: 0..<total.count, rounding: rounding)
    }

    private func round(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        require(range.lowerBound >= 0 && range.upperBound <= sum.count, "DoubleSum.round: range \(range) of \(sum.count)")
        sum.withUnsafeBufferPointer { sum in
            ReductionKernels.round(UnsafeBufferPointer(rebasing: sum[range]), into: UnsafeMutableBufferPointer(start: out, count: range.count))
        }
    }

    public private(set) var bytesPerStep = 0
}

/// Buckets of parameters, last layer first (the order backward finishes them), each all-reduced with
/// MPI_Iallreduce as soon as all its gradients are final; `reduce` only waits. In Double, each bucket is converted
/// when it starts and rounded back at the end, so the result is `DoubleSum`'s.
public final class OverlappedSum: GradientReducer {
    let communicator: Communicator
    let precision: ReductionPrecision
    private let gradient: UnsafeMutableBufferPointer<Float>
    private var schedule: BucketSchedule
    private var inFlight = InFlightReductions()
    /// The gradient in Double, for precision `.double`; allocated once.
    private var wide: [Double] = []
    public var secondsDuringBackward: Double { inFlight.secondsDuringBackward }

    /// Buckets of at least `minimumBytes` of Float gradients, built from the last parameter backwards.
    public init(precision: ReductionPrecision, communicator: Communicator, parameterRanges: [Range<Int>],
                gradient: UnsafeMutableBufferPointer<Float>, minimumBytes: Int = 1 << 20) {
        require(precision != .exact, "OverlappedSum: the exact sum overlaps in FixedPointSum")
        self.precision = precision
        self.communicator = communicator
        self.gradient = gradient
        schedule = BucketSchedule(GradientBuckets(parameterRanges: parameterRanges, count: gradient.count, minimumBytes: minimumBytes))
        if precision == .double { wide = [Double](repeating: 0, count: gradient.count) }
    }

    public var summary: String {
        "gradients summed in \(precision == .double ? "Double" : "Float"), all-reduce overlapped with backward "
            + "(\(schedule.buckets.description))"
    }

    public func backwardHooks(batch: Range<Int>) -> BackwardHooks? {
        schedule.reset()
        inFlight.reset()
        return BackwardHooks(parameterReady: { [unowned self] in parameterReady($0) },
                             progress: { [unowned self] in inFlight.progress() })
    }

    private func parameterReady(_ parameter: Int) {
        guard let bucket = schedule.ready(parameter) else { return }
        let range = schedule.buckets.ranges[bucket]
        inFlight.start { () throws(CommunicatorError) in
            switch precision {
            case .double:
                return try wide.withUnsafeMutableBufferPointer { (wide) throws(CommunicatorError) in
                    let slice = UnsafeMutableBufferPointer(rebasing: wide[range])
                    for i in range { wide[i] = Double(gradient[i]) }
                    return try communicator.startAllReduce(UnsafeMutableRawBufferPointer(slice), count: range.count,
                                                           element: .double, operation: .sum)
                }
            case .float, .exact:
                let slice = UnsafeMutableBufferPointer(rebasing: gradient[range])
                return try communicator.startAllReduce(UnsafeMutableRawBufferPointer(slice), count: range.count,
                                                       element: .float, operation: .sum)
            }
        }
    }

    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient {
        require(parts.count == 1 && parts.first!.baseAddress == gradient.baseAddress,
                "OverlappedSum: backward must write one part into the buffer the reducer was made for")
        try inFlight.finish()
        return ReducedGradient(range: 0..<gradient.count, rounding: precision == .double ? rounding : nil)
    }

    /// The Double sum's elements `range`, rounded into `out`.
    private lazy var rounding: (Range<Int>, UnsafeMutablePointer<Float>) -> Void = { [unowned self] range, out in
        wide.withUnsafeBufferPointer { wide in
            ReductionKernels.round(UnsafeBufferPointer(rebasing: wide[range]), into: UnsafeMutableBufferPointer(start: out, count: range.count))
        }
    }

    public var bytesPerStep: Int { gradient.count * (precision == .double ? 8 : 4) }
}

// MARK: Kernels

/// The elementwise loops of the reductions.
enum ReductionKernels {
    /// `total[i] += part[i]`.
    static func add(_ part: UnsafeMutableBufferPointer<Float>, into total: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<total.count { total[i] += part[i] }
    }

    /// `sum[i] = Double(parts[0][i]) + Double(parts[1][i]) + ...`: exact while the terms' exponents span less than
    /// the 29 bits Double has beyond Float, so it does not depend on the order of the terms.
    static func exactSum(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, into sum: UnsafeMutableBufferPointer<Double>) {
        let first = parts.first!
        for i in 0..<sum.count { sum[i] = Double(first[i]) }
        for part in parts.dropFirst() {
            for i in 0..<sum.count { sum[i] += Double(part[i]) }
        }
    }

    /// `parts[0][i] = Float(Double(parts[0][i]) + Double(parts[1][i]) + ...)`: `exactSum` and `round` in one pass,
    /// for one rank, whose sum goes nowhere else. The same bits as the two.
    static func exactSumRounded(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>) {
        let total = parts.first!
        let rest = parts.dropFirst()
        if rest.count == 1 {
            let other = rest.first!
            for i in 0..<total.count { total[i] = Float(Double(total[i]) + Double(other[i])) }
            return
        }
        let block = 4096
        var start = 0
        withUnsafeTemporaryAllocation(of: Double.self, capacity: block) { sum in
            while start < total.count {
                let count = min(block, total.count - start)
                for i in 0..<count { sum[i] = Double(total[start + i]) }
                for part in rest {
                    for i in 0..<count { sum[i] += Double(part[start + i]) }
                }
                for i in 0..<count { total[start + i] = Float(sum[i]) }
                start += count
            }
        }
    }

    /// `total[i] = Float(sum[i])`: one rounding, to nearest.
    static func round(_ sum: UnsafeBufferPointer<Double>, into total: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<total.count { total[i] = Float(sum[i]) }
    }
}
