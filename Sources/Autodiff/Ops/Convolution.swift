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

/// 2-D convolution (cross-correlation) of `input` with `weight`, plus `bias`.
///
/// - Parameters:
///   - input: N x C x H x W.
///   - weight: O x C x KH x KW.
///   - bias: O values, or nil.
///   - stride: step of the kernel in both directions.
///   - padding: zero padding around the input.
/// - Returns: N x O x OH x OW.
/// - Precondition: the channel counts agree and the kernel fits the padded input.
public func conv2D(_ input: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding = .valid) -> Tensor {
    let g = ConvolutionGeometry("conv2D", input: input.shape, weight: weight.shape, stride: stride, padding: padding)
    if let bias {
        require(bias.shape == [g.o], "conv2D: bias \(describe(bias.shape)) does not match weight \(describe(weight.shape))")
    }
    let out = Tape.output("conv2D", shape: [g.n, g.o, g.oh, g.ow],
                          inputList: bias.map { [input, weight, $0] } ?? [input, weight])
    let colSize = g.k * g.p
    let scratch = out.tape.map { $0.arena.allocate(colSize) } ?? TensorStorage(capacity: colSize)  // K x P
    let x = input.pointer, wt = weight.pointer, y = out.pointer, col = scratch.pointer
    let imageSize = g.c * g.h * g.w, outputSize = g.o * g.p
    for image in 0..<g.n {
        im2col(x + image * imageSize, g, col)
        let yn = y + image * outputSize
        if let bias {
            for channel in 0..<g.o { (yn + channel * g.p).update(repeating: bias.pointer[channel], count: g.p) }
        }
        BLAS.gemm(m: g.o, n: g.p, k: g.k, a: wt, lda: g.k, b: col, ldb: g.p, beta: bias == nil ? 0 : 1, c: yn, ldc: g.p)
    }
    out.tape?.record(out) { tape, dy in
        // dcol of one image, K x P, when the input needs a gradient.
        let inputScratch = input.requiresGradient ? tape.arena.allocate(colSize) : nil
        withExtendedLifetime((scratch, inputScratch)) {
            if let bias {
                tape.withGradient(of: bias) { db, acc in
                    for channel in 0..<g.o {
                        var total: Float = 0
                        for image in 0..<g.n {
                            let row = dy + image * outputSize + channel * g.p
                            for position in 0..<g.p { total += row[position] }
                        }
                        db[channel] = acc ? db[channel] + total : total
                    }
                }
            }
            // Per image: rebuild its columns, add its share of the weight gradient, and scatter its input gradient.
            let dw = tape.gradientDestination(of: weight)
            let dx = tape.gradientDestination(of: input)
            guard dw != nil || dx != nil else { return }
            for image in 0..<g.n {
                let dyn = dy + image * outputSize
                if let (dw, accumulate) = dw {
                    im2col(x + image * imageSize, g, col)
                    BLAS.gemm(transposeB: true, m: g.o, n: g.k, k: g.p, a: dyn, lda: g.p, b: col, ldb: g.p,
                              beta: (image == 0 && !accumulate) ? 0 : 1, c: dw, ldc: g.k)
                }
                if let (dx, accumulate) = dx, let inputScratch {
                    BLAS.gemm(transposeA: true, m: g.k, n: g.p, k: g.o, a: wt, lda: g.k, b: dyn, ldb: g.p,
                              c: inputScratch.pointer, ldc: g.p)
                    let dxn = dx + image * imageSize
                    if !accumulate { dxn.update(repeating: 0, count: imageSize) }
                    col2im(inputScratch.pointer, g, dxn)
                }
            }
        }
    }
    return out
}

/// The direct, loop-by-loop convolution in Double: the reference the im2col path is tested against.
public enum ConvolutionReference {
    /// Output values (N x O x OH x OW) and shape.
    public static func forward(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], bias: [Float]?,
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
    public static func gradients(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], stride: Int,
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
