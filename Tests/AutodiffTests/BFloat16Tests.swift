// bfloat16 products: the kernel's rounding against an independent one, the kernel against Double sums of the rounded
// operands, and matmul, affine and conv2D in bf16 (forward and gradients) against Double sums of the unrounded
// ones, within bounds derived from bfloat16's 8 significant bits.
//
// bfloat16 keeps 8 significant bits, so rounding x to nearest gives x(1 + δ) with |δ| ≤ u = 2^-8, and a product of
// two rounded operands is off by at most (2u + u²)|a b|. That product is exact in Float (8 + 8 bits), so a sum of k
// of them in Float differs from the exact sum by at most γ(n) Σ|ã b̃| ≤ γ(n)(1 + u)² Σ|a b|, γ(n) = n e / (1 - n e),
// e = 2^-24, n the Float additions per element (k, one per block of 512 values of k, one for beta or a bias, and,
// in Winograd's case, the transforms' 16). Each check below holds every element to
//     |actual - Σ a b| ≤ (2u + u² + γ(n)(1 + u)²) Σ|a b|
// with Σ a b and Σ|a b| summed in Double. The kernel check holds the kernel to the correctly rounded operands, with
// only the Float sums' error allowed, so a kernel that rounds otherwise (truncates, or keeps 7 bits) fails it. The
// op checks hold each op to what a correct bf16 product can reach: a wrong operand, transpose or pullback misses it
// by orders of magnitude. Winograd's magnitudes over-count (they bound each transform term by its absolute value),
// so its checks are the loosest.
import Autodiff
import Testing
import TestSupport

private let u = 0x1p-8
private func gamma(_ n: Int) -> Double { Double(n) * 0x1p-24 / (1 - Double(n) * 0x1p-24) }
private func bound(additions n: Int) -> Double { 2 * u + u * u + gamma(n) * (1 + u) * (1 + u) }
private let bf16 = BFloat16.supported ? BLAS.Plan(parts: 1, precision: .bf16) : .serial

/// `x` rounded to bfloat16 in Double: the significand to 8 bits, to nearest with ties to even; subnormals to zeros of
/// their sign, as vdpbf16ps reads them; beyond the largest bfloat16, infinity.
private func roundedToBFloat16(_ x: Float) -> Float {
    if x.isNaN || x.isInfinite { return x }
    if x.isSubnormal || x == 0 { return x.sign == .minus ? -0.0 : 0 }
    let step = Double(sign: .plus, exponent: Int(x.exponent) - 7, significand: 1)
    let value = (Double(x) / step).rounded(.toNearestOrEven) * step
    return abs(value) > Double(Float.greatestFiniteMagnitude) ? (x.sign == .minus ? -.infinity : .infinity) : Float(value)
}

/// Every element within `factor` x magnitude of the exact value; the worst element's ratio in the message.
private func expectWithin(_ actual: [Float], _ exact: [Double], magnitudes: [Double], factor: Double, _ what: String) {
    #expect(actual.count == exact.count, "\(what): \(actual.count) values, expected \(exact.count)")
    var worst = (ratio: 0.0, index: 0)
    for i in 0..<min(actual.count, exact.count) {
        let error = abs(Double(actual[i]) - exact[i]), allowed = factor * magnitudes[i]
        let ratio = allowed > 0 ? error / allowed : (error == 0 ? 0 : .infinity)
        if ratio > worst.ratio { worst = (ratio, i) }
    }
    #expect(worst.ratio <= 1, "\(what): element \(worst.index) is \(actual[worst.index]), exact \(exact[worst.index]); error \(worst.ratio)x the bound")
}

/// row-major op(x) element (i, j) of a matrix stored rows x columns.
private func element(_ x: [Float], columns: Int, transposed: Bool, _ i: Int, _ j: Int) -> Double {
    Double(transposed ? x[j * columns + i] : x[i * columns + j])
}

