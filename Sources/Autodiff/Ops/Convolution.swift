// 2-D convolution (cross-correlation, as in PyTorch) over N, C, H, W: im2col + sgemm forward, sgemm + col2im
// backward, and a naive direct convolution kept beside it as the reference the tests compare against.
//
// Per image, im2col lays the input out as a K x P matrix (K = C*KH*KW patch rows, P = OH*OW positions), so that
//   forward        Y (O x P)  = W (O x K) · col (K x P) + b
//   weight grad    dW (O x K) += dY (O x P) · colᵀ
//   input grad     dcol (K x P) = Wᵀ · dY, scattered back by col2im.
// One image's columns (K x P floats: 663 KB for the chapter's conv2) are built in a scratch buffer that stays in
// the core's cache for the GEMMs that read them; backward rebuilds them rather than keeping N x K x P floats (85 MB
// for a batch of 128) in memory, which costs less than writing and re-reading them would.
import Support

/// How much zero padding surrounds the input.
public enum Padding: Equatable, Sendable {
    /// None: the kernel stays inside the input.
    case valid
    /// Enough that the output has ceil(input / stride) positions; an odd total puts the extra row/column at the
    /// bottom/right (as TensorFlow and PyTorch's `padding='same'` do).
    case same
    /// The same number of rows above and below, and columns left and right.
    case explicit(rows: Int, columns: Int)
}

/// Sizes of one convolution, derived from its input and weight shapes.
struct ConvolutionGeometry {
    let n: Int, c: Int, h: Int, w: Int           // input N, C, H, W
    let o: Int, kh: Int, kw: Int                  // weight O, (C), KH, KW
    let stride: Int
    let padTop: Int, padLeft: Int
    let oh: Int, ow: Int
    var k: Int { c * kh * kw }
    var p: Int { oh * ow }

    init(_ op: String, input: [Int], weight: [Int], stride: Int, padding: Padding) {
        require(input.count == 4, "\(op): input must be N, C, H, W, got \(describe(input))")
        require(weight.count == 4, "\(op): weight must be O, C, KH, KW, got \(describe(weight))")
        require(input[1] == weight[1], "\(op): input \(describe(input)) has \(input[1]) channels but weight "
                        + "\(describe(weight)) expects \(weight[1])")
        require(stride > 0, "\(op): stride \(stride) must be positive")
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (weight[0], weight[2], weight[3])
        self.stride = stride
        var top = 0, bottom = 0, left = 0, right = 0
        switch padding {
        case .valid:
            break
        case .same:
            let outH = (h + stride - 1) / stride, outW = (w + stride - 1) / stride
            let totalH = max((outH - 1) * stride + kh - h, 0), totalW = max((outW - 1) * stride + kw - w, 0)
            (top, bottom, left, right) = (totalH / 2, totalH - totalH / 2, totalW / 2, totalW - totalW / 2)
        case .explicit(let rows, let columns):
            require(rows >= 0 && columns >= 0, "\(op): padding (\(rows), \(columns)) must not be negative")
            (top, bottom, left, right) = (rows, rows, columns, columns)
        }
        require(h + top + bottom >= kh && w + left + right >= kw,
                     "\(op): kernel \(kh)x\(kw) does not fit the padded input \(describe(input))")
        (padTop, padLeft) = (top, left)
        oh = (h + top + bottom - kh) / stride + 1
        ow = (w + left + right - kw) / stride + 1
    }

    /// For kernel column `kx`, the output columns whose input column lies inside the image (stride 1).
    @inline(__always)
    func insideColumns(_ kx: Int) -> Range<Int> {
        let lo = max(0, padLeft - kx), hi = min(ow, w + padLeft - kx)
        return lo..<max(lo, hi)
    }
}

