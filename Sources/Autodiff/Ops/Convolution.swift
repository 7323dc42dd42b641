// 2-D convolution (cross-correlation, as in PyTorch) over N, C, H, W, with the activation and max-pool that follow
// it fused in. The products are computed by one of two algorithms, each a type chosen once per layer shape:
// im2col + sgemm (`Im2colConvolution`, below) or Winograd F(2x2, 3x3) (`WinogradConvolution`, in Winograd.swift).
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

/// The tensors of one convolution as its algorithm reads them.
struct ConvolutionOperands {
    let input: UnsafePointer<Float>
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>?
    let threading: BLAS.Plan
}

/// Where a convolution's backward writes: the weight and input gradients (each nil when not needed), overwritten
/// unless they accumulate.
struct ConvolutionGradients {
    let weight: (UnsafeMutablePointer<Float>, accumulate: Bool)?
    let input: (UnsafeMutablePointer<Float>, accumulate: Bool)?
    let threading: BLAS.Plan
}

/// How one convolution computes its products, a chunk of images at a time: one type per algorithm, made once per
/// call for its layer shape. It holds its scratch buffers, which live until the backward pass has run.
protocol ConvolutionMethod: AnyObject {
    var geometry: ConvolutionGeometry { get }
    /// Images computed together.
    var chunk: Int { get }
    /// Y = W * X + b for images first..<first + images, into `output` (images x O x OH x OW).
    func forward(_ operands: ConvolutionOperands, first: Int, images: Int, into output: UnsafeMutablePointer<Float>)
    /// Allocates what backward needs (from the tape's arena).
    func beginBackward(_ gradients: ConvolutionGradients, allocate: (Int) -> TensorStorage)
    /// Given dY of images first..<first + images (images x O x OH x OW): their share of dW, and their dX.
    func backward(_ operands: ConvolutionOperands, first: Int, images: Int, outputGradient: UnsafePointer<Float>,
                  _ gradients: ConvolutionGradients)
    /// After the last chunk's backward.
    func finishBackward(_ gradients: ConvolutionGradients)
}

/// im2col + sgemm, an image at a time: one image's patches (K x P floats: 663 KB for the chapter's conv2) are built
/// in a scratch buffer that stays in the core's cache for the GEMMs that read them; backward rebuilds them rather
/// than keeping N x K x P floats (85 MB for a batch of 128) in memory.
///   forward        Y (O x P)  = W (O x K) · col (K x P) + b
///   weight grad    dW (O x K) += dY (O x P) · colᵀ
///   input grad     dcol (K x P) = Wᵀ · dY, scattered back by col2im.
final class Im2colConvolution: ConvolutionMethod {
    let geometry: ConvolutionGeometry
    let chunk = 1
    private let columns: TensorStorage
    private var columnGradient: TensorStorage?

    init(_ g: ConvolutionGeometry, allocate: (Int) -> TensorStorage) {
        geometry = g
        columns = allocate(g.k * g.p)
    }

    func forward(_ operands: ConvolutionOperands, first: Int, images: Int, into output: UnsafeMutablePointer<Float>) {
        let g = geometry
        im2col(operands.input + first * g.c * g.h * g.w, g, columns.pointer)
        if let bias = operands.bias {
            for channel in 0..<g.o { (output + channel * g.p).update(repeating: bias[channel], count: g.p) }
        }
        BLAS.gemm(m: g.o, n: g.p, k: g.k, a: operands.weight, lda: g.k, b: columns.pointer, ldb: g.p,
                  beta: operands.bias == nil ? 0 : 1, c: output, ldc: g.p, plan: operands.threading)
    }

    func beginBackward(_ gradients: ConvolutionGradients, allocate: (Int) -> TensorStorage) {
        if gradients.input != nil { columnGradient = allocate(geometry.k * geometry.p) }
    }

    func backward(_ operands: ConvolutionOperands, first: Int, images: Int, outputGradient dy: UnsafePointer<Float>,
                  _ gradients: ConvolutionGradients) {
        let g = geometry, imageSize = g.c * g.h * g.w
        if let (dw, accumulate) = gradients.weight {
            im2col(operands.input + first * imageSize, g, columns.pointer)
            BLAS.gemm(transposeB: true, m: g.o, n: g.k, k: g.p, a: dy, lda: g.p, b: columns.pointer, ldb: g.p,
                      beta: (first == 0 && !accumulate) ? 0 : 1, c: dw, ldc: g.k, plan: gradients.threading)
        }
        if let (dx, accumulate) = gradients.input, let columnGradient {
            BLAS.gemm(transposeA: true, m: g.k, n: g.p, k: g.o, a: operands.weight, lda: g.k, b: dy, ldb: g.p,
                      c: columnGradient.pointer, ldc: g.p, plan: gradients.threading)
            let dxn = dx + first * imageSize
            if !accumulate { dxn.update(repeating: 0, count: imageSize) }
            col2im(columnGradient.pointer, g, dxn)
        }
    }

    func finishBackward(_ gradients: ConvolutionGradients) {}
}

/// The activation and max-pool that follow the products inside the fused op, an image chunk at a time; the pool
/// keeps each window's winner for backward.
struct ConvolutionEpilogue {
    let g: ConvolutionGeometry
    let activation: Activation
    /// The pool's window (and stride), or nil for none.
    let pool: Int?
    /// Int32 winners of every pooled output (N x O x pooled), with a pool.
    let winners: TensorStorage?
    var pooled: Int { pool.map { (g.oh / $0) * (g.ow / $0) } ?? g.p }
    /// Whether the op's output differs from the products (an activation or pool stands between).
    var transforms: Bool { activation != .identity || pool != nil }

