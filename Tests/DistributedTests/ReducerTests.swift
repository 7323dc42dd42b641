// Each gradient reducer against a plain local sum, on N ranks run as threads of this process (ThreadGroup):
// the collectives themselves, then FloatSum, DoubleSum and OverlappedSum with several parts per rank.
import Distributed
import Testing
import TestSupport

/// Deterministic gradients with a wide spread of magnitudes and both signs: part `part` of rank `rank`.
func syntheticPart(rank: Int, part: Int, count: Int) -> [Float] {
    var state = UInt64(0x9E37_79B9_7F4A_7C15) &* UInt64(rank * 7 + part + 1)
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let mantissa = Float(state >> 40) / Float(1 << 24) - 0.5
        let exponent = Int((state >> 20) & 15) - 10
        return mantissa * Float(sign: .plus, exponent: exponent, significand: 1)
    }
}

/// Parameter ranges of a small model-like layout: weights and biases of three layers.
let layout: [Range<Int>] = {
    var ranges: [Range<Int>] = [], start = 0
    for size in [600, 20, 300_000, 40, 500, 10] { ranges.append(start..<(start + size)); start += size }
    return ranges
}()
let elementCount = layout.last!.upperBound

/// Runs `reducer` on `ranks` thread ranks with `parts` parts each; returns every rank's reduced gradient.
func reduce(ranks: Int, parts: Int, descending: Bool = false,
            make: @escaping @Sendable (Communicator, UnsafeMutableBufferPointer<Float>) -> GradientReducer) throws -> [[Float]] {
    try ThreadGroup.run(ranks: ranks, descending: descending) { communicator in
        let buffers = (0..<parts).map { part in
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: elementCount)
            _ = buffer.initialize(from: syntheticPart(rank: communicator.rank, part: part, count: elementCount))
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        let reducer = make(communicator, buffers[0])
        if let hooks = reducer.backwardHooks(batch: 0..<1) {
            // As backward does: parameters become ready last first, with progress calls in between.
            for parameter in layout.indices.reversed() {
                hooks.parameterReady(parameter)
                hooks.progress()
            }
        }
        try reducer.sum(buffers[...], batch: 0..<1)
        return Array(buffers[0])
    }
}

@Suite("Gradient reducers on thread ranks", .limit(minutes: 5))
struct ReducerTests {
    @Test("the thread group's collectives: sum, max and min of every element type, and broadcast", arguments: [1, 2, 3, 4])
    func collectives(ranks: Int) throws {
        let results = try ThreadGroup.run(ranks: ranks) { communicator -> ([Double], [Int64], [Float], [Float]) in
            var doubles = [Double(communicator.rank) + 0.5, -Double(communicator.rank)]
            try doubles.withUnsafeMutableBufferPointer { try communicator.allReduce($0, .sum) }
            var integers = [Int64(communicator.rank), Int64(10 - communicator.rank)]
            try integers.withUnsafeMutableBufferPointer { try communicator.allReduce($0, .max) }
            var floats = [Float(communicator.rank) * 2]
            try floats.withUnsafeMutableBufferPointer { try communicator.allReduce(UnsafeMutableRawBufferPointer($0), count: 1, element: .float, operation: .min) }
            var broadcast = [Float(communicator.rank), 7]
            try broadcast.withUnsafeMutableBufferPointer { try communicator.broadcast($0, root: ranks - 1) }
            return (doubles, integers, floats, broadcast)
        }
        let n = Double(ranks)
        for (doubles, integers, floats, broadcast) in results {
            #expect(doubles == [n * (n - 1) / 2 + n / 2, -n * (n - 1) / 2])
            #expect(integers == [Int64(ranks - 1), 10])
            #expect(floats == [0])
            #expect(broadcast == [Float(ranks - 1), 7])
        }
    }

    @Test("DoubleSum: the Double sum of every part of every rank, rounded once, in any order", arguments: [1, 2, 3, 4])
    func doubleSum(ranks: Int) throws {
        for parts in 1...3 {
            var expected = [Double](repeating: 0, count: elementCount)
            for rank in 0..<ranks {
                for part in 0..<parts {
                    for (i, value) in syntheticPart(rank: rank, part: part, count: elementCount).enumerated() { expected[i] += Double(value) }
                }
            }
            let rounded = expected.map { Float($0) }
            for descending in [false, true] {
                let results = try reduce(ranks: ranks, parts: parts, descending: descending) { DoubleSum(communicator: $0, count: $1.count) }
                for result in results { expectIdentical(result, rounded, "\(ranks) ranks x \(parts) parts, descending \(descending)") }
            }
        }
    }