/// Lays one image (C x H x W) out as patches: `col` is K x P.
func im2col(_ image: UnsafePointer<Float>, _ g: ConvolutionGeometry, _ col: UnsafeMutablePointer<Float>) {
    for ch in 0..<g.c {
        for ky in 0..<g.kh {
            for kx in 0..<g.kw {
                let row = col + ((ch * g.kh + ky) * g.kw + kx) * g.p
                let inside = g.insideColumns(kx)
                for oy in 0..<g.oh {
                    let dst = row + oy * g.ow
                    let iy = oy * g.stride + ky - g.padTop
                    guard iy >= 0 && iy < g.h else {
                        dst.update(repeating: 0, count: g.ow)
                        continue
                    }
                    let src = image + (ch * g.h + iy) * g.w
                    if g.stride == 1 {
                        for ox in 0..<inside.lowerBound { dst[ox] = 0 }
                        (dst + inside.lowerBound).update(from: src + inside.lowerBound + kx - g.padLeft, count: inside.count)
                        for ox in inside.upperBound..<g.ow { dst[ox] = 0 }
                    } else {
                        for ox in 0..<g.ow {
                            let ix = ox * g.stride + kx - g.padLeft
                            dst[ox] = ix >= 0 && ix < g.w ? src[ix] : 0
                        }
                    }
                }
            }
        }
    }
}

/// Adds patches (`col`, K x P) back into one image's gradient (C x H x W): the adjoint of `im2col`.
func col2im(_ col: UnsafePointer<Float>, _ g: ConvolutionGeometry, _ image: UnsafeMutablePointer<Float>) {
    for ch in 0..<g.c {
        for ky in 0..<g.kh {
            for kx in 0..<g.kw {
                let row = col + ((ch * g.kh + ky) * g.kw + kx) * g.p
                let inside = g.insideColumns(kx)
                for oy in 0..<g.oh {
                    let iy = oy * g.stride + ky - g.padTop
                    guard iy >= 0 && iy < g.h else { continue }
                    let src = row + oy * g.ow
                    let dst = image + (ch * g.h + iy) * g.w
                    if g.stride == 1 {
                        let shifted = dst + kx - g.padLeft
                        for ox in inside { shifted[ox] += src[ox] }
                    } else {
                        for ox in 0..<g.ow {
                            let ix = ox * g.stride + kx - g.padLeft
                            if ix >= 0 && ix < g.w { dst[ix] += src[ox] }
                        }
                    }
                }
            }
        }
    }
}

/// What a convolution may apply to its output inside the same op.
public enum Activation: String, Sendable {
    case identity
    case relu
}

/// How a convolution computes: im2col + sgemm, or Winograd F(2x2, 3x3) (3x3 kernels at stride 1 only).
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd where it applies and pays (3x3, stride 1, at least 8 channels in and out), im2col elsewhere.
    case automatic
    case im2col
    case winograd
}

extension ConvolutionAlgorithm {
    /// The algorithm `conv2D` runs for these shapes when asked for `.automatic`.
    public static func chosen(input: [Int], weight: [Int], stride: Int = 1, padding: Padding = .valid) -> ConvolutionAlgorithm {
        let g = ConvolutionGeometry("ConvolutionAlgorithm.chosen", input: input, weight: weight, stride: stride, padding: padding)
        return WinogradPlan.applies(to: g) ? .winograd : .im2col
    }
}

