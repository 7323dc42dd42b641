// The step shared by the ranks of one host: one memory, one slice each.
//
// Every rank of the host maps one block of memory (`HostStepMemory`) that holds the parameters, the optimizer's
// state, every rank's gradient parts and a line of flags per rank. A step is then:
//
//   backward writes this rank's parts straight into its slots
//   -> barrier: every part is written, and no rank reads the parameters any more
//   -> each rank sums its 1/k slice of the gradient over every rank's parts, in rank order, a block at a time,
//      and the optimizer steps that slice of the parameters and of its state in place (`ReducedGradient`)
//   -> barrier: every slice is stepped; each rank reads every rank's finiteness flag, and the next forward reads
//      the parameters every rank wrote.
//
// No gradient crosses an MPI_Allreduce, nothing is copied between ranks, and each rank reads and writes only its
// slice of the optimizer state (ZeRO-1's sharding, on one host). What each sum guarantees is what it guarantees
// through an all-reduce:
//   float   each rank's parts added in Float, then the ranks' sums in rank order: the bits of a Float all-reduce
//           that adds in rank order, the same for the same layout, run after run;
//   double  Double additions, rounded once: exact while the parts' exponents span less than 29 bits, and so the
//           bits of one process with as many workers;
//   exact   the narrow fixed-point sum (FixedPointSum.swift): per block of 256 values, the largest magnitude over
//           every micro-batch, the same grid, the Int32 sum, one rounding: the same bits at any rank and thread
//           count, as across hosts.
//
// Why the barriers suffice: a rank writes its parts and flags of the next step only after the second barrier of
// this one, when every rank has finished reading them; it writes its slice of the parameters only after the first
// barrier, when every rank has finished its forward and backward, and every rank reads them again only after the
// second.
import Support

/// Why the ranks of a host do not share the step.
public struct HostStepUnavailable: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The memory the ranks of one host share for the step, and its layout: a line of flags and figures per rank, the parameters,
/// the optimizer state, then `partsPerRank` gradient slots per rank. Every array starts on a cache line.
public struct HostStepMemory {
    public let memory: HostSharedMemory
    /// Parameters, optimizer state values, slots per rank.
    public let count: Int
    public let stateCount: Int
    public let partsPerRank: Int
    /// The parameters, and the optimizer's state (its whole layout; each rank touches its slice).
    public let values: UnsafeMutablePointer<Float>
    public let state: UnsafeMutablePointer<Float>
    /// Per rank, on a line of its own: the parts it wrote this step, whether its slice's gradient was finite,
    /// (from byte 8) the step's figures it posted, and (at byte 40) how far its backward has come.
    private let flags: UnsafeMutablePointer<Int32>
    private let firstSlot: UnsafeMutablePointer<Float>

    private static let line = 64
    private static func rounded(_ bytes: Int) -> Int { (bytes + line - 1) / line * line }

    /// Bytes for `count` parameters, `stateCount` optimizer values and `partsPerRank` slots for each of `ranks`.
    public static func bytes(count: Int, stateCount: Int, ranks: Int, partsPerRank: Int) -> Int {
        ranks * line + rounded(count * 4) + rounded(stateCount * 4) + ranks * partsPerRank * rounded(count * 4)
    }

    /// The host's shared memory for the step (a collective: every rank calls it with the same sizes), or why there
    /// is none: one rank per host, hosts with unequal rank counts, or too little room. Its parameters and optimizer
    /// state, and every line of flags and counts, start as zeros.
    public static func make(communicator: Communicator, count: Int, stateCount: Int,
                            partsPerRank: Int) throws(CommunicatorError) -> Result<HostStepMemory, HostStepUnavailable> {
        let sharing = try communicator.hostSharedMemory(bytes: bytes(count: count, stateCount: stateCount, ranks: communicator.size,
                                                                     partsPerRank: partsPerRank))
        switch sharing {
        case .unavailable(let reason): return .failure(HostStepUnavailable(reason))
        case .shared(let memory):
            let host = HostStepMemory(memory: memory, count: count, stateCount: stateCount, partsPerRank: partsPerRank)
            if memory.rank == 0 {
                host.values.update(repeating: 0, count: count)
                host.state.update(repeating: 0, count: stateCount)
                host.flags.update(repeating: 0, count: memory.size * Self.line / 4)  // counts start at 0
            }
            try memory.barrier()
            return .success(host)
        }
    }

