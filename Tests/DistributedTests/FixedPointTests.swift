// The exact sum in isolation: the same micro-batch gradients, handed to ranks in any grouping and combined in any
// order, give the same bits, also with adversarial magnitudes (1e-30 beside 1e10, subnormals, cancelling signs).
import Distributed
import Testing
import TestSupport

/// Two tensors of 64 values each, for micro-batch `index` of `count`: the first tensor adversarial, the second tame.
func adversarialPart(_ index: Int) -> [Float] {
    let first: [Float] = (0..<64).map { i in
        switch (i + index) % 8 {
        case 0: return 1e10
        case 1: return -1e10                                  // cancels case 0 across micro-batches
        case 2: return 1e-30
        case 3: return Float.leastNonzeroMagnitude * Float(index + 1)  // subnormal
        case 4: return -3.25e-7 * Float(index + 1)
        case 5: return Float(index) * 0.1 - 0.35
        case 6: return 0
        default: return 7e9 + Float(index)
        }
    }
    let second: [Float] = (0..<64).map { i in Float(i - 32) / 16 + Float(index) / 1024 }
    return first + second
}

let tensors = [0..<64, 64..<128]
/// The reducer's plan only tells the workers how to cut a batch; these tests hand it the micro-batches directly.
let plan = MicroBatches(size: 16)

/// The two sums: Int64 per tensor (a batch of more than 64 micro-batches), and Int32 in blocks (a batch of 8
/// micro-batches), converted back whole (`sum`) or rounded range by range, as the optimizer asks for it (`reduce`,
/// then its rounding over ranges that cut blocks and tensors at odd places); and that last one overlapped, each tensor
/// a bucket started from the backward hooks (on one rank there is nothing to overlap); and summed in memory the ranks
/// share instead of all-reduced (`HostSum`, each rank rounding its slice), the micro-batches written into the
/// reducer's slots (as the workers do) or handed over in buffers of the caller's, which it copies in.
enum Width: CaseIterable { case wide, narrow, narrowDeferred, narrowOverlapped, narrowShared, narrowSharedCopied }

/// Ranges of the 128 values, as the optimizer's blocks might ask for them: one inside a block, one across the two
/// tensors' blocks, one of a single value, the rest.
let roundingRanges = [0..<5, 5..<70, 70..<71, 71..<128]

/// Reduces micro-batches `0..<count`, assigned to ranks by `assign` (rank -> its micro-batch indices), with
/// `FixedPointSum` (or `HostSum`) on thread ranks; every rank's result. Where the ranks share the step, each rounds
/// its slice only, and every rank's result is the slices put together.
/// With `hosts`, the shared sums run on that many simulated hosts, each rank all-reducing its slice with its peers.
func fixedPointSum(count: Int, ranks: Int, descending: Bool = false, width: Width = .wide, hosts: Int = 1,
                   assign: @escaping @Sendable (Int) -> [Int]) throws -> [[Float]] {
    let shared = (width == .narrowShared || width == .narrowSharedCopied) && ranks / hosts > 1
    let results = try ThreadGroup.run(ranks: ranks, descending: descending, hosts: hosts) { communicator -> (Range<Int>, [Float]) in
        let mine = assign(communicator.rank)
        let partsPerRank = (count + ranks - 1) / ranks
        let host = shared ? try HostStepMemory.make(communicator: communicator, count: 128, stateCount: 0, partsPerRank: partsPerRank).get() : nil
        let sum: GradientReducer = host.map { HostSum(precision: .exact, memory: $0, tensors: tensors, microBatches: plan, threads: 1) }
            ?? FixedPointSum(communicator: communicator, tensors: tensors, count: 128, microBatches: plan,
                             overlap: width == .narrowOverlapped, minimumBucketBytes: 4)
        let slots = width == .narrowShared ? sum.layout.slots : []
        let buffers = (mine.isEmpty ? [-1] : mine).enumerated().map { j, index in
            let buffer = j < slots.count ? UnsafeMutableBufferPointer(start: slots[j], count: 128)
                : UnsafeMutableBufferPointer<Float>.allocate(capacity: 128)
            _ = buffer.update(from: index < 0 ? [Float](repeating: 0, count: 128) : adversarialPart(index))
            return buffer
        }
        defer { buffers.filter { buffer in !slots.contains { $0 == buffer.baseAddress } }.forEach { $0.deallocate() } }
        switch width {
        case .wide: try sum.sum(buffers[...], batch: 0..<(16 * 65))
        case .narrow: try sum.sum(buffers[...], batch: 0..<(16 * count))
        case .narrowDeferred, .narrowOverlapped, .narrowShared, .narrowSharedCopied:
            if width == .narrowOverlapped && communicator.size > 1 {
                // As the workers do: the parts, then the last micro-batch's backward finishing the last tensor first.
                guard let hooks = sum.backwardHooks(batch: 0..<(16 * count)) else { return (0..<0, []) }  // fails below
                hooks.microBatchParts?(buffers[...])
                for parameter in tensors.indices.reversed() {
                    hooks.parameterReady(parameter)
                    hooks.progress()
                }
            }
            let reduced = try sum.reduce(buffers[...], batch: 0..<(16 * count))
            guard let rounding = reduced.rounding else { return (0..<0, []) }  // fails below
            var rounded = [Float](repeating: .nan, count: 128)
            rounded.withUnsafeMutableBufferPointer { out in
                for range in roundingRanges.reversed() {
                    let low = max(range.lowerBound, reduced.range.lowerBound), high = min(range.upperBound, reduced.range.upperBound)
                    if low < high { rounding(low..<high, out.baseAddress! + low) }
                }
            }
            #expect(try sum.finish(finite: true))
            return (reduced.range, rounded)
        }
        return (0..<128, Array(buffers[0]))
    }
    guard shared else { return results.map(\.1) }
    let perHost = ranks / hosts
    return (0..<hosts).flatMap { host in  // each host's slices put together, once per rank of it
        var whole = [Float](repeating: .nan, count: 128)
        for (range, values) in results[(host * perHost)..<((host + 1) * perHost)] where !values.isEmpty {
            whole.replaceSubrange(range, with: values[range])
        }
        return Array(repeating: whole, count: perHost)
    }
}