/// 2-D convolution (cross-correlation) of `input` with `weight`, plus `bias`, optionally followed by an activation
/// and a max-pool, fused.
///
/// Fusing is what keeps the chapter's CNN off main memory: each image's convolution output (O x P: 147 KB for
/// conv2) is activated and pooled while still in cache, and only the pooled result is written, where the unfused
/// chain writes and re-reads three 19 MB tensors per batch of 128 forward and as many backward. The results are
/// exactly those of `maxPool2D(relu(conv2D(...)))` (tested).
///
/// - Parameters:
///   - input: N x C x H x W.
///   - weight: O x C x KH x KW.
///   - bias: O values, or nil.
///   - stride: step of the kernel in both directions.
///   - padding: zero padding around the input.
///   - activation: applied to the convolution's output.
///   - maxPool: if given, the size (and stride) of a max-pool window applied after the activation.
///   - algorithm: im2col, Winograd, or the better of the two for these shapes.
/// - Returns: N x O x OH x OW, or N x O x (OH / maxPool) x (OW / maxPool) when pooling.
/// - Precondition: the channel counts agree and the kernel fits the padded input.
public func conv2D(_ input: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding = .valid,
                   activation: Activation = .identity, maxPool: Int? = nil,
                   algorithm: ConvolutionAlgorithm = .automatic) -> Tensor {
    let g = ConvolutionGeometry("conv2D", input: input.shape, weight: weight.shape, stride: stride, padding: padding)
    if let bias {
        require(bias.shape == [g.o], "conv2D: bias \(describe(bias.shape)) does not match weight \(describe(weight.shape))")
    }
    let pool = maxPool ?? 1
    require(pool >= 1 && g.oh >= pool && g.ow >= pool,
            "conv2D: max-pool window \(pool) does not fit the \(g.oh)x\(g.ow) output")
    let winogradApplies = g.kh == 3 && g.kw == 3 && g.stride == 1
    require(algorithm != .winograd || winogradApplies,
            "conv2D: Winograd F(2x2, 3x3) needs a 3x3 kernel at stride 1, not \(g.kh)x\(g.kw) at stride \(g.stride)")
    let plan = algorithm == .winograd || (algorithm == .automatic && WinogradPlan.applies(to: g)) ? WinogradPlan(g) : nil
    let chunk = plan?.chunk ?? 1  // images computed together
    // Winograd with a 2x2 pool: bias, activation and pool happen in the output transform (see Winograd.swift).
    let poolInTransform = plan.map { winogradPoolFuses($0, maxPool: maxPool) } ?? false
    let (ph, pw) = (g.oh / pool, g.ow / pool)
    let pooled = ph * pw
    let out = Tape.output("conv2D", shape: [g.n, g.o, maxPool == nil ? g.oh : ph, maxPool == nil ? g.ow : pw],
                          inputList: bias.map { [input, weight, $0] } ?? [input, weight])
    let allocate = { (count: Int) in out.tape.map { $0.arena.allocate(count) } ?? TensorStorage(capacity: count) }
    let threading = out.tape?.plan ?? .serial
    let outputSize = g.o * g.p, imageSize = g.c * g.h * g.w
    let tiles = plan.map { chunk * $0.tilesPerImage } ?? 0
    // im2col: one image's columns (K x P). Winograd: the chunk's transformed input tiles V (16 x C x T).
    let scratch = allocate(plan == nil ? g.k * g.p : 16 * g.c * tiles)
    let transformedWeights = plan.map { _ in allocate(16 * g.o * g.c) }  // U: 16 x O x C
    let products = plan.map { _ in allocate(16 * g.o * tiles) }        // M: 16 x O x T
    let convolved = maxPool == nil || poolInTransform ? nil : allocate(chunk * outputSize) // output before pooling
    let argmaxStorage = maxPool == nil ? nil : allocate(g.n * g.o * pooled) // Int32 winners of each window
    let x = input.pointer, wt = weight.pointer, y = out.pointer
    if let plan, let transformedWeights { winogradTransformWeights(wt, plan, transformedWeights.pointer) }

    for first in Swift.stride(from: 0, to: g.n, by: chunk) {
        let images = min(chunk, g.n - first)
        let target = convolved?.pointer ?? (y + first * outputSize)
        if let plan, let transformedWeights, let products {
            let t = images * plan.tilesPerImage
            winogradTransformInput(x + first * imageSize, images: images, plan, scratch.pointer)
            for xi in 0..<16 {
                BLAS.gemm(m: g.o, n: t, k: g.c, a: transformedWeights.pointer + xi * g.o * g.c, lda: g.c,
                          b: scratch.pointer + xi * g.c * t, ldb: t, c: products.pointer + xi * g.o * t, ldc: t,
                          plan: threading)
            }
            if poolInTransform, let argmaxStorage {
                argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                    winogradTransformOutputPooled(products.pointer, images: images, plan, bias: bias?.pointer,
                                                  relu: activation == .relu, y + first * g.o * pooled,
                                                  argmax + first * g.o * pooled)
                }
                continue
            }
            winogradTransformOutput(products.pointer, images: images, plan, bias: bias?.pointer, target)
        } else {
            im2col(x + first * imageSize, g, scratch.pointer)
            if let bias {
                for channel in 0..<g.o { (target + channel * g.p).update(repeating: bias.pointer[channel], count: g.p) }
            }
            BLAS.gemm(m: g.o, n: g.p, k: g.k, a: wt, lda: g.k, b: scratch.pointer, ldb: g.p, beta: bias == nil ? 0 : 1,
                      c: target, ldc: g.p, plan: threading)
        }
        if activation == .relu {
            for i in 0..<(images * outputSize) { target[i] = max(target[i], 0) }
        }
        if let argmaxStorage {
            argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                for plane in (first * g.o)..<((first + images) * g.o) {
                    poolPlane(target + (plane - first * g.o) * g.p, height: g.oh, width: g.ow, window: pool,
                              y + plane * pooled, argmax + plane * pooled)
                }
            }
        }
    }

    out.tape?.record(out) { tape, upstream in
        let dw = tape.gradientDestination(of: weight)
        let db = bias.flatMap { tape.gradientDestination(of: $0) }
        let dx = tape.gradientDestination(of: input)
        // The chunk's gradient at the convolution's output, when the activation or pool stand between.
        let outputGradient = (activation == .identity && maxPool == nil) || poolInTransform
            ? nil : tape.arena.allocate(chunk * outputSize)
        // im2col: dcol of one image (K x P). Winograd: Q (16 x C x T).
        let inputScratch = dx == nil ? nil : tape.arena.allocate(plan == nil ? g.k * g.p : 16 * g.c * tiles)
        let transformedGradient = plan.map { _ in tape.arena.allocate(16 * g.o * tiles) }       // Ŷ: 16 x O x T
        let weightProducts = plan == nil || dw == nil ? nil : tape.arena.allocate(16 * g.o * g.c) // P: 16 x O x C
        withExtendedLifetime((scratch, transformedWeights, products, argmaxStorage, outputGradient, inputScratch,
                              transformedGradient, weightProducts)) {
            if let (db, accumulate) = db, !accumulate { db.update(repeating: 0, count: g.o) }
            for first in Swift.stride(from: 0, to: g.n, by: chunk) {
                let images = min(chunk, g.n - first)
                if poolInTransform, let plan, let transformedWeights, let transformedGradient, let argmaxStorage {
                    // Straight from the pooled gradient to Ŷ (and the bias gradient), as the forward fused the pool.
                    let planes = first * g.o * pooled, relu = activation == .relu
                    if let (db, _) = db {
                        for image in 0..<images {
                            for channel in 0..<g.o {
                                let start = planes + (image * g.o + channel) * pooled
                                db[channel] += relu ? vectorSum(upstream + start, wherePositive: y + start, pooled)
                                    : vectorSum(upstream + start, pooled)
                            }
                        }
                    }
                    argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                        winogradTransformPooledGradient(upstream + planes, pooled: y + planes, argmax: argmax + planes,
                                                        images: images, plan, relu: relu, transformedGradient.pointer)
                    }
                    winogradGradients(plan, first: first, images: images, input: x + first * imageSize,
                                      transformedInput: scratch.pointer, transformedWeights: transformedWeights.pointer,
                                      transformedGradient: transformedGradient.pointer, weightProducts: weightProducts?.pointer,
                                      inputScratch: inputScratch?.pointer, dx: dx.map { ($0.0 + first * imageSize, $0.accumulate) },
                                      threading: tape.plan)
                    continue
                }
                // Gradient at the convolution's output for these images: through the pool and the activation.
                let dyChunk: UnsafeMutablePointer<Float>
                if let outputGradient {
                    dyChunk = outputGradient.pointer
                    for image in first..<(first + images) {
                        let dyn = dyChunk + (image - first) * outputSize
                        if let argmaxStorage {
                            dyn.update(repeating: 0, count: outputSize)
                            argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                                for channel in 0..<g.o {
                                    let plane = image * g.o + channel
                                    let winners = argmax + plane * pooled, values = y + plane * pooled
                                    let gradient = upstream + plane * pooled, target = dyn + channel * g.p
                                    for j in 0..<pooled where activation == .identity || values[j] > 0 {
                                        target[Int(winners[j])] += gradient[j]
                                    }
                                }
                            }
                        } else {
                            let values = y + image * outputSize, gradient = upstream + image * outputSize
                            for i in 0..<outputSize { dyn[i] = values[i] > 0 ? gradient[i] : 0 }
                        }
                    }
                } else {
                    dyChunk = upstream + first * outputSize
                }
                if let (db, _) = db {
                    for image in 0..<images {
                        for channel in 0..<g.o {
                            db[channel] += vectorSum(dyChunk + image * outputSize + channel * g.p, g.p)
                        }
                    }
                }
                if let plan, let transformedWeights, let transformedGradient {
                    winogradTransformOutputGradient(dyChunk, images: images, plan, transformedGradient.pointer)
                    winogradGradients(plan, first: first, images: images, input: x + first * imageSize,
                                      transformedInput: scratch.pointer, transformedWeights: transformedWeights.pointer,
                                      transformedGradient: transformedGradient.pointer, weightProducts: weightProducts?.pointer,
                                      inputScratch: inputScratch?.pointer, dx: dx.map { ($0.0 + first * imageSize, $0.accumulate) },
                                      threading: tape.plan)
                } else {
                    let dyn = dyChunk  // im2col works one image at a time
                    if let (dw, accumulate) = dw {
                        im2col(x + first * imageSize, g, scratch.pointer)
                        BLAS.gemm(transposeB: true, m: g.o, n: g.k, k: g.p, a: dyn, lda: g.p, b: scratch.pointer, ldb: g.p,
                                  beta: (first == 0 && !accumulate) ? 0 : 1, c: dw, ldc: g.k, plan: tape.plan)
                    }
                    if let (dx, accumulate) = dx, let inputScratch {
                        BLAS.gemm(transposeA: true, m: g.k, n: g.p, k: g.o, a: wt, lda: g.k, b: dyn, ldb: g.p,
                                  c: inputScratch.pointer, ldc: g.p, plan: tape.plan)
                        let dxn = dx + first * imageSize
                        if !accumulate { dxn.update(repeating: 0, count: imageSize) }
                        col2im(inputScratch.pointer, g, dxn)
                    }
                }
            }
            if let plan, let weightProducts, let (dw, accumulate) = dw {
                winogradWeightGradient(weightProducts.pointer, plan, dw, accumulate: accumulate)
            }
        }
    }
    return out
}