    init(memory: HostSharedMemory, count: Int, stateCount: Int, partsPerRank: Int) {
        require(partsPerRank >= 1 && memory.bytes >= Self.bytes(count: count, stateCount: stateCount, ranks: memory.size,
                                                                partsPerRank: partsPerRank),
                "HostStepMemory: \(memory.bytes) bytes for \(partsPerRank) parts of \(count) values a rank")
        self.memory = memory
        self.count = count
        self.stateCount = stateCount
        self.partsPerRank = partsPerRank
        let base = memory.base
        flags = base.bindMemory(to: Int32.self, capacity: memory.size * Self.line / 4)
        var offset = memory.size * Self.line
        values = (base + offset).bindMemory(to: Float.self, capacity: count)
        offset += Self.rounded(count * 4)
        state = (base + offset).bindMemory(to: Float.self, capacity: max(stateCount, 1))
        offset += Self.rounded(stateCount * 4)
        firstSlot = (base + offset).bindMemory(to: Float.self, capacity: memory.size * partsPerRank * Self.rounded(count * 4) / 4)
    }

    public var rank: Int { memory.rank }
    public var ranks: Int { memory.size }

    /// Slot `part` of `rank`: one gradient part.
    public func slot(rank: Int, part: Int) -> UnsafeMutablePointer<Float> {
        firstSlot + (rank * partsPerRank + part) * (Self.rounded(count * 4) / 4)
    }

    /// This rank's slots.
    public var slots: [UnsafeMutablePointer<Float>] { (0..<partsPerRank).map { slot(rank: rank, part: $0) } }

    /// A step's figures (loss, correct predictions, samples, a stop request), summed over the host's ranks in rank
    /// order without a collective: each rank posts its own before `HostSum.reduce`, whose first barrier publishes
    /// them, and reads the sum after it.
    public func post(_ figures: (Double, Double, Double, Double)) {
        let line = UnsafeMutableRawPointer(flags + rank * Self.line / 4) + 8
        line.storeBytes(of: figures.0, toByteOffset: 0, as: Double.self)
        line.storeBytes(of: figures.1, toByteOffset: 8, as: Double.self)
        line.storeBytes(of: figures.2, toByteOffset: 16, as: Double.self)
        line.storeBytes(of: figures.3, toByteOffset: 24, as: Double.self)
    }

    /// The sum of the figures every rank posted: this host's in rank order, then, with several hosts, over the peers
    /// (every rank of a host all-reduces the same host sum with its own peers).
    public func postedSum() throws(CommunicatorError) -> (Double, Double, Double, Double) {
        var sum = (0.0, 0.0, 0.0, 0.0)
        for other in 0..<ranks {
            let line = UnsafeRawPointer(flags + other * Self.line / 4) + 8
            sum.0 += line.load(fromByteOffset: 0, as: Double.self)
            sum.1 += line.load(fromByteOffset: 8, as: Double.self)
            sum.2 += line.load(fromByteOffset: 16, as: Double.self)
            sum.3 += line.load(fromByteOffset: 24, as: Double.self)
        }
        guard let peers = memory.peers else { return sum }
        return try withUnsafeTemporaryAllocation(of: Double.self, capacity: 4) { (buffer) throws(CommunicatorError) in
            buffer.initializeElement(at: 0, to: sum.0)
            buffer.initializeElement(at: 1, to: sum.1)
            buffer.initializeElement(at: 2, to: sum.2)
            buffer.initializeElement(at: 3, to: sum.3)
            try peers.allReduce(UnsafeMutableRawBufferPointer(buffer), 4, .double, .sum)
            return (buffer[0], buffer[1], buffer[2], buffer[3])
        }
    }

    /// After world rank 0 has written the parameters and the optimizer state into its host's memory: the same in
    /// every host's, each rank of host 0 sending 1/k of them to its peers, then a barrier on each host.
    public func shareInitialState() throws(CommunicatorError) {
        try barrier()  // rank 0's writes visible to its host's ranks
        if let peers = memory.peers {
            let values = (count * rank / ranks)..<(count * (rank + 1) / ranks)
            let state = (stateCount * rank / ranks)..<(stateCount * (rank + 1) / ranks)
            try peers.broadcast(UnsafeMutableRawBufferPointer(start: self.values + values.lowerBound, count: values.count * 4), 0)
            try peers.broadcast(UnsafeMutableRawBufferPointer(start: self.state + state.lowerBound, count: state.count * 4), 0)
            try barrier()
        }
    }

