// The flat-buffer helpers around the training step: how a loop is split over threads, the finiteness check, and
// the beta-0 path of BLAS.gemm that zeroes C itself.
import Autodiff
import Dispatch
import Foundation
import Support
import Testing
import TestSupport

@Suite("Flat buffers and BLAS.gemm", .limit(minutes: 5))
struct BufferTests {
    @Test("parts cover 0..<count exactly once, in order, cut on 64-element boundaries", arguments: [0, 1, 63, 40_000, 65_536, 100_001])
    func parts(count: Int) {
        for threads in 1...4 {
            let partCount = Parallel.partCount(of: count, threads: threads)
            let parts = (0..<partCount).map { Parallel.part($0, of: count, parts: partCount) }
            #expect(parts.first?.lowerBound == 0 && parts.last?.upperBound == count)
            for (a, b) in zip(parts, parts.dropFirst()) { #expect(a.upperBound == b.lowerBound && b.lowerBound % 64 == 0) }
            #expect(parts.count == (count >= 2 * Parallel.minimumPerThread ? min(threads, count / Parallel.minimumPerThread) : 1))
        }
    }

    /// 1e30 is finite, but its square is not: a sum of squares would call this buffer non-finite.
    @Test("allFinite: large finite values pass; one NaN or infinity anywhere fails, on 1 and 2 threads")
    func finiteness() {
        var random = TestRandom(seed: 7)
        let count = 2 * Parallel.minimumPerThread + 13  // two parts, and a tail that is not a multiple of 8
        var values = random.array(count)
        values[5] = 1e30
        values[count - 1] = -3e38
        for threads in [1, 2] {
            #expect(values.withUnsafeBufferPointer { BufferMath.allFinite($0, threads: threads) })
            for position in [0, 9, count / 2, count - 8, count - 1] {
                for bad in [Float.nan, .infinity, -.infinity] {
                    var damaged = values
                    damaged[position] = bad
                    #expect(!damaged.withUnsafeBufferPointer { BufferMath.allFinite($0, threads: threads) },
                            "\(bad) at \(position), \(threads) threads")
                }
            }
        }
        #expect([Float]().withUnsafeBufferPointer { BufferMath.allFinite($0) })
    }

    /// With beta 0 the old contents of C must not matter, NaN included, on the memset path (m * n >= 4096) as on
    /// the plain one, and the product must be the same as a Double reference to Float rounding.
    @Test("gemm with beta 0 ignores what C held, on both sides of the memset threshold", arguments: [(8, 8, 5), (64, 96, 33), (70, 64, 1)])
    func betaZero(m: Int, n: Int, k: Int) {
        var random = TestRandom(seed: UInt64(m * n + k))
        let a = random.array(m * k), b = random.array(k * n)
        let ldc = n + 3  // a row stride wider than the row: the padding columns must be left alone
        var c = [Float](repeating: .nan, count: m * ldc)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n, beta: 0, c: c.baseAddress!, ldc: ldc,
                              plan: .serial)
                }
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0
                for p in 0..<k { exact += Double(a[i * k + p]) * Double(b[p * n + j]) }
                #expect(abs(Double(c[i * ldc + j]) - exact) <= 1e-5 * max(1, abs(exact)), "C[\(i), \(j)]")
            }
            for j in n..<ldc { #expect(c[i * ldc + j].isNaN, "padding C[\(i), \(j)] was written") }
        }
    }
}
