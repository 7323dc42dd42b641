// The sparse-input path of matmul (an input batch that is mostly zeros) against the dense sgemm path and a Double
// reference, its kernels on one thread and two, and products split over threads. Nothing here changes BLAS's
// process-wide settings (other suites run alongside): thread counts and parts are passed explicitly.
import Autodiff
import Testing
import TestSupport

@Suite("Sparse inputs and split products", .limit(minutes: 5))
struct SparseInputTests {
    /// An M x K input like an MNIST batch: `density` of the entries differ from `background` (in [0.1, 1)), some
    /// rows are all background, and so is the first entry (where a batch of images has a corner).
    static func sparseInput(rows: Int, columns: Int, density: Double, seed: UInt64, background: Float = 0) -> [Float] {
        var random = TestRandom(seed: seed)
        var x = [Float](repeating: background, count: rows * columns)
        for i in 0..<rows where i % 7 != 3 {  // every seventh row all background
            for j in 0..<columns where Double(random.uniform(0, 1)) < density { x[i * columns + j] = random.uniform(0.1, 1) }
        }
        if !x.isEmpty { x[0] = background }
        return x
    }

    /// The compressed form of x, or nil when x goes to sgemm.
    static func compressed(_ x: [Float], rows: Int, columns: Int) -> SparseInput? {
        x.withUnsafeBufferPointer { SparseInput($0.baseAddress!, rows: rows, columns: columns, byColumn: true, tape: nil) }
    }

    /// out = x · w and dw = xᵀ · g through the tape, with x a constant (sparse path when sparse enough) or a
    /// variable (which always takes sgemm, since x then needs a gradient).
    static func product(_ x: [Float], _ w: [Float], _ g: [Float], m: Int, k: Int, n: Int, dense: Bool,
                        twice: Bool = false) -> (out: [Float], dw: [Float]) {
        let tape = Tape()
        let input = dense ? tape.variable(x, shape: [m, k]) : tape.constant(x, shape: [m, k])
        let weight = tape.variable(w, shape: [k, n])
        var out = matmul(input, weight)
        if twice { out = out + matmul(input, weight) }  // the weight's gradient accumulates over two products
        let loss = sum(out * tape.constant(g, shape: [m, n]))
        tape.backward(from: loss)
        return (out.scalars, tape.gradient(of: weight))
    }

    /// A Double reference for x · w and xᵀ · g.
    static func reference(_ x: [Float], _ w: [Float], _ g: [Float], m: Int, k: Int, n: Int) -> (out: [Double], dw: [Double]) {
        var out = [Double](repeating: 0, count: m * n), dw = [Double](repeating: 0, count: k * n)
        for i in 0..<m {
            for p in 0..<k {
                for j in 0..<n {
                    out[i * n + j] += Double(x[i * k + p]) * Double(w[p * n + j])
                    dw[p * n + j] += Double(x[i * k + p]) * Double(g[i * n + j])
                }
            }
        }
        return (out, dw)
    }

    /// Shapes: MNIST's first layer, widths that leave a narrower last panel (100 = 64 + 36), one under a panel
    /// (10), and a tiny K; backgrounds 0 (inputs /255) and MNIST's standardised 0, (0 - 0.1307) / 0.3081. The sums
    /// differ from sgemm's only in order, so both are checked against a Double reference to Float accuracy over K
    /// terms.
    @Test("x · w and its weight gradient match a Double reference, as the dense path does",
          arguments: [(128, 784, 1024, 0.19), (37, 200, 100, 0.3), (16, 50, 10, 0.45), (9, 3, 70, 0.2)], [0, -0.42421296])
    func matchesReference(shape: (m: Int, k: Int, n: Int, density: Double), background: Float) throws {
        let (m, k, n, density) = shape
        var random = TestRandom(seed: UInt64(m * k + n))
        let x = Self.sparseInput(rows: m, columns: k, density: density, seed: UInt64(k), background: background)
        let sparse = try #require(Self.compressed(x, rows: m, columns: k), "the sparse path is taken")
        #expect(sparse.background == background && sparse.nonzeros == x.filter { $0 != background }.count)
        let w = random.array(k * n), g = random.array(m * n)
        let exact = Self.reference(x, w, g, m: m, k: k, n: n)
        let tolerance = 1e-6 * Double(k).squareRoot() + 1e-6
        for dense in [false, true] {
            let (out, dw) = Self.product(x, w, g, m: m, k: k, n: n, dense: dense)
            let outCheck = closeness(out, exact.out, rtol: tolerance, atol: tolerance)
            let dwCheck = closeness(dw, exact.dw, rtol: tolerance, atol: tolerance * Double(m).squareRoot())
            #expect(outCheck.passed, "out, dense \(dense): \(outCheck)")
            #expect(dwCheck.passed, "dw, dense \(dense): \(dwCheck)")
        }
    }