    /// How far this rank's backward has come (`HostSum`'s overlap): a count that only grows, at byte 40 of its line.
    func publishProgress(_ value: UInt64) { memory.publish(value, at: rank * Self.line + 40) }
    func progress(of rank: Int) -> UInt64 { memory.read(at: rank * Self.line + 40) }

    func partsWritten(by rank: Int) -> Int { Int(flags[rank * Self.line / 4]) }
    func setPartsWritten(_ parts: Int) { flags[rank * Self.line / 4] = Int32(parts) }
    func finite(of rank: Int) -> Bool { flags[rank * Self.line / 4 + 1] != 0 }
    func setFinite(_ finite: Bool) { flags[rank * Self.line / 4 + 1] = finite ? 1 : 0 }

    /// A barrier over the host's ranks that makes every write before it visible after it.
    public func barrier() throws(CommunicatorError) { try memory.barrier() }

    /// What each rank holds, for the start block.
    public var description: String {
        "the parameters (\(megabytes(count * 4))), the optimizer state (\(megabytes(stateCount * 4))) and every rank's "
            + "\(partsPerRank) gradient part\(partsPerRank == 1 ? "" : "s") (\(megabytes(count * 4)) each) in memory the host's "
            + "\(ranks) ranks share; each rank sums and steps 1/\(ranks) of them"
            + (memory.peers.map { " and all-reduces its slice with the \($0.hosts - 1) rank\($0.hosts == 2 ? "" : "s") at its place on the other hosts" } ?? "")
    }
}

/// The step shared by the host's ranks (see the top of this file).
public final class HostSum: GradientReducer {
    let precision: ReductionPrecision
    let memory: HostStepMemory
    private let plan: MicroBatches?
    private let threads: Int
    /// The exact sum's blocks (256 values, none across a tensor's end), tiling the gradient in order.
    private let blocks: [Range<Int>]
    /// The elements this rank sums and steps: whole blocks, 1/k of them; and the blocks that make it up.
    public let slice: Range<Int>
    private let sliceBlocks: Range<Int>
    /// This step's parts, every rank's, in rank order, and where each rank's end; the exact sum's grid bits.
    private var sources: [UnsafePointer<Float>] = []
    private var ends: [Int] = []
    private var valueBits = 0
    /// Across hosts: the slice's sum over this host, all-reduced with the peers (Float, Double, or Int32 with each
    /// block's largest magnitude), which the step's rounding reads.
    private var floatSlice: [Float] = [], doubleSlice: [Double] = [], integerSlice: [Int32] = [], blockLargest: [Float] = []
    private lazy var rounding: (Range<Int>, UnsafeMutablePointer<Float>) -> Void = { [unowned self] in sum($0, into: $1) }

