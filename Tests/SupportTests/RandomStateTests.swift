// RandomState against numpy's own draws (Tests/References/numpy_randomstate0.json and values printed by numpy).
import Foundation
import Support
import Testing
import TestSupport

private func reference() throws -> JSON {
    try JSON.load(Fixtures.reference("numpy_randomstate0.json"))
}

/// The SHA-256 of `values` written as little-endian Int32, as the reference file hashes permutations.
private func digest(_ values: [Int32]) -> String {
    SHA256.hex(values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: v) >> UInt32(8 * $0)) } })
}

@Suite("numpy RandomState", .limit(minutes: 5))
struct RandomStateTests {
    @Test("raw words, random_sample and randn match RandomState(0)")
    func firstDraws() throws {
        let json = try reference()
        var words = RandomState(seed: 0)
        #expect((0..<5).map { _ in UInt64(words.nextUInt32()) } == json["first_uint32_draws"].ints.map(UInt64.init))
        var samples = RandomState(seed: 0)
        #expect((0..<5).map { _ in samples.randomSample() } == json["random_sample_first5"].doubles)
        var normals = RandomState(seed: 0)
        #expect((0..<6).map { _ in normals.standardNormal() } == json["randn_first6"].doubles)
    }

    @Test("the chapter's permutation(10000), then permutation(8000) from the same stream")
    func chapterPermutations() throws {
        let json = try reference()
        var generator = RandomState(seed: 0)
        let split = generator.permutation(10000)
        #expect(split.prefix(20).map(Int.init) == json["permutation_10000_first20"].ints)
        #expect(digest(split) == json["permutation_10000_sha256_int32le"].string)
        let epoch = generator.permutation(8000)
        #expect(epoch.prefix(20).map(Int.init) == json["then_permutation_8000_first20"].ints)
        #expect(digest(epoch) == json["then_permutation_8000_sha256_int32le"].string)
    }

    @Test("the chapter's MLP initial weights: 0.1 * randn(784, 1024), then 0.1 * randn(1024)")
    func initialWeights() throws {
        let json = try reference()
        var generator = RandomState(seed: 0)
        let w1 = (0..<(784 * 1024)).map { _ in 0.1 * generator.standardNormal() }
        let b1 = (0..<1024).map { _ in 0.1 * generator.standardNormal() }
        #expect(Array(w1.prefix(5)) == json["init_scale0.1_W1_784x1024_first5_row_major"].doubles)
        // numpy sums pairwise; the order differs from ours, so the sum agrees to rounding, not bit for bit.
        let sum = w1.reduce(0, +)
        #expect(abs(sum - json["init_scale0.1_W1_sum"].double) < 1e-9)
        #expect(Array(b1.prefix(5)) == json["init_scale0.1_b1_first5"].doubles)
    }
}

@Suite("numpy RandomState, seeding and restoring", .limit(minutes: 5))
struct RandomStateSeedingTests {
    // Values printed by numpy 2.4.6: RandomState([7, 3]).random_sample(3), .permutation(10) and
    // RandomState(12345).uniform(-0.5, 0.5, 3).
    @Test("array seeds (init_by_array) and uniform")
    func arraySeed() {
        var a = RandomState(seedArray: [7, 3])
        #expect((0..<3).map { _ in a.randomSample() } == [0.9770716452238201, 0.2604433886759464, 0.7565007906444766])
        var b = RandomState(seedArray: [7, 3])
        #expect(b.permutation(10) == [7, 4, 1, 6, 8, 3, 5, 2, 9, 0])
        var c = RandomState(seed: 12345)
        #expect((0..<3).map { _ in c.uniform(-0.5, 0.5) } == [0.42961609281714785, -0.1836244454182141, -0.31608118832290555])
    }

    @Test("a state saved mid-stream, with a cached normal, continues identically")
    func restore() {
        var original = RandomState(seed: 42)
        for _ in 0..<1000 { _ = original.nextUInt32() }
        _ = original.standardNormal()  // leaves the pair's second value cached
        let copy = RandomState(key: original.key, position: original.position, cachedGaussian: original.cachedGaussian)
        #expect(copy != nil)
        var restored = copy!
        #expect((0..<5).map { _ in restored.standardNormal() } == (0..<5).map { _ in original.standardNormal() })
        #expect(RandomState(key: [1, 2, 3], position: 0, cachedGaussian: nil) == nil)
        #expect(RandomState(key: original.key, position: 625, cachedGaussian: nil) == nil)
    }
}