    /// With the column-major copy built and at most 128 rows, x · w walks x by column (each row of w added into the
    /// output rows that select it); otherwise by row (each output row gathering the rows of w it selects). Both give
    /// every output element the same multiply-adds in the same order, so the same bits: checked on MNIST's shape,
    /// a narrower last panel, an empty column range and the 128-row edge, on one thread and two.
    @Test("x · w walked by column gives the bits of the walk by row",
          arguments: [(128, 784, 1024, 0.19), (37, 200, 100, 0.3), (128, 64, 10, 0.05), (1, 30, 70, 0.2)], [0, -0.42421296])
    func walksAgree(shape: (m: Int, k: Int, n: Int, density: Double), background: Float) throws {
        let (m, k, n, density) = shape
        var random = TestRandom(seed: UInt64(3 * m + k))
        let x = Self.sparseInput(rows: m, columns: k, density: density, seed: UInt64(n), background: background)
        let w = random.array(k * n)
        for threads in [1, 2] {
            var outputs: [[Float]] = []
            for byColumn in [true, false] {
                let sparse = try #require(x.withUnsafeBufferPointer {
                    SparseInput($0.baseAddress!, rows: m, columns: k, byColumn: byColumn, tape: nil)
                })
                var out = [Float](repeating: .nan, count: m * n)
                var panels = [Float](repeating: .nan, count: sparse.forwardScratch(n: n, threads: threads))
                w.withUnsafeBufferPointer { w in
                    panels.withUnsafeMutableBufferPointer { panels in
                        out.withUnsafeMutableBufferPointer { out in
                            sparse.times(w.baseAddress!, n: n, ldw: n, into: out.baseAddress!, ldc: n,
                                         panels: panels.baseAddress!, threads: threads)
                        }
                    }
                }
                outputs.append(out)
            }
            #expect(outputs[0].allSatisfy { $0.isFinite }, "every output written, \(threads) threads")
            expectIdentical(outputs[0], outputs[1], "\(threads) threads")
        }
    }

    @Test("a gradient that accumulates over two products, and an all-zero input")
    func accumulationAndZeros() {
        let (m, k, n) = (20, 64, 130)
        var random = TestRandom(seed: 11)
        let x = Self.sparseInput(rows: m, columns: k, density: 0.25, seed: 3)
        let w = random.array(k * n), g = random.array(m * n)
        let sparse = Self.product(x, w, g, m: m, k: k, n: n, dense: false, twice: true)
        let dense = Self.product(x, w, g, m: m, k: k, n: n, dense: true, twice: true)
        let exact = Self.reference(x, w, g, m: m, k: k, n: n)
        #expect(closeness(sparse.out, exact.out.map { 2 * $0 }, rtol: 1e-5, atol: 1e-5).passed)
        #expect(closeness(sparse.dw, exact.dw.map { 2 * $0 }, rtol: 1e-5, atol: 1e-5).passed)
        #expect(closeness(sparse.dw, dense.dw, rtol: 1e-5, atol: 1e-5).passed)

        let zeros = [Float](repeating: 0, count: m * k)
        let empty = Self.product(zeros, w, g, m: m, k: k, n: n, dense: false)
        #expect(empty.out.allSatisfy { $0 == 0 } && empty.dw.allSatisfy { $0 == 0 })
    }

    /// A batch over the density limit (half its entries) goes through sgemm: a constant input then gives exactly
    /// what a variable input (always sgemm) gives.
    @Test("an input over the density limit takes sgemm")
    func denseInputTakesGemm() {
        let (m, k, n) = (32, 96, 128)
        var random = TestRandom(seed: 5)
        let x = Self.sparseInput(rows: m, columns: k, density: 0.9, seed: 8)  // about 77 % nonzero
        #expect(Self.compressed(x, rows: m, columns: k) == nil)
        let w = random.array(k * n), g = random.array(m * n)
        let asConstant = Self.product(x, w, g, m: m, k: k, n: n, dense: false)
        let asVariable = Self.product(x, w, g, m: m, k: k, n: n, dense: true)
        expectIdentical(asConstant.out, asVariable.out, "outputs")
        expectIdentical(asConstant.dw, asVariable.dw, "weight gradients")
    }

    /// The sparse kernels hand 64-column blocks to threads, each block summed in a fixed order: the result is the
    /// same bits on one thread and on two.
    @Test("the sparse kernels give the same bits on one thread and on two")
    func threadCountInvariance() throws {
        let (m, k, n) = (128, 784, 1024)
        var random = TestRandom(seed: 21)
        for background: Float in [0, -0.42421296] {
            let x = Self.sparseInput(rows: m, columns: k, density: 0.19, seed: 4, background: background)
            let w = random.array(k * n), g = random.array(m * n)
            let sparse = try #require(Self.compressed(x, rows: m, columns: k))
            func run(threads: Int) -> (out: [Float], dw: [Float]) {
                var out = [Float](repeating: .nan, count: m * n), dw = [Float](repeating: .nan, count: k * n)
                var panels = [Float](repeating: 0, count: max(sparse.forwardScratch(n: n, threads: threads),
                                                              sparse.gradientScratch(n: n, threads: threads)))
                w.withUnsafeBufferPointer { w in
                    g.withUnsafeBufferPointer { g in
                        panels.withUnsafeMutableBufferPointer { panels in
                            out.withUnsafeMutableBufferPointer { out in
                                sparse.times(w.baseAddress!, n: n, ldw: n, into: out.baseAddress!, ldc: n,
                                             panels: panels.baseAddress!, threads: threads)
                            }
                            dw.withUnsafeMutableBufferPointer { dw in
                                sparse.transposedTimes(g.baseAddress!, n: n, ldg: n, into: dw.baseAddress!, ldc: n,
                                                       accumulate: false, panels: panels.baseAddress!, threads: threads)
                            }
                        }
                    }
                }
                return (out, dw)
            }
            let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
            expectIdentical(two.out, one.out, "outputs, 2 threads")
            expectIdentical(three.out, one.out, "outputs, 3 threads")
            expectIdentical(two.dw, one.dw, "weight gradients, 2 threads")
            expectIdentical(three.dw, one.dw, "weight gradients, 3 threads")
            let viaMatmul = Self.product(x, w, g, m: m, k: k, n: n, dense: false)
            expectIdentical(viaMatmul.out, one.out, "outputs through matmul")
            expectIdentical(viaMatmul.dw, one.dw, "weight gradients through matmul")
        }
    }

    /// OpenBLAS's kernels do not sum every element the same way wherever a column range starts (measured on Zen 3:
    /// 1.4 % and 11 % of the elements of the first two shapes differ in the last bits between one part and two, none
    /// of the third), so a split product is checked against a
    /// Double reference, for giving the same bits every time it runs with the same number of parts, and for being
    /// exactly two unsplit products side by side, cut at column 512 (each width here is 8 blocks of 64 and more).
    @Test("split products: a Double reference's values, the same bits run after run, two halves, for every transpose",
          arguments: [(false, false), (true, false), (false, true), (true, true)], [(96, 1000, 130), (128, 1024, 784), (1024, 1024, 128)])
    func splitGemm(transposes: (Bool, Bool), shape: (Int, Int, Int)) {
        let (transposeA, transposeB) = transposes
        let (m, n, k) = shape
        var random = TestRandom(seed: 31)
        let a = random.array(m * k), b = random.array(k * n)
        let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
        /// C's columns `columns` computed in `parts` parts (C is NaN elsewhere).
        func product(parts: Int, columns: Range<Int> = 0..<n) -> [Float] {
            var out = [Float](repeating: .nan, count: m * n)  // beta 0: what C held must not matter
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { out in
                        let first = columns.lowerBound
                        BLAS.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: columns.count, k: k,
                                  a: a.baseAddress!, lda: lda, b: b.baseAddress! + (transposeB ? first * ldb : first),
                                  ldb: ldb, c: out.baseAddress! + first, ldc: n, plan: .serial, parts: parts)
                    }
                }
            }
            return out
        }
        let split = product(parts: 2)
        expectIdentical(product(parts: 2), split, "a second run of the same split")
        let left = product(parts: 1, columns: 0..<512), right = product(parts: 1, columns: 512..<n)
        let differing = (0..<m * n).count { split[$0] != ($0 % n < 512 ? left[$0] : right[$0]) }
        #expect(differing == 0, "\(differing) of \(m * n) elements are not the two halves' products")
        var exact = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for p in 0..<k {
                let left = Double(transposeA ? a[p * m + i] : a[i * k + p])
                for j in 0..<n { exact[i * n + j] += left * Double(transposeB ? b[j * k + p] : b[p * n + j]) }
            }
        }
        let tolerance = 2e-6 * Double(k).squareRoot()
        let check = closeness(split, exact, rtol: tolerance, atol: tolerance)
        #expect(check.passed, "\(m)x\(n)x\(k), transposes \(transposes): \(check)")
    }
}