    /// - Parameters:
    ///   - tensors: each parameter's elements, in layout order.
    ///   - microBatches: for the exact sum, how the batch is cut (nil for the others).
    ///   - threads: the rank's threads, which share its slice.
    ///   - overlap: start the slice's all-reduce with the peers per bucket during backward (one worker per rank:
    ///     one part, or for the exact sum its micro-batches); on one host there is nothing to overlap, and the summary
    ///     says so.
    public init(precision: ReductionPrecision, memory: HostStepMemory, tensors: [Range<Int>], microBatches: MicroBatches?,
                threads: Int, overlap: Bool = false, minimumBucketBytes: Int = 1 << 20) {
        require((precision == .exact) == (microBatches != nil), "HostSum: micro-batches are the exact sum's")
        require(!overlap || precision == .exact || memory.partsPerRank == 1, "HostSum: overlap with the Float or Double sum is for one part a rank")
        overlapAsked = overlap
        self.precision = precision
        self.memory = memory
        plan = microBatches
        self.threads = threads
        let blocks = NarrowFixedPoint.blocks(of: tensors)
        self.blocks = blocks
        let ranks = memory.ranks, rank = memory.rank
        let first = rank * blocks.count / ranks, end = (rank + 1) * blocks.count / ranks
        sliceBlocks = first..<end
        // The blocks tile the gradient in order.
        slice = (first < blocks.count ? blocks[first].lowerBound : memory.count)..<(end < blocks.count ? blocks[end].lowerBound : memory.count)
        if overlap && memory.memory.peers != nil {
            let buckets = GradientBuckets(parameterRanges: tensors, count: memory.count, minimumBytes: minimumBucketBytes)
            let slice = self.slice, sliceBlocks = self.sliceBlocks
            let pieces = buckets.ranges.map { $0.clamped(to: slice) }
            // A bucket is whole tensors and a block never crosses a tensor's end: each piece is a run of whole blocks.
            let pieceBlocks = pieces.map { piece in
                let first = blocks[sliceBlocks].firstIndex { $0.lowerBound >= piece.lowerBound } ?? sliceBlocks.upperBound
                let end = blocks[first..<sliceBlocks.upperBound].firstIndex { $0.lowerBound >= piece.upperBound } ?? sliceBlocks.upperBound
                require(first == end ? piece.isEmpty : blocks[first].lowerBound == piece.lowerBound && blocks[end - 1].upperBound == piece.upperBound,
                        "HostSum: piece \(piece) is not whole blocks")
                return first..<end
            }
            self.overlap = Overlap(schedule: BucketSchedule(buckets), pieces: pieces, pieceBlocks: pieceBlocks)
        }
        if memory.memory.peers != nil {
            switch precision {
            case .float: floatSlice = [Float](repeating: 0, count: slice.count)
            case .double: doubleSlice = [Double](repeating: 0, count: slice.count)
            case .exact:
                integerSlice = [Int32](repeating: 0, count: slice.count)
                blockLargest = [Float](repeating: 0, count: sliceBlocks.count)
            }
        }
    }

    public var summary: String {
        let sum = switch precision {
        case .float: "gradients summed in Float"
        case .double: "gradients summed in Double"
        case .exact: "gradients summed exactly (fixed point over micro-batches of \(plan!.size), Int32 blocks: the same bits at "
            + "any rank and thread count)"
        }
        let ranks = memory.ranks
        guard let peers = memory.memory.peers else {
            return sum + " in memory the host's \(ranks) ranks share, each rank summing and stepping 1/\(ranks) of the parameters "
                + "(no all-reduce\(overlapAsked ? "; --overlap: nothing crosses a network on one host" : ""))"
        }
        return sum + " in memory each host's \(ranks) ranks share, each rank summing and stepping 1/\(ranks) of the parameters "
            + "and all-reducing that slice with its peers on the \(peers.hosts - 1) other host\(peers.hosts == 2 ? "" : "s")"
            + (overlap.map { ", started per bucket during backward (\($0.schedule.buckets.description))" } ?? "")
    }

    public var layout: PartLayout { PartLayout(microBatches: plan, slots: memory.slots) }

    // MARK: Overlap across hosts
    //
    // With `overlap` and several hosts, the slice's all-reduce with the peers starts per bucket of parameters
    // (`GradientBuckets`, last layer first) while backward runs. Each rank publishes how many buckets its backward
    // has finished, as a count that only grows (steps x buckets + finished this step); every rank's backward
    // finishes the buckets in the same order, so a bucket is final on the host once every rank's count has passed
    // it. A rank then sums the piece of its slice inside that bucket over the host's parts and starts the piece's
    // all-reduce with its peers (every rank starts one per bucket, in that order, empty pieces included, so the
    // peers' collectives match). What backward did not start, `reduce` starts; it waits for all before the step.
    // Each value gets the same additions as without overlap: the same bits for the Double sum, and for Float with
    // two hosts (one addition across them). The exact sum's micro-batches are computed one after another, so when a
    // rank's last one has finished a bucket, all its parts of that bucket are final; a piece's blocks then agree
    // their largest magnitudes with the peers (a blocking max all-reduce, in the same bucket order everywhere), are
    // summed on those grids, and the Int32 sums start: the same integers as without overlap.