/// Σ_k op(a)(i, k) op(b)(k, j) and Σ |…|, in Double.
private func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> (values: [Double], magnitudes: [Double]) {
    var values = [Double](repeating: 0, count: m * n), magnitudes = values
    for i in 0..<m {
        for j in 0..<n {
            for kk in 0..<k {
                let term = element(a, columns: ta ? m : k, transposed: ta, i, kk) * element(b, columns: tb ? k : n, transposed: tb, kk, j)
                values[i * n + j] += term
                magnitudes[i * n + j] += abs(term)
            }
        }
    }
    return (values, magnitudes)
}

@Suite("bfloat16 products", .limit(minutes: 5))
struct BFloat16Tests {
    @Test("the kernel rounds every operand to bfloat16 as rounding the significand to 8 bits in Double does, ties to even, on each of its four packing paths",
          .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"))
    func rounding() {
        var random = TestRandom(seed: 16)
        var values: [Float] = [0, -0, 1, -1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, 1 - 0x1p-10, 255.5, 0x1p-126,
                               -0x1p-126, 0x1p-130, -0x1p-140, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               0x1.fep127, 0x1.fdp127, .infinity, -.infinity, .nan]
        values += (0..<20_000).map { _ in random.uniform(-1, 1) * Float(sign: .plus, exponent: Int(random.next() % 60) - 30, significand: 1) }
        let count = values.count
        // x times 1 (exact in bfloat16) is x rounded: as op(a) (N x 1, either layout) and as op(b) (1 x N, either layout).
        for (name, m, n, ta, tb) in [("a", count, 1, false, false), ("aᵀ", count, 1, true, false),
                                     ("b", 1, count, false, false), ("bᵀ", 1, count, false, true)] {
            let onA = m == count
            let a = onA ? values : [1], b = onA ? [1] : values
            var c = [Float](repeating: 0, count: count)
            c.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: 1, a: a, lda: ta ? m : 1, b: b, ldb: tb ? 1 : n,
                          c: c.baseAddress!, ldc: n, plan: bf16)
            }
            var wrong = 0
            for (x, r) in zip(values, c) {
                let expected = roundedToBFloat16(x)
                // The accumulator starts at +0, so a product of -0 comes out +0: zeros are compared by value only.
                let same = expected.isNaN ? r.isNaN : (r == expected && (expected == 0 || r.sign == expected.sign))
                if !same {
                    wrong += 1
                    if wrong <= 3 { Issue.record("\(name): \(x) (bits \(String(x.bitPattern, radix: 16))) became \(r), expected \(expected)") }
                }
            }
            #expect(wrong == 0, "\(name): \(wrong) of \(count) values rounded otherwise")
        }
    }

    @Test("the kernel: every transpose, ragged shapes, beta 0 and 1, against Double sums of the rounded operands",
          .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"))
    func kernel() {
        var random = TestRandom(seed: 17)
        for (m, n, k) in [(1, 1, 1), (13, 37, 41), (9, 70, 1100), (17, 33, 1025), (8, 32, 64), (64, 96, 9)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for beta: Float in [0, 1] {
                    let a = random.array(m * k), b = random.array(k * n), c0 = random.array(m * n)
                    var c = c0
                    a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            c.withUnsafeMutableBufferPointer { c in
                                BLAS.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a.baseAddress!, lda: ta ? m : k,
                                          b: b.baseAddress!, ldb: tb ? k : n, beta: beta, c: c.baseAddress!, ldc: n, plan: bf16)
                            }
                        }
                    }
                    var (exact, magnitudes) = product(a.map(roundedToBFloat16), b.map(roundedToBFloat16), m: m, n: n, k: k, ta: ta, tb: tb)
                    if beta == 1 {
                        for i in exact.indices { exact[i] += Double(c0[i]); magnitudes[i] += abs(Double(c0[i])) }
                    }
                    // Rounded operands: only the Float sums' error remains.
                    expectWithin(c, exact, magnitudes: magnitudes, factor: gamma(k + k / 512 + 2),
                                 "\(m)x\(n)x\(k) ta=\(ta) tb=\(tb) beta=\(beta)")
                }
            }
        }
    }

    @Test("a product cut into column ranges, fixed or by thread count, has the bits of one call",
          .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"))
    func columnRanges() {
        var random = TestRandom(seed: 18)
        let (m, n, k) = (64, 1000, 300)
        let a = random.array(m * k), b = random.array(k * n)
        func run(_ plan: BLAS.Plan) -> [Float] {
            let tape = Tape(plan: plan)
            return matmul(tape.constant([m, k]) { _ = $0.update(fromContentsOf: a) },
                          tape.constant([k, n]) { _ = $0.update(fromContentsOf: b) }).scalars
        }
        let one = run(bf16)
        for plan in [BLAS.Plan(parts: 2, precision: .bf16), BLAS.Plan(parts: 3, precision: .bf16),
                     BLAS.Plan(parts: 3, fixedColumnBlock: 256, precision: .bf16)] {
            expectIdentical(run(plan), one, "\(plan.parts) parts, blocks \(plan.fixedColumnBlock ?? 0)")
        }
    }

    @Test("matmul and affine in bf16, forward and gradients, every transpose",
          .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"))
    func matmulGradients() {
        var random = TestRandom(seed: 19)
        let (m, n, k) = (11, 45, 600)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for withBias in [false, true] where !(withBias && ta) {
                let a = random.array(m * k), b = random.array(k * n), r = random.array(m * n), bias = random.array(n)
                var inputs = [(a, ta ? [k, m] : [m, k]), (b, tb ? [n, k] : [k, n])]
                if withBias { inputs.append((bias, [n])) }
                var output: [Float] = []
                let (_, gradients) = valueWithGradient(at: inputs, plan: bf16) { x in
                    let y = withBias ? affine(x[0], x[1], transposeB: tb, bias: x[2]) : matmul(x[0], x[1], transposeA: ta, transposeB: tb)
                    output = y.scalars
                    return sum(y * Tensor(shape: y.shape, scalars: r))
                }
                let name = "\(withBias ? "affine" : "matmul") ta=\(ta) tb=\(tb)"
                var forward = product(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
                if withBias {
                    for i in 0..<m { for j in 0..<n { forward.values[i * n + j] += Double(bias[j]); forward.magnitudes[i * n + j] += abs(Double(bias[j])) } }
                }
                expectWithin(output, forward.values, magnitudes: forward.magnitudes, factor: bound(additions: k + 3), "\(name): output")
                // dA = r · op(B)ᵀ (stored as A is), dB = op(A)ᵀ · r (stored as B is).
                let da = ta ? product(b, r, m: k, n: m, k: n, ta: tb, tb: true) : product(r, b, m: m, n: k, k: n, ta: false, tb: !tb)
                let db = tb ? product(r, a, m: n, n: k, k: m, ta: true, tb: ta) : product(a, r, m: k, n: n, k: m, ta: !ta, tb: false)
                expectWithin(gradients[0], da.values, magnitudes: da.magnitudes, factor: bound(additions: n + 3), "\(name): a's gradient")
                expectWithin(gradients[1], db.values, magnitudes: db.magnitudes, factor: bound(additions: m + 3), "\(name): b's gradient")
                if withBias {  // column sums of r: no product, Float sums only
                    let sums = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + Double(r[$1 * n + j]) } }
                    let sizes = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + abs(Double(r[$1 * n + j])) } }
                    expectWithin(gradients[2], sums, magnitudes: sizes, factor: gamma(m + 1), "\(name): bias gradient")
                }
            }
        }
    }

    @Test("conv2D in bf16 by im2col and by Winograd, forward and gradients",
          .enabled(if: BFloat16.supported, "this CPU has no AVX512_BF16"))
    func convolution() {
        var random = TestRandom(seed: 20)
        for algorithm in [ConvolutionAlgorithm.im2col, .winograd] {
            let (inputShape, weightShape) = ([2, 16, 9, 10], [12, 16, 3, 3])
            let x = random.array(inputShape.reduce(1, *)), w = random.array(weightShape.reduce(1, *))
            var output: [Float] = []
            let probe = conv2D(Tensor(shape: inputShape, scalars: x), weight: Tensor(shape: weightShape, scalars: w), bias: nil)
            let r = random.array(probe.count)
            let (_, gradients) = valueWithGradient(at: [(x, inputShape), (w, weightShape)], plan: bf16) { v in
                let y = conv2D(v[0], weight: v[1], bias: nil, algorithm: algorithm)
                output = y.scalars
                return sum(y * Tensor(shape: y.shape, scalars: r))
            }
            let exact = ConvolutionReference.forward(input: x, inputShape: inputShape, weight: w, weightShape: weightShape,
                                                     bias: nil, stride: 1, padding: .valid).values
            let k = 16 * 9
            if algorithm == .im2col {
                let sizes = ConvolutionReference.forward(input: x.map(abs), inputShape: inputShape, weight: w.map(abs),
                                                         weightShape: weightShape, bias: nil, stride: 1, padding: .valid).values
                expectWithin(output, exact, magnitudes: sizes, factor: bound(additions: k + 2), "im2col output")
                let grads = ConvolutionReference.gradients(input: x, inputShape: inputShape, weight: w, weightShape: weightShape,
                                                           stride: 1, padding: .valid, outputGradient: r)
                let gradSizes = ConvolutionReference.gradients(input: x.map(abs), inputShape: inputShape, weight: w.map(abs),
                                                               weightShape: weightShape, stride: 1, padding: .valid,
                                                               outputGradient: r.map(abs))
                // Each input value collects the output gradient over every output it feeds (12 x 9 terms); each weight
                // over every output position of both images (2 x 7 x 8).
                expectWithin(gradients[0], grads.input, magnitudes: gradSizes.input, factor: bound(additions: 12 * 9 + 2), "im2col input gradient")
                expectWithin(gradients[1], grads.weight, magnitudes: gradSizes.weight, factor: bound(additions: 2 * 7 * 8 + 2), "im2col weight gradient")
            } else {
                let sizes = winogradMagnitudes(x, inputShape, w, weightShape, outputGradient: r)
                expectWithin(output, exact, magnitudes: sizes.output, factor: bound(additions: 16 + 16 + 2), "Winograd output")
                let grads = ConvolutionReference.gradients(input: x, inputShape: inputShape, weight: w, weightShape: weightShape,
                                                           stride: 1, padding: .valid, outputGradient: r)
                // Sums over the 32 tiles of both images (weights) or the 12 output channels and 4 overlapping tiles
                // (inputs), plus the transforms' additions.
                expectWithin(gradients[1], grads.weight, magnitudes: sizes.weight, factor: bound(additions: 32 + 32 + 2),
                             "Winograd weight gradient")
                expectWithin(gradients[0], grads.input, magnitudes: sizes.input, factor: bound(additions: 4 * 12 + 32 + 2),
                             "Winograd input gradient")
            }
        }
    }
}