@Suite("The exact sum", .limit(minutes: 5))
struct FixedPointTests {
    @Test("any grouping of 8 micro-batches over 1-5 ranks, in any order, gives the same bits (Int64 and Int32 sums)",
          arguments: Width.allCases)
    func groupingAndOrder(width: Width) throws {
        let reference = try fixedPointSum(count: 8, ranks: 1, width: width) { _ in Array(0..<8) }[0]
        if [.narrowDeferred, .narrowOverlapped, .narrowShared, .narrowSharedCopied].contains(width) {  // the bits the conversion of the whole sum gives
            let whole = try fixedPointSum(count: 8, ranks: 1, width: .narrow) { _ in Array(0..<8) }[0]
            expectIdentical(reference, whole)
        }
        for ranks in 1...5 {
            for descending in [false, true] {
                let contiguous = try fixedPointSum(count: 8, ranks: ranks, descending: descending, width: width) { rank in
                    Array((rank * 8 / ranks)..<((rank + 1) * 8 / ranks))
                }
                let roundRobin = try fixedPointSum(count: 8, ranks: ranks, descending: descending, width: width) { rank in
                    Array(stride(from: rank, to: 8, by: ranks)).reversed()
                }
                for result in contiguous + roundRobin {
                    expectIdentical(result, reference, "\(ranks) ranks, descending \(descending)")
                }
                // The shared sums on 2 hosts: each host's ranks sum their parts in its memory, then all-reduce slices.
                if width == .narrowShared || width == .narrowSharedCopied, ranks == 4 {
                    let twoHosts = try fixedPointSum(count: 8, ranks: ranks, descending: descending, width: width, hosts: 2) { rank in
                        Array(stride(from: rank, to: 8, by: ranks))
                    }
                    for result in twoHosts { expectIdentical(result, reference, "2 hosts x 2 ranks, descending \(descending)") }
                }
            }
        }
    }

    @Test("overlapped, a rank without a micro-batch takes part in every bucket's collectives with zeros")
    func overlappedIdleRank() throws {
        let reference = try fixedPointSum(count: 3, ranks: 1, width: .narrowDeferred) { _ in [0, 1, 2] }[0]
        for ranks in [4, 5] {
            let results = try fixedPointSum(count: 3, ranks: ranks, width: .narrowOverlapped) { $0 < 3 ? [$0] : [] }
            for result in results { expectIdentical(result, reference, "\(ranks) ranks") }
        }
    }

    @Test("the result is the exact sum rounded once, where the grid holds every value")
    func exactness() throws {
        let result = try fixedPointSum(count: 8, ranks: 3) { [[0, 1, 2], [3, 4, 5], [6, 7]][$0] }[0]
        // The second tensor's values are multiples of 2^-10 below 3: the grid (2^(1 + 1 - 46)) holds them exactly.
        for i in 0..<64 {
            let exact = (0..<8).reduce(0.0) { $0 + Double(adversarialPart($1)[64 + i]) }
            #expect(result[64 + i] == Float(exact))
        }
        // 1e10 and -1e10 cancel; 8 x 1e-30 is far below 2^-46 of 1e10 and vanishes, as documented.
        let partsWithBigValues = (0..<8).map { adversarialPart($0)[0] }
        #expect(result[0] == Float(partsWithBigValues.reduce(0.0) { $0 + Double($1) }))
    }