    private struct Overlap {
        var schedule: BucketSchedule
        /// Per bucket, the part of this rank's slice it holds (often empty), and the blocks of the exact sum that make
        /// it up (indices into `blocks`).
        let pieces: [Range<Int>]
        let pieceBlocks: [Range<Int>]
        /// This step's buckets in the order this rank's backward finished them, and how many of them have started.
        var finished: [Int] = []
        var started = 0
        var steps = 0
        var inFlight = InFlightReductions()

        /// The count a rank publishes once `finished` buckets of this step are done.
        func progress(_ finished: Int) -> UInt64 { UInt64(steps * pieces.count + finished) }
    }

    private var overlap: Overlap?
    private let overlapAsked: Bool
    public var secondsDuringBackward: Double { overlap?.inFlight.secondsDuringBackward ?? 0 }

    public func backwardHooks(batch: Range<Int>) -> BackwardHooks? {
        guard overlap != nil else { return nil }
        overlap!.schedule.reset()
        overlap!.inFlight.reset()
        overlap!.finished.removeAll(keepingCapacity: true)
        overlap!.started = 0
        var hooks = BackwardHooks(parameterReady: { [unowned self] in bucketFinished(parameter: $0) },
                                  progress: { [unowned self] in startFinishedBuckets() })
        // How many parts this rank writes (and the exact sum's grid bits), set before its backward publishes any
        // progress: a rank that sees that progress may read them.
        if let plan {
            valueBits = narrowValueBits(plan.count(of: batch))
            hooks.microBatchParts = { [unowned self] in memory.setPartsWritten($0.count) }
        } else {
            memory.setPartsWritten(1)  // the one part, which backward writes into the rank's first slot
        }
        return hooks
    }

    private func bucketFinished(parameter: Int) {
        guard let bucket = overlap!.schedule.ready(parameter) else { return }
        overlap!.finished.append(bucket)
        memory.publishProgress(overlap!.progress(overlap!.finished.count))
    }

    /// Whether every rank of the host has finished `count` buckets of this step.
    private func hostFinished(_ count: Int) -> Bool {
        let target = overlap!.progress(count)
        return (0..<memory.ranks).allSatisfy { memory.progress(of: $0) >= target }
    }

    /// Starts, in order, the pieces of the buckets the whole host has finished; lets the started ones progress.
    private func startFinishedBuckets() {
        while overlap!.started < overlap!.finished.count && hostFinished(overlap!.started + 1) {
            let bucket = overlap!.finished[overlap!.started]
            if overlap!.started == 0 { gatherSources() }  // every rank has published its part count
            let piece = overlap!.pieces[bucket], blocks = overlap!.pieceBlocks[bucket]
            overlap!.started += 1
            overlap!.inFlight.start { () throws(CommunicatorError) in try startPiece(piece, blocks: blocks) }
        }
        overlap!.inFlight.progress()
    }

    /// Sums `piece` (inside the slice; for the exact sum, the blocks `pieceBlocks`) over the host's parts and starts its
    /// all-reduce with the peers.
    private func startPiece(_ piece: Range<Int>, blocks pieceBlocks: Range<Int>) throws(CommunicatorError) -> PendingReduction {
        let peers = memory.memory.peers!
        guard plan != nil else {
            let (buffer, element) = sumIntoSlice(piece, threads: 1)
            return try peers.startAllReduce(buffer, piece.count, element, .sum)
        }
        let buffer = try sumOnGrids(pieceBlocks, peers: peers, threads: 1)
        return try peers.startAllReduce(buffer, piece.count, .int32, .sum)
    }

    /// Sums `range` (inside the slice) over this step's sources (every rank's parts, rank r's ending before `ends[r]`)
    /// into the slice's Float or Double sum, on up to `threads` threads; returns that part of the sum, for the peers.
    private func sumIntoSlice(_ range: Range<Int>, threads: Int) -> (UnsafeMutableRawBufferPointer, ReductionElement) {
        let sources = self.sources, ends = self.ends
        guard !range.isEmpty else { return (UnsafeMutableRawBufferPointer(start: nil, count: 0), precision == .float ? .float : .double) }
        let offset = range.lowerBound - slice.lowerBound
        func parts(_ body: @escaping @Sendable (Range<Int>, Int) -> Void) {
            HostKernels.forEachPart(of: range.count, threads: threads) { part in
                body((range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound), part.lowerBound)
            }
        }
        if precision == .float {
            let out = floatSlice.withUnsafeMutableBufferPointer { $0.baseAddress! + offset }
            let work = UncheckedSendable((sources, ends, out))
            parts { range, at in HostKernels.floatSum(work.value.0, ends: work.value.1, range, into: work.value.2 + at) }
            return (UnsafeMutableRawBufferPointer(start: out, count: range.count * 4), .float)
        }
        let out = doubleSlice.withUnsafeMutableBufferPointer { $0.baseAddress! + offset }
        let work = UncheckedSendable((sources, out))
        parts { range, at in HostKernels.doubleSum(work.value.0, range, into: work.value.1 + at) }
        return (UnsafeMutableRawBufferPointer(start: out, count: range.count * 8), .double)
    }