/// The Winograd GEMMs of one chunk's backward pass, given its Ŷ: the weight-gradient products P (summed over the
/// chunks; the first chunk overwrites) and the input gradient, added into `dx` (overwritten first unless it
/// accumulates).
private func winogradGradients(_ plan: WinogradPlan, first: Int, images: Int, input: UnsafePointer<Float>,
                               transformedInput: UnsafeMutablePointer<Float>, transformedWeights: UnsafePointer<Float>,
                               transformedGradient: UnsafePointer<Float>, weightProducts: UnsafeMutablePointer<Float>?,
                               inputScratch: UnsafeMutablePointer<Float>?,
                               dx: (UnsafeMutablePointer<Float>, accumulate: Bool)?, threading: BLAS.Plan) {
    let g = plan.g
    let t = images * plan.tilesPerImage
    if let weightProducts {
        winogradTransformInput(input, images: images, plan, transformedInput)
        for xi in 0..<16 {
            BLAS.gemm(transposeB: true, m: g.o, n: g.c, k: t, a: transformedGradient + xi * g.o * t, lda: t,
                      b: transformedInput + xi * g.c * t, ldb: t, beta: first == 0 ? 0 : 1,
                      c: weightProducts + xi * g.o * g.c, ldc: g.c, plan: threading)
        }
    }
    if let (dxChunk, accumulate) = dx, let inputScratch {
        for xi in 0..<16 {
            BLAS.gemm(transposeA: true, m: g.c, n: t, k: g.o, a: transformedWeights + xi * g.o * g.c, lda: g.c,
                      b: transformedGradient + xi * g.o * t, ldb: t, c: inputScratch + xi * g.c * t, ldc: t,
                      plan: threading)
        }
        if !accumulate { dxChunk.update(repeating: 0, count: images * g.c * g.h * g.w) }
        winogradAccumulateInputGradient(inputScratch, images: images, plan, dxChunk)
    }
}

