// A bit-for-bit copy of numpy's legacy `numpy.random.RandomState`: MT19937 with numpy's seeding, `random_sample`,
// `randn` (polar method with its cached second value), `uniform` and `permutation`.
//
// The chapter draws its split, its data shuffles and its MLP's initial weights from `RandomState(0)`; drawing the
// same numbers here is what lets mnist-dist reproduce the chapter's accuracies exactly rather than approximately.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// numpy's legacy random generator (`numpy.random.RandomState`), reproducing its streams exactly.
public struct RandomState: Equatable, Sendable {
    /// Number of 32-bit words in the MT19937 state.
    public static let stateWords = 624

    /// The MT19937 state words.
    public private(set) var key: [UInt32]
    /// Index of the next state word to temper (624 means the state must be regenerated first).
    public private(set) var position: Int
    /// The second normal deviate of the last polar-method pair, handed out by the next `standardNormal()`.
    public private(set) var cachedGaussian: Double?

    /// `RandomState(seed)` for an integer seed (numpy's `mt19937_seed`, Knuth's initialisation).
    public init(seed: UInt32) {
        key = [UInt32](repeating: 0, count: Self.stateWords)
        var value = seed
        for index in 0..<Self.stateWords {
            key[index] = value
            value = 1_812_433_253 &* (value ^ (value >> 30)) &+ UInt32(index + 1)
        }
        position = Self.stateWords
        cachedGaussian = nil
    }

    /// `RandomState([k0, k1, ...])` for an array seed (numpy's `mt19937_init_by_array`).
    /// - Precondition: `seedArray` is not empty.
    public init(seedArray: [UInt32]) {
        require(!seedArray.isEmpty, "RandomState(seedArray:): the seed array must not be empty")
        self.init(seed: 19_650_218)
        let n = Self.stateWords
        var i = 1
        var j = 0
        for _ in 0..<max(n, seedArray.count) {
            key[i] = (key[i] ^ ((key[i - 1] ^ (key[i - 1] >> 30)) &* 1_664_525)) &+ seedArray[j] &+ UInt32(j)
            i += 1
            j += 1
            if i >= n { key[0] = key[n - 1]; i = 1 }
            if j >= seedArray.count { j = 0 }
        }
        for _ in 0..<(n - 1) {
            key[i] = (key[i] ^ ((key[i - 1] ^ (key[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= n { key[0] = key[n - 1]; i = 1 }
        }
        key[0] = 0x8000_0000
        position = n
        cachedGaussian = nil
    }

    /// Restores a state saved from `key`, `position` and `cachedGaussian` (for checkpoints).
    /// - Returns: nil if the words do not form a valid state.
    public init?(key: [UInt32], position: Int, cachedGaussian: Double?) {
        guard key.count == Self.stateWords, (0...Self.stateWords).contains(position) else { return nil }
        self.key = key
        self.position = position
        self.cachedGaussian = cachedGaussian
    }

    /// The next raw 32-bit output (numpy's `mt19937_next32`).
    public mutating func nextUInt32() -> UInt32 {
        if position == Self.stateWords { regenerate() }
        var y = key[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// A double in [0, 1) with 53 random bits (`random_sample`).
    public mutating func randomSample() -> Double {
        let a = Double(nextUInt32() >> 5)
        let b = Double(nextUInt32() >> 6)
        return (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A draw from the uniform distribution on [low, high) (`uniform(low, high)`).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * randomSample()
    }

    /// A standard normal deviate (`randn`, numpy's legacy polar method; pairs are cached exactly as numpy does).
    public mutating func standardNormal() -> Double {
        if let cached = cachedGaussian {
            cachedGaussian = nil
            return cached
        }
        var x1 = 0.0, x2 = 0.0, r2 = 0.0
        repeat {
            x1 = 2.0 * randomSample() - 1.0
            x2 = 2.0 * randomSample() - 1.0
            r2 = x1 * x1 + x2 * x2
        } while r2 >= 1.0 || r2 == 0.0
        // log and sqrt from the C library, as numpy uses, so the values agree to the last bit.
        let f = sqrt(-2.0 * log(r2) / r2)
        cachedGaussian = f * x1
        return f * x2
    }

    /// A uniformly random integer in 0...bound (numpy's `random_interval`: masked rejection sampling).
    public mutating func randomInterval(_ bound: UInt32) -> UInt32 {
        if bound == 0 { return 0 }
        var mask = bound
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while true {
            let value = nextUInt32() & mask
            if value <= bound { return value }
        }
    }

    /// `permutation(n)`: 0..<n shuffled by numpy's Fisher-Yates (`shuffle`, walking down from the end).
    /// - Precondition: 0 <= n < 2^32.
    public mutating func permutation(_ n: Int) -> [Int32] {
        require(n >= 0 && n <= Int(Int32.max), "RandomState.permutation: n = \(n) is out of range")
        var values = (0..<Int32(n)).map { $0 }
        shuffle(&values)
        return values
    }

    /// Shuffles `values` in place exactly as numpy's legacy `shuffle` does a 1-D array.
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, through: 1, by: -1) {
            let j = Int(randomInterval(UInt32(i)))
            values.swapAt(i, j)
        }
    }

    /// MT19937's state transition (numpy's `mt19937_gen`).
    private mutating func regenerate() {
        let n = Self.stateWords, m = 397
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7fff_ffff, matrix: UInt32 = 0x9908_b0df
        key.withUnsafeMutableBufferPointer { mt in
            for i in 0..<n {
                let y = (mt[i] & upper) | (mt[(i + 1) % n] & lower)
                mt[i] = mt[(i + m) % n] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : matrix)
            }
        }
        position = 0
    }
}