    /// After this rank's backward: the pieces not started yet start as the host's other ranks finish them, and every
    /// one is waited for.
    private func finishOverlapped() throws(CommunicatorError) {
        let buckets = overlap!.pieces.count
        require(overlap!.finished.count == buckets, "HostSum: backward did not finish every bucket")
        try memory.memory.poll(until: { hostFinished(buckets) }, meanwhile: { startFinishedBuckets() })
        startFinishedBuckets()
        try memory.barrier()  // every forward and backward done: the parameters may change
        try overlap!.inFlight.finish()
        overlap!.steps += 1
        bytesPerStep = bytesAcrossHosts
    }

    public func reduce(_ parts: ArraySlice<UnsafeMutableBufferPointer<Float>>, batch: Range<Int>) throws(CommunicatorError) -> ReducedGradient {
        let rank = memory.rank
        require(parts.count <= memory.partsPerRank && parts.allSatisfy({ $0.count == memory.count }),
                "HostSum: \(parts.count) parts for \(memory.partsPerRank) slots")
        for (j, part) in parts.enumerated() where part.baseAddress != memory.slot(rank: rank, part: j) {
            // With overlap the host's other ranks have read the slots during backward: the parts must be there.
            require(overlap == nil, "HostSum: with overlap, backward writes the parts into the host's slots")
            memory.slot(rank: rank, part: j).update(from: part.baseAddress!, count: memory.count)  // a caller's own buffer
        }
        if let plan { valueBits = narrowValueBits(plan.count(of: batch)) }
        memory.setPartsWritten(parts.count)
        if overlap != nil {
            try finishOverlapped()
            return ReducedGradient(range: slice, rounding: rounding)
        }
        try memory.barrier()  // every rank's parts written, every forward and backward done
        gatherSources()
        if let peers = memory.memory.peers {
            try sumAcrossHosts(peers)
        } else {
            bytesPerStep = slice.count * 4 * (sources.count - parts.count)
        }
        return ReducedGradient(range: slice, rounding: rounding)
    }

    /// The Int32 sum's grid bits for a batch of `terms` micro-batches (HostSum is not made for the Int64 sum).
    private func narrowValueBits(_ terms: Int) -> Int {
        guard let bits = NarrowFixedPoint.valueBits(terms: terms) else {
            require(false, "HostSum: a batch of \(terms) micro-batches needs the Int64 sum")
            return 0
        }
        return bits
    }

    /// This step's parts, every rank's in rank order, as the ranks' flags say, and where each rank's end.
    private func gatherSources() {
        sources.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        for other in 0..<memory.ranks {
            for j in 0..<memory.partsWritten(by: other) { sources.append(UnsafePointer(memory.slot(rank: other, part: j))) }
            ends.append(sources.count)
        }
    }

    public func finish(finite: Bool) throws(CommunicatorError) -> Bool {
        // Every host reduced the same slices to the same values: its ranks' verdicts are every host's.
        memory.setFinite(finite)
        try memory.barrier()  // every slice stepped
        return (0..<memory.ranks).allSatisfy { memory.finite(of: $0) }
    }

    public private(set) var bytesPerStep = 0

    /// What this rank all-reduces with its peers a step: its slice's sum (Float, Double or Int32), and for the exact
    /// sum each of its blocks' largest magnitude.
    private var bytesAcrossHosts: Int {
        slice.count * (precision == .double ? 8 : 4) + (plan != nil ? sliceBlocks.count * 4 : 0)
    }