/// Magnitudes of the terms whose operands bf16 rounds when a valid 3x3 convolution runs by Winograd F(2x2, 3x3)
/// (the matrices as in Winograd.swift), each summed in Double over absolute values:
/// - output: Σ_channels |Aᵀ| (|U| ⊙ |V|) |A|, with |U| = |G| |g| |G|ᵀ and |V| = |Bᵀ| |d| |B|;
/// - weight gradient: |G|ᵀ (Σ_tiles |Ŷ| ⊙ |V|) |G|, with |Ŷ| = |A| |dy| |Aᵀ|;
/// - input gradient: Σ over the tiles covering a pixel of |B| (Σ_outputs |Ŷ| ⊙ |U|) |Bᵀ|.
private func winogradMagnitudes(_ x: [Float], _ inputShape: [Int], _ w: [Float], _ weightShape: [Int], outputGradient r: [Float])
    -> (output: [Double], weight: [Double], input: [Double]) {
    let bt: [[Double]] = [[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]]  // |Bᵀ|
    let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]]  // |G|
    let at: [[Double]] = [[1, 1, 1, 0], [0, 1, 1, 1]]                             // |Aᵀ|
    let (n, c, h, wd) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3]), o = weightShape[0]
    let (oh, ow) = (h - 2, wd - 2)
    typealias Tile = [[Double]]
    let zero = Tile(repeating: [Double](repeating: 0, count: 4), count: 4)
    // |U| per (output, channel), |V| per (image, channel, tile), |Ŷ| per (image, output, tile).
    func u(_ out: Int, _ channel: Int) -> Tile {
        var result = zero
        for i in 0..<4 { for j in 0..<4 { for a in 0..<3 { for b in 0..<3 {
            result[i][j] += g[i][a] * abs(Double(w[((out * c + channel) * 3 + a) * 3 + b])) * g[j][b]
        } } } }
        return result
    }
    func v(_ image: Int, _ channel: Int, _ ty: Int, _ tx: Int) -> Tile {
        var result = zero
        for i in 0..<4 { for j in 0..<4 { for a in 0..<4 { for b in 0..<4 {
            let (iy, ix) = (2 * ty + a, 2 * tx + b)
            guard iy < h && ix < wd else { continue }
            result[i][j] += bt[i][a] * abs(Double(x[((image * c + channel) * h + iy) * wd + ix])) * bt[j][b]
        } } } }
        return result
    }
    func yhat(_ image: Int, _ out: Int, _ ty: Int, _ tx: Int) -> Tile {
        var result = zero
        for i in 0..<4 { for j in 0..<4 { for p in 0..<2 { for q in 0..<2 {
            let (oy, ox) = (2 * ty + p, 2 * tx + q)
            guard oy < oh && ox < ow else { continue }
            result[i][j] += at[p][i] * abs(Double(r[((image * o + out) * oh + oy) * ow + ox])) * at[q][j]
        } } } }
        return result
    }
    let us = (0..<o).map { out in (0..<c).map { u(out, $0) } }
    var output = [Double](repeating: 0, count: n * o * oh * ow)
    var weight = [Double](repeating: 0, count: w.count), input = [Double](repeating: 0, count: x.count)
    for image in 0..<n {
        for ty in 0..<(oh + 1) / 2 {
            for tx in 0..<(ow + 1) / 2 {
                let vs = (0..<c).map { v(image, $0, ty, tx) }, ys = (0..<o).map { yhat(image, $0, ty, tx) }
                for out in 0..<o {
                    var m = zero
                    for channel in 0..<c { for i in 0..<4 { for j in 0..<4 { m[i][j] += us[out][channel][i][j] * vs[channel][i][j] } } }
                    for p in 0..<2 { for q in 0..<2 where 2 * ty + p < oh && 2 * tx + q < ow {
                        var total = 0.0
                        for i in 0..<4 { for j in 0..<4 { total += at[p][i] * m[i][j] * at[q][j] } }
                        output[((image * o + out) * oh + 2 * ty + p) * ow + 2 * tx + q] = total
                    } }
                    for channel in 0..<c {  // this tile's share of the weight gradient: |G|ᵀ (|Ŷ| ⊙ |V|) |G|
                        for a in 0..<3 { for b in 0..<3 {
                            var total = 0.0
                            for i in 0..<4 { for j in 0..<4 { total += g[i][a] * ys[out][i][j] * vs[channel][i][j] * g[j][b] } }
                            weight[((out * c + channel) * 3 + a) * 3 + b] += total
                        } }
                    }
                }
                for channel in 0..<c {  // |B| (Σ_outputs |Ŷ| ⊙ |U|) |Bᵀ|, added into the tile's patch
                    var q = zero
                    for out in 0..<o { for i in 0..<4 { for j in 0..<4 { q[i][j] += ys[out][i][j] * us[out][channel][i][j] } } }
                    for a in 0..<4 { for b in 0..<4 where 2 * ty + a < h && 2 * tx + b < wd {
                        var total = 0.0
                        for i in 0..<4 { for j in 0..<4 { total += bt[i][a] * q[i][j] * bt[j][b] } }
                        input[((image * c + channel) * h + 2 * ty + a) * wd + 2 * tx + b] += total
                    } }
                }
            }
        }
    }
    return (output, weight, input)
}