    @Test("the Int32 sum: exact where its grid (2^-27 of a block's largest at 8 micro-batches) holds the values; within a grid step per micro-batch elsewhere")
    func narrowExactness() throws {
        let result = try fixedPointSum(count: 8, ranks: 3, width: .narrow) { [[0, 1, 2], [3, 4, 5], [6, 7]][$0] }[0]
        // The second tensor's values are multiples of 2^-10 below 3: its grid, 2^(1 + 1 - 27), holds them.
        for i in 0..<64 {
            let exact = (0..<8).reduce(0.0) { $0 + Double(adversarialPart($1)[64 + i]) }
            #expect(result[64 + i] == Float(exact))
        }
        // The first tensor's largest is 1e10 (exponent 33): a grid step of 2^7 = 128. 1e10 and -1e10 cancel
        // exactly; small values vanish; every sum is within 8 x 64 of the exact one.
        for i in 0..<64 {
            let exact = (0..<8).reduce(0.0) { $0 + Double(adversarialPart($1)[i]) }
            #expect(abs(Double(result[i]) - exact) <= 8 * 64 + abs(exact) * 0x1p-24, "value \(i): \(result[i]) against \(exact)")
        }
        #expect(NarrowFixedPoint.valueBits(terms: 1) == 30 && NarrowFixedPoint.valueBits(terms: 4) == 28)
        #expect(NarrowFixedPoint.valueBits(terms: 8) == 27 && NarrowFixedPoint.valueBits(terms: 64) == 24)
        #expect(NarrowFixedPoint.valueBits(terms: 65) == nil, "more micro-batches: the Int64 sum")
    }

    @Test("the Int32 sum of 64 micro-batches of the largest magnitude fills the headroom without overflow")
    func narrowHeadroom() throws {
        let results = try ThreadGroup.run(ranks: 4) { communicator -> [Float] in
            // 16 micro-batches per rank, every value the block's largest (with both signs in the second tensor).
            let buffers = (0..<16).map { _ in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 128)
                for i in 0..<128 { buffer[i] = i < 64 ? Float.greatestFiniteMagnitude.nextDown : (i % 2 == 0 ? 3.999 : -3.999) }
                return buffer
            }
            defer { buffers.forEach { $0.deallocate() } }
            try FixedPointSum(communicator: communicator, tensors: tensors, count: 128, microBatches: plan)
                .sum(buffers[...], batch: 0..<(16 * 64))
            return Array(buffers[0])
        }
        for result in results {
            #expect(result[0..<64].allSatisfy { $0 == .infinity }, "64 x (almost) the largest Float: infinity, not a wrapped sum")
            #expect(result[64..<128].enumerated().allSatisfy { $0.element == ($0.offset % 2 == 0 ? 1 : -1) * 64 * 3.999 })
        }
    }

    @Test("a value that is not finite makes its tensor NaN on every rank, and leaves the others alone; its block's rounding too")
    func nonFinite() throws {
        let results = try ThreadGroup.run(ranks: 2) { communicator -> ([Float], [Float]) in
            var values = adversarialPart(communicator.rank)
            if communicator.rank == 1 { values[5] = .nan }
            let reduced = try values.withUnsafeMutableBufferPointer { buffer in
                try FixedPointSum(communicator: communicator, tensors: tensors, count: 128, microBatches: plan)
                    .sum([buffer][...], batch: 0..<(16 * 65))
                return Array(buffer)
            }
            // Two micro-batches (the Int32 sum, in blocks): the NaN's block rounds to NaN, the other to finite values.
            let kept = FixedPointSum(communicator: communicator, tensors: tensors, count: 128, microBatches: plan)
            var rounded = [Float](repeating: 0, count: 128)
            try values.withUnsafeMutableBufferPointer { buffer in
                if let rounding = try kept.reduce([buffer][...], batch: 0..<32).rounding {
                    rounded.withUnsafeMutableBufferPointer { rounding(0..<128, $0.baseAddress!) }
                }
            }
            return (reduced, rounded)
        }
        for (reduced, rounded) in results {
            #expect(reduced[0..<64].allSatisfy { $0.isNaN })
            #expect(reduced[64..<128].allSatisfy { $0.isFinite })
            #expect(rounded[0..<64].allSatisfy { $0.isNaN })
            #expect(rounded[64..<128].allSatisfy { $0.isFinite && $0 != 0 })
        }
    }

    @Test("micro-batches cover a batch in order, whole ones of the plan's size and a short last one")
    func microBatches() {
        #expect((0..<plan.count(of: 0..<40)).map { plan.microBatch($0, of: 0..<40) } == [0..<16, 16..<32, 32..<40])
        #expect(plan.count(of: 128..<256) == 8 && plan.count(of: 0..<3) == 1 && plan.count(of: 0..<0) == 0)
        #expect(plan.microBatch(7, of: 128..<256) == 240..<256)
    }
}