    /// The slice's sum over this host's parts, all-reduced with the peers that hold the same slice on the other
    /// hosts: in Float; in Double (exact while the parts' exponents span less than 29 bits, so the bits of one process
    /// with as many workers, for twice the bytes); or for the exact sum each block's largest magnitude (a max), then
    /// the Int32 sums on those grids: integers, so the same bits at any layout.
    private func sumAcrossHosts(_ peers: HostPeers) throws(CommunicatorError) {
        let slice = self.slice
        switch precision {
        case .float, .double:
            let (buffer, element) = sumIntoSlice(slice, threads: threads)
            try peers.allReduce(buffer, slice.count, element, .sum)
        case .exact:
            let buffer = try sumOnGrids(sliceBlocks, peers: peers, threads: threads)
            try peers.allReduce(buffer, slice.count, .int32, .sum)
        }
        bytesPerStep = bytesAcrossHosts
    }

    /// The exact sum of the blocks `range` (indices into `blocks`, inside the slice) over the host's parts: each block's
    /// largest magnitude agreed with the peers (a max), then the Int32 sums on those grids, into the slice's; returns
    /// those sums, for the peers.
    private func sumOnGrids(_ range: Range<Int>, peers: HostPeers, threads: Int) throws(CommunicatorError) -> UnsafeMutableRawBufferPointer {
        guard !range.isEmpty else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        let blocks = self.blocks[range], bits = valueBits, slice = self.slice, sources = self.sources
        let largest = blockLargest.withUnsafeMutableBufferPointer {
            UnsafeMutableBufferPointer(rebasing: $0[(range.lowerBound - sliceBlocks.lowerBound)..<(range.upperBound - sliceBlocks.lowerBound)])
        }
        let sum = integerSlice.withUnsafeMutableBufferPointer {
            UnsafeMutableBufferPointer(rebasing: $0[(blocks.first!.lowerBound - slice.lowerBound)..<(blocks.last!.upperBound - slice.lowerBound)])
        }
        let work = UncheckedSendable((sources, blocks, largest, sum))
        NarrowFixedPoint.forEachBlock(blocks.count, threads: threads) { b in
            let (sources, blocks, largest, _) = work.value
            largest[b] = NarrowFixedPoint.largestMagnitude(sources, block: blocks[blocks.startIndex + b])
        }
        try peers.allReduce(UnsafeMutableRawBufferPointer(largest), largest.count, .float, .max)
        NarrowFixedPoint.forEachBlock(blocks.count, threads: threads) { b in
            let (sources, blocks, largest, sum) = work.value
            let block = blocks[blocks.startIndex + b]
            NarrowFixedPoint.sumOnGrid(sources, part: block, largest: largest[b], valueBits: bits,
                                       into: sum.baseAddress! + (block.lowerBound - blocks.first!.lowerBound))
        }
        return UnsafeMutableRawBufferPointer(sum)
    }

    /// The Float gradient of `range` (inside the slice), into `out`: summed over every source here, or rounded from
    /// the slice's sum across hosts.
    private func sum(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let offset = range.lowerBound - slice.lowerBound
        if memory.memory.peers != nil {
            switch precision {
            case .float: floatSlice.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + offset, count: range.count) }
            case .double:
                doubleSlice.withUnsafeBufferPointer { sum in
                    for i in 0..<range.count { out[i] = Float(sum[offset + i]) }
                }
            case .exact:
                integerSlice.withUnsafeBufferPointer { sum in
                    NarrowFixedPoint.forEachBlock(of: blocks, meeting: range) { b, part in
                        NarrowFixedPoint.convertBack(sum.baseAddress! + (part.lowerBound - slice.lowerBound), count: part.count,
                                                     largest: blockLargest[b - sliceBlocks.lowerBound], valueBits: valueBits,
                                                     into: out + (part.lowerBound - range.lowerBound))
                    }
                }
            }
            return
        }
        switch precision {
        case .float: HostKernels.floatSum(sources, ends: ends, range, into: out)
        case .double: HostKernels.doubleSum(sources, range, into: out)
        case .exact:
            NarrowFixedPoint.forEachBlock(of: blocks, meeting: range) { b, part in
                NarrowFixedPoint.sumAndRound(sources, block: blocks[b], part: part, valueBits: valueBits,
                                             into: out + (part.lowerBound - range.lowerBound))
            }
        }
    }
}