/// The direct, loop-by-loop convolution in Double: the reference the im2col path is tested against.
package enum ConvolutionReference {
    /// Output values (N x O x OH x OW) and shape.
    package static func forward(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], bias: [Float]?,
                               stride: Int, padding: Padding) -> (values: [Double], shape: [Int]) {
        let g = ConvolutionGeometry("ConvolutionReference", input: inputShape, weight: weightShape, stride: stride,
                                    padding: padding)
        var out = [Double](repeating: 0, count: g.n * g.o * g.p)
        for n in 0..<g.n {
            for o in 0..<g.o {
                for oy in 0..<g.oh {
                    for ox in 0..<g.ow {
                        var total = bias.map { Double($0[o]) } ?? 0
                        for c in 0..<g.c {
                            for ky in 0..<g.kh {
                                for kx in 0..<g.kw {
                                    let iy = oy * g.stride + ky - g.padTop, ix = ox * g.stride + kx - g.padLeft
                                    guard iy >= 0 && iy < g.h && ix >= 0 && ix < g.w else { continue }
                                    total += Double(input[((n * g.c + c) * g.h + iy) * g.w + ix])
                                        * Double(weight[((o * g.c + c) * g.kh + ky) * g.kw + kx])
                                }
                            }
                        }
                        out[((n * g.o + o) * g.oh + oy) * g.ow + ox] = total
                    }
                }
            }
        }
        return (out, [g.n, g.o, g.oh, g.ow])
    }

    /// Gradients of Σ output · `outputGradient` with respect to input, weight and bias.
    package static func gradients(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], stride: Int,
                                 padding: Padding, outputGradient: [Float])
        -> (input: [Double], weight: [Double], bias: [Double]) {
        let g = ConvolutionGeometry("ConvolutionReference", input: inputShape, weight: weightShape, stride: stride,
                                    padding: padding)
        var dx = [Double](repeating: 0, count: input.count)
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: g.o)
        for n in 0..<g.n {
            for o in 0..<g.o {
                for oy in 0..<g.oh {
                    for ox in 0..<g.ow {
                        let up = Double(outputGradient[((n * g.o + o) * g.oh + oy) * g.ow + ox])
                        db[o] += up
                        for c in 0..<g.c {
                            for ky in 0..<g.kh {
                                for kx in 0..<g.kw {
                                    let iy = oy * g.stride + ky - g.padTop, ix = ox * g.stride + kx - g.padLeft
                                    guard iy >= 0 && iy < g.h && ix >= 0 && ix < g.w else { continue }
                                    let xi = ((n * g.c + c) * g.h + iy) * g.w + ix
                                    let wi = ((o * g.c + c) * g.kh + ky) * g.kw + kx
                                    dx[xi] += up * Double(weight[wi])
                                    dw[wi] += up * Double(input[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dw, db)
    }
}
