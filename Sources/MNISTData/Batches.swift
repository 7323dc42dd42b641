// The global sample order of each epoch, its batches, and each rank's shard of a batch.
//
// Every rank computes the same order (it depends on the seed and the epoch, never on the number of ranks), walks
// the same global batches, and takes a contiguous slice of each. That is what makes N ranks train the same model
// as one process: the global batch, and so the averaged gradient, is identical.
import Support

/// Where each epoch's order of training samples comes from.
public enum ShuffleSource: Sendable, Equatable {
    /// A fresh permutation per epoch from `RandomState([seed, epoch])`: any epoch's order can be drawn directly,
    /// which a resumed run needs.
    case seeded(UInt32)
    /// Each epoch draws `permutation(n)` from one generator that continues across epochs (the chapter's MLP stream).
    /// The associated state is the generator as it stands before the next epoch's draw.
    case continuing(RandomState)
    /// The same order every epoch (the chapter's CNN stream, drawn once).
    case fixed([Int32])

    /// A few words on where the order comes from.
    public var summary: String {
        switch self {
        case .seeded(let seed): return "a permutation per epoch from seed \(seed)"
        case .continuing: return "numpy's continuing stream"
        case .fixed: return "one fixed order every epoch"
        }
    }

    /// The order of `count` samples for epoch `epoch` (0-based); a continuing source advances its generator.
    /// - Precondition: for `.continuing`, epochs are drawn in sequence; for `.fixed`, the order has `count` entries.
    public mutating func order(forEpoch epoch: Int, count: Int) -> [Int32] {
        switch self {
        case .seeded(let seed):
            var generator = RandomState(seedArray: [seed, UInt32(truncatingIfNeeded: epoch)])
            return generator.permutation(count)
        case .continuing(var generator):
            let order = generator.permutation(count)
            self = .continuing(generator)
            return order
        case .fixed(let order):
            require(order.count == count, "ShuffleSource.fixed: order has \(order.count) entries, not \(count)")
            return order
        }
    }
}

/// The global batches of one epoch: consecutive slices of the epoch's order, the last one possibly shorter.
public struct BatchPlan: Sendable, Equatable {
    public let sampleCount: Int
    public let batchSize: Int

    /// - Precondition: `batchSize` > 0 and `sampleCount` >= 0.
    public init(sampleCount: Int, batchSize: Int) {
        require(batchSize > 0 && sampleCount >= 0,
                     "BatchPlan: batch size \(batchSize) and sample count \(sampleCount) must be positive")
        self.sampleCount = sampleCount
        self.batchSize = batchSize
    }

    /// Number of batches, counting a final partial one (8,000 samples in batches of 128: 63).
    public var batchCount: Int { (sampleCount + batchSize - 1) / batchSize }

    /// Positions in the epoch's order that batch `index` covers.
    public func batch(_ index: Int) -> Range<Int> {
        require(index >= 0 && index < batchCount, "BatchPlan.batch: index \(index) outside 0..<\(batchCount)")
        let start = index * batchSize
        return start..<min(start + batchSize, sampleCount)
    }
}

/// Rank `rank`'s contiguous part of `range` when it is split over `ranks` ranks.
///
/// Sizes differ by at most one (the first `range.count % ranks` ranks take one more); a rank may get an empty
/// range when the batch is smaller than the number of ranks, and still takes part in the step.
public func shard(of range: Range<Int>, rank: Int, ranks: Int) -> Range<Int> {
    require(ranks > 0 && rank >= 0 && rank < ranks, "shard(of:rank:ranks:): rank \(rank) of \(ranks)")
    let base = range.count / ranks
    let extra = range.count % ranks
    let start = range.lowerBound + rank * base + min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
}