    @Test("DoubleSum kept unrounded for the optimizer: rounded range by range, the bits of the whole sum; on one rank, not kept",
          arguments: [1, 2, 3])
    func doubleSumDeferred(ranks: Int) throws {
        let expected = try reduce(ranks: ranks, parts: 2) { DoubleSum(communicator: $0, count: $1.count) }[0]
        // Ranges as the optimizer's 4096-value blocks on 3 threads cut them: not aligned to anything.
        let cuts = [0, 1, 4097, 100_003, 100_004, 250_000, elementCount]
        let results = try ThreadGroup.run(ranks: ranks) { communicator -> (kept: Bool, values: [Float]) in
            let buffers = (0..<2).map { part in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: elementCount)
                _ = buffer.initialize(from: syntheticPart(rank: communicator.rank, part: part, count: elementCount))
                return buffer
            }
            defer { buffers.forEach { $0.deallocate() } }
            let reducer = DoubleSum(communicator: communicator, count: elementCount)
            guard let rounding = try reducer.reduce(buffers[...], batch: 0..<1).rounding else { return (false, Array(buffers[0])) }
            var rounded = [Float](repeating: .nan, count: elementCount)
            rounded.withUnsafeMutableBufferPointer { out in
                for (start, end) in zip(cuts, cuts.dropFirst()).reversed() {
                    rounding(start..<end, out.baseAddress! + start)
                }
            }
            return (true, rounded)
        }
        for result in results {
            #expect(result.kept == (ranks > 1), "the sum is kept unrounded exactly when there are ranks to sum over")
            expectIdentical(result.values, expected, "\(ranks) ranks")
        }
    }

    @Test("FloatSum: each rank's parts added in order, then the ranks' sums in rank order", arguments: [1, 2, 3, 4])
    func floatSum(ranks: Int) throws {
        let parts = 2
        var expected = [Float](repeating: 0, count: elementCount)
        for rank in 0..<ranks {
            var local = syntheticPart(rank: rank, part: 0, count: elementCount)
            for part in 1..<parts {
                for (i, value) in syntheticPart(rank: rank, part: part, count: elementCount).enumerated() { local[i] += value }
            }
            for i in 0..<elementCount { expected[i] = rank == 0 ? local[i] : expected[i] + local[i] }
        }
        for result in try reduce(ranks: ranks, parts: parts, make: { communicator, _ in FloatSum(communicator: communicator) }) {
            expectIdentical(result, expected)
        }
    }

    @Test("OverlappedSum gives DoubleSum's and FloatSum's bits, bucket by bucket", arguments: [2, 3])
    func overlapped(ranks: Int) throws {
        for precision in [ReductionPrecision.double, .float] {
            let overlapped = try reduce(ranks: ranks, parts: 1) {
                OverlappedSum(precision: precision, communicator: $0, parameterRanges: layout, gradient: $1)
            }
            let blocking = try reduce(ranks: ranks, parts: 1) { communicator, gradient -> GradientReducer in
                precision == .double ? DoubleSum(communicator: communicator, count: gradient.count) : FloatSum(communicator: communicator)
            }
            expectIdentical(overlapped, blocking, "\(precision)")
        }
    }

    @Test("HostSum: each rank sums one slice over every rank's parts in rank order (Float: each rank's parts first), on one host or all-reduced with its peers on the others; the slices tile the gradient",
          arguments: [(2, 1), (3, 1), (4, 1), (4, 2), (6, 3)])
    func hostSum(ranks: Int, hosts: Int) throws {
        let parts = 2, perHost = ranks / hosts
        var floats = [Float](repeating: 0, count: elementCount), exact = [Double](repeating: 0, count: elementCount)
        for host in 0..<hosts {
            var hostSum = [Float](repeating: 0, count: elementCount)
            for rank in (host * perHost)..<((host + 1) * perHost) {
                var local = [Float](repeating: 0, count: elementCount)
                for part in 0..<parts {
                    for (i, value) in syntheticPart(rank: rank, part: part, count: elementCount).enumerated() {
                        local[i] = part == 0 ? value : local[i] + value
                        exact[i] += Double(value)
                    }
                }
                for i in 0..<elementCount { hostSum[i] = rank == host * perHost ? local[i] : hostSum[i] + local[i] }
            }
            for i in 0..<elementCount { floats[i] = host == 0 ? hostSum[i] : floats[i] + hostSum[i] }
        }
        for precision in [ReductionPrecision.float, .double] {
            for copied in [false, true] {
                let slices = try ThreadGroup.run(ranks: ranks, hosts: hosts) { communicator -> (Range<Int>, [Float]) in
                    let memory = try HostStepMemory.make(communicator: communicator, count: elementCount, stateCount: 0,
                                                         partsPerRank: parts).get()
                    let reducer = HostSum(precision: precision, memory: memory, tensors: layout, microBatches: nil, threads: 2)
                    // As the workers write them, into the slots; or in buffers of the caller's, which it copies in.
                    let buffers = (0..<parts).map { part in
                        copied ? UnsafeMutableBufferPointer<Float>.allocate(capacity: elementCount)
                            : UnsafeMutableBufferPointer(start: reducer.layout.slots[part], count: elementCount)
                    }
                    for (part, buffer) in buffers.enumerated() {
                        _ = buffer.update(from: syntheticPart(rank: communicator.rank, part: part, count: elementCount))
                    }
                    defer { if copied { buffers.forEach { $0.deallocate() } } }
                    let reduced = try reducer.reduce(buffers[...], batch: 0..<1)
                    var out = [Float](repeating: .nan, count: reduced.range.count)
                    out.withUnsafeMutableBufferPointer { out in
                        // In blocks as the optimizer's threads cut them, the last first.
                        for start in stride(from: reduced.range.lowerBound, to: reduced.range.upperBound, by: 4096).reversed() {
                            let block = start..<min(start + 4096, reduced.range.upperBound)
                            reduced.rounding!(block, out.baseAddress! + (start - reduced.range.lowerBound))
                        }
                    }
                    #expect(try reducer.finish(finite: communicator.localRank != 1) == false, "one slice's gradient was not finite (on every host: the same slice)")
                    return (reduced.range, out)
                }
                for host in 0..<hosts {  // every host's ranks reduce the whole gradient, a slice each
                    var whole = [Float](repeating: .nan, count: elementCount), next = 0
                    for (range, values) in slices[(host * perHost)..<((host + 1) * perHost)] {
                        #expect(range.lowerBound == next && range.count > 0, "slices tile the gradient in rank order")
                        whole.replaceSubrange(range, with: values)
                        next = range.upperBound
                    }
                    #expect(next == elementCount)
                    expectIdentical(whole, precision == .float ? floats : exact.map { Float($0) },
                                    "\(precision), copied \(copied), host \(host) of \(hosts)")
                }
            }
        }
    }

    @Test("the run's choice: the host's ranks share the step unless one rank or the Int64 sum; overlap only with one worker and several ranks")
    func choice() throws {
        func parts(_ precision: ReductionPrecision, workers: Int = 1, batch: Int = 128, ranks: Int = 2) -> String {
            switch GradientReduction.sharedStepParts(precision: precision, workers: workers,
                                                     microBatches: MicroBatches(size: 32), batchSize: batch, ranks: ranks) {
            case .success(let parts): "\(parts)"
            case .failure(let reason): reason.description
            }
        }
        #expect(parts(.double, workers: 3) == "3")
        #expect(parts(.float, workers: 2) == "2")
        #expect(parts(.exact, batch: 128, ranks: 3) == "2")
        #expect(parts(.float, ranks: 1) == "one rank")
        #expect(parts(.exact) == "2", "the most micro-batches a rank computes")
        #expect(parts(.exact, workers: 2) == "2", "the exact sum's parts are micro-batches, whatever the workers")
        #expect(parts(.exact, batch: 32 * 65) == "65 micro-batches a batch: the Int64 sum")
        let kinds = try ThreadGroup.run(ranks: 2) { communicator -> [String] in
            var gradient = [Float](repeating: 0, count: elementCount)
            let host = try HostStepMemory.make(communicator: communicator, count: elementCount, stateCount: 0, partsPerRank: 1).get()
            return gradient.withUnsafeMutableBufferPointer { g in
                [(ReductionPrecision.double, false, 2), (.float, false, 1), (.double, true, 1), (.float, true, 2), (.exact, true, 1)].map {
                    let reducer = GradientReduction.make(precision: $0.0, overlap: $0.1, parts: $0.2, communicator: communicator,
                                                         parameterRanges: layout, gradient: g, microBatches: MicroBatches(size: 16),
                                                         threads: 1)
                    return String(describing: type(of: reducer))
                } + [String(describing: type(of: GradientReduction.make(precision: .exact, overlap: false, parts: 1, communicator: communicator,
                                                                      parameterRanges: layout, gradient: g, microBatches: MicroBatches(size: 16),
                                                                      host: host, threads: 1)))]
            }
        }
        #expect(kinds[0] == ["DoubleSum", "FloatSum", "OverlappedSum", "FloatSum", "FixedPointSum", "HostSum"])
        let alone = GradientReduction.make(precision: .double, overlap: true, parts: 1, communicator: SingleProcessCommunicator(),
                                           parameterRanges: layout, gradient: UnsafeMutableBufferPointer(start: nil, count: 0),
                                           microBatches: MicroBatches(size: 16), threads: 1)
        #expect(alone is DoubleSum)
    }
}