    /// Activation, then pool, of images first..<first + images of `convolved` (images x O x P); the pooled output
    /// goes to `output` (the whole batch's).
    func forward(_ convolved: UnsafeMutablePointer<Float>, first: Int, images: Int, output: UnsafeMutablePointer<Float>) {
        if activation == .relu {
            for i in 0..<(images * g.o * g.p) { convolved[i] = max(convolved[i], 0) }
        }
        guard let pool, let winners else { return }
        winners.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
            for plane in (first * g.o)..<((first + images) * g.o) {
                poolPlane(convolved + (plane - first * g.o) * g.p, height: g.oh, width: g.ow, window: pool, stride: pool,
                          output + plane * pooled, argmax + plane * pooled)
            }
        }
    }

    /// The gradient at the products' output of images first..<first + images (into `dy`, images x O x P), from the
    /// upstream gradient at the op's output (`output`: its values, which say where relu passed).
    func backward(_ upstream: UnsafePointer<Float>, output: UnsafePointer<Float>, first: Int, images: Int,
                  into dy: UnsafeMutablePointer<Float>) {
        let outputSize = g.o * g.p
        for image in first..<(first + images) {
            let dyn = dy + (image - first) * outputSize
            guard let winners else {
                let values = output + image * outputSize, gradient = upstream + image * outputSize
                for i in 0..<outputSize { dyn[i] = values[i] > 0 ? gradient[i] : 0 }
                continue
            }
            dyn.update(repeating: 0, count: outputSize)
            winners.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                for channel in 0..<g.o {
                    let plane = image * g.o + channel
                    let won = argmax + plane * pooled, values = output + plane * pooled
                    let gradient = upstream + plane * pooled, target = dyn + channel * g.p
                    for j in 0..<pooled where activation == .identity || values[j] > 0 { target[Int(won[j])] += gradient[j] }
                }
            }
        }
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
    let pool = maxPool ?? 1
    require(bias == nil || bias!.shape == [g.o], "conv2D: bias \(describe(bias?.shape ?? [])) does not match weight \(describe(weight.shape))")
    require(pool >= 1 && g.oh >= pool && g.ow >= pool, "conv2D: max-pool window \(pool) does not fit the \(g.oh)x\(g.ow) output")
    require(algorithm != .winograd || (g.kh == 3 && g.kw == 3 && g.stride == 1),
            "conv2D: Winograd F(2x2, 3x3) needs a 3x3 kernel at stride 1, not \(g.kh)x\(g.kw) at stride \(g.stride)")
    let out = Tape.output("conv2D", shape: [g.n, g.o, g.oh / pool, g.ow / pool], inputList: bias.map { [input, weight, $0] } ?? [input, weight])
    let allocate = { (count: Int) in out.tape.map { $0.arena.allocate(count) } ?? TensorStorage(capacity: count) }
    let operands = ConvolutionOperands(input: input.pointer, weight: weight.pointer, bias: bias?.pointer,
                                       threading: out.tape?.plan ?? .serial)
    let method: ConvolutionMethod = algorithm == .winograd || (algorithm == .automatic && WinogradPlan.applies(to: g))
        ? WinogradConvolution(WinogradPlan(g), weight: weight.pointer, allocate: allocate) : Im2colConvolution(g, allocate: allocate)
    if let winograd = method as? WinogradConvolution, winograd.fusesPool(maxPool) {
        winograd.convolvePooled(operands, relu: activation == .relu, output: out, allocate: allocate, inputs: (input, weight, bias))
        return out
    }
    let epilogue = ConvolutionEpilogue(g: g, activation: activation, pool: maxPool,
                                       winners: maxPool.map { _ in allocate(g.n * g.o * (g.oh / pool) * (g.ow / pool)) })
    let outputSize = g.o * g.p, chunk = method.chunk
    let convolved = maxPool == nil ? nil : allocate(chunk * outputSize)  // the chunk's output before pooling
    for first in Swift.stride(from: 0, to: g.n, by: chunk) {
        let images = min(chunk, g.n - first), target = convolved?.pointer ?? (out.pointer + first * outputSize)
        method.forward(operands, first: first, images: images, into: target)
        epilogue.forward(target, first: first, images: images, output: out.pointer)
    }
    out.tape?.record(out) { tape, upstream in
        let gradients = ConvolutionGradients(weight: tape.gradientDestination(of: weight), input: tape.gradientDestination(of: input),
                                             threading: tape.plan)
        let db = bias.flatMap { tape.gradientDestination(of: $0) }
        let outputGradient = epilogue.transforms ? tape.arena.allocate(chunk * outputSize) : nil
        method.beginBackward(gradients, allocate: tape.arena.allocate)
        withExtendedLifetime((method, convolved, epilogue.winners, outputGradient)) {
            if let (db, accumulate) = db, !accumulate { db.update(repeating: 0, count: g.o) }
            for first in Swift.stride(from: 0, to: g.n, by: chunk) {
                if first > 0 { tape.progress?() }
                let images = min(chunk, g.n - first)
                let dy = outputGradient?.pointer ?? (upstream + first * outputSize)
                if outputGradient != nil { epilogue.backward(upstream, output: out.pointer, first: first, images: images, into: dy) }
                if let (db, _) = db {
                    for plane in 0..<(images * g.o) { db[plane % g.o] += vectorSum(dy + plane * g.p, g.p) }
                }
                method.backward(operands, first: first, images: images, outputGradient: dy, gradients)
            }
            method.finishBackward(gradients)
        }
    }
    return out
}
