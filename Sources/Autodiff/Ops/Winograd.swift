// Winograd's minimal filtering F(2x2, 3x3) for 3x3, stride-1 convolutions (A. Lavin and S. Gray, "Fast Algorithms
// for Convolutional Neural Networks", CVPR 2016): each 2x2 block of outputs comes from a 4x4 input tile with 16
// multiplications instead of 36, so the three GEMMs of a convolution's step do 2.25x fewer multiply-adds.
//
// With g a 3x3 kernel, d a 4x4 input tile and dy the 2x2 output gradient of the tile:
//   forward          y  = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A            = Aᵀ [ U ⊙ V ] A
//   weight gradient  dg = Gᵀ [ Σ_tiles (A dy Aᵀ) ⊙ V ] G         = Gᵀ [ Σ Ŷ ⊙ V ] G
//   input gradient   dd = B [ Σ_out (A dy Aᵀ) ⊙ U ] Bᵀ, added into the tile's 4x4 patch (tiles overlap)
// For each of the 16 positions ξ of a transformed tile, the sums over channels and tiles are GEMMs:
//   M[ξ] (O x T) = U[ξ] (O x C) · V[ξ] (C x T)       forward
//   P[ξ] (O x C) = Ŷ[ξ] (O x T) · V[ξ]ᵀ             weight gradient (K = T: a long, efficient GEMM)
//   Q[ξ] (C x T) = U[ξ]ᵀ · Ŷ[ξ] (O x T)             input gradient
// where T counts the tiles of a chunk of images. The transforms are only additions and halvings.
//
//   Bᵀ = | 1  0 -1  0 |     G = |  1    0    0  |     Aᵀ = | 1  1  1  0 |
//        | 0  1  1  0 |         | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//        | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//        | 0  1  0 -1 |         |  0    0    1  |

/// Tiles of a convolution's output in 2x2 blocks, processed a chunk of images at a time.
struct WinogradPlan {
    let g: ConvolutionGeometry
    /// Tiles down and across one output plane (the last ones may hang over an odd edge).
    let tilesY: Int
    let tilesX: Int
    var tilesPerImage: Int { tilesY * tilesX }
    /// Images per chunk (the GEMMs' N is chunk x tilesPerImage).
    let chunk: Int

    /// Images per chunk. One image keeps its transformed tiles (295 KB of V, 590 KB of M for the chapter's conv2)
    /// in the core's caches: locality matters more than the GEMMs' larger N (docs/performance.md).
    static let defaultChunk = 1

    init(_ g: ConvolutionGeometry, chunk: Int = WinogradPlan.defaultChunk) {
        self.g = g
        tilesY = (g.oh + 1) / 2
        tilesX = (g.ow + 1) / 2
        self.chunk = max(1, min(chunk, g.n))
    }

    /// Whether F(2x2, 3x3) applies and pays: a 3x3 kernel at stride 1, with enough channels for the GEMMs
    /// (a single input channel, as in the chapter's conv1, is left to im2col).
    static func applies(to g: ConvolutionGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.stride == 1 && g.c >= 8 && g.o >= 8
    }

    /// The tile walk every transform shares: for each plane (image, then channel) of `planes`, its tiles row by row,
    /// `run` adjacent tiles at a time: 8 (if `widest` allows) or 4 when that many lie wholly inside (`fits`: vector
    /// loads and stores), else 1 (edges and padding, element by element). `body` gets the plane's index in the
    /// N x C tensor, the offset of its tiles in a transformed ξ plane (C x T, channel-major), and the tile.
    @inline(__always)
    func walkTiles(planes: (images: Int, channels: Int), widest: Int, fits: (_ ty: Int, _ tx: Int, _ run: Int) -> Bool,
                   _ body: (_ plane: Int, _ tiles: Int, _ ty: Int, _ tx: Int, _ run: Int) -> Void) {
        let t = planes.images * tilesPerImage
        for image in 0..<planes.images {
            for channel in 0..<planes.channels {
                let plane = image * planes.channels + channel, tiles = channel * t + image * tilesPerImage
                for ty in 0..<tilesY {
                    var tx = 0
                    while tx < tilesX {
                        let run = widest >= 8 && tx + 8 <= tilesX && fits(ty, tx, 8) ? 8 : tx + 4 <= tilesX && fits(ty, tx, 4) ? 4 : 1
                        body(plane, tiles, ty, tx, run)
                        tx += run
                    }
                }
            }
        }
    }

    /// Whether `run` tiles from (ty, tx) have their 4x4 input patches inside the plane (rows and columns).
    @inline(__always)
    func inputPatchesInside(_ ty: Int, _ tx: Int, _ run: Int) -> Bool {
        let y0 = 2 * ty - g.padTop, x0 = 2 * tx - g.padLeft
        return y0 >= 0 && y0 + 4 <= g.h && x0 >= 0 && x0 + 2 * run + 2 <= g.w
    }

    /// Whether `run` tiles from (ty, tx) have their 2x2 output blocks inside the output plane.
    @inline(__always)
    func outputBlocksInside(_ ty: Int, _ tx: Int, _ run: Int) -> Bool {
        2 * tx + 2 * run <= g.ow && 2 * ty + 2 <= g.oh
    }
}

/// Winograd F(2x2, 3x3) for one layer shape, a chunk of images at a time: the input transformed (V), 16 GEMMs with
/// the transformed weights (U, made once per call), the output transformed back. With a 2x2 max-pool after it, the
/// output transform adds the bias, applies relu and pools (`convolvePooled`), so the unpooled output is never written.
final class WinogradConvolution: ConvolutionMethod {
    let plan: WinogradPlan
    var geometry: ConvolutionGeometry { plan.g }
    var chunk: Int { plan.chunk }
    /// V (16 x C x T), the chunk's transformed input; U (16 x O x C); M (16 x O x T), the products.
    private let transformedInput: TensorStorage
    private let transformedWeights: TensorStorage
    private let products: TensorStorage
    /// Backward: Ŷ (16 x O x T), P (16 x O x C, summed over the chunks) and Q (16 x C x T).
    private var transformedGradient: TensorStorage?
    private var weightProducts: TensorStorage?
    private var inputProducts: TensorStorage?

    init(_ plan: WinogradPlan, weight: UnsafePointer<Float>, allocate: (Int) -> TensorStorage) {
        self.plan = plan
        let g = plan.g, tiles = plan.chunk * plan.tilesPerImage
        transformedInput = allocate(16 * g.c * tiles)
        transformedWeights = allocate(16 * g.o * g.c)
        products = allocate(16 * g.o * tiles)
        winogradTransformWeights(weight, plan, transformedWeights.pointer)
    }

    /// Whether a max-pool of this window after the convolution goes into the output transform (2x2, even planes).
    func fusesPool(_ maxPool: Int?) -> Bool { winogradPoolFuses(plan, maxPool: maxPool) }

    /// M = U V for images first..<first + images: the input transform, then one GEMM per ξ.
    private func multiply(_ operands: ConvolutionOperands, first: Int, images: Int) {
        let g = plan.g, t = images * plan.tilesPerImage
        winogradTransformInput(operands.input + first * g.c * g.h * g.w, images: images, plan, transformedInput.pointer)
        for xi in 0..<16 {
            BLAS.gemm(m: g.o, n: t, k: g.c, a: transformedWeights.pointer + xi * g.o * g.c, lda: g.c,
                      b: transformedInput.pointer + xi * g.c * t, ldb: t, c: products.pointer + xi * g.o * t, ldc: t,
                      plan: operands.threading)
        }
    }

    func forward(_ operands: ConvolutionOperands, first: Int, images: Int, into output: UnsafeMutablePointer<Float>) {
        multiply(operands, first: first, images: images)
        winogradTransformOutput(products.pointer, images: images, plan, bias: operands.bias, output)
    }

    func beginBackward(_ gradients: ConvolutionGradients, allocate: (Int) -> TensorStorage) {
        let g = plan.g, tiles = plan.chunk * plan.tilesPerImage
        transformedGradient = allocate(16 * g.o * tiles)
        if gradients.weight != nil { weightProducts = allocate(16 * g.o * g.c) }
        if gradients.input != nil { inputProducts = allocate(16 * g.c * tiles) }
    }

    func backward(_ operands: ConvolutionOperands, first: Int, images: Int, outputGradient dy: UnsafePointer<Float>,
                  _ gradients: ConvolutionGradients) {
        winogradTransformOutputGradient(dy, images: images, plan, transformedGradient!.pointer)
        backwardProducts(operands, first: first, images: images, gradients)
    }

    /// The GEMMs of one chunk's backward, given its Ŷ: the weight-gradient products P (summed over the chunks; the
    /// first chunk overwrites) and the input gradient, added into dX (overwritten first unless it accumulates).
    private func backwardProducts(_ operands: ConvolutionOperands, first: Int, images: Int, _ gradients: ConvolutionGradients) {
        let g = plan.g, t = images * plan.tilesPerImage
        let yhat = transformedGradient!.pointer
        if let weightProducts {
            winogradTransformInput(operands.input + first * g.c * g.h * g.w, images: images, plan, transformedInput.pointer)
            for xi in 0..<16 {
                BLAS.gemm(transposeB: true, m: g.o, n: g.c, k: t, a: yhat + xi * g.o * t, lda: t,
                          b: transformedInput.pointer + xi * g.c * t, ldb: t, beta: first == 0 ? 0 : 1,
                          c: weightProducts.pointer + xi * g.o * g.c, ldc: g.c, plan: gradients.threading)
            }
        }
        if let (dx, accumulate) = gradients.input, let inputProducts {
            for xi in 0..<16 {
                BLAS.gemm(transposeA: true, m: g.c, n: t, k: g.o, a: transformedWeights.pointer + xi * g.o * g.c, lda: g.c,
                          b: yhat + xi * g.o * t, ldb: t, c: inputProducts.pointer + xi * g.c * t, ldc: t,
                          plan: gradients.threading)
            }
            let dxChunk = dx + first * g.c * g.h * g.w
            if !accumulate { dxChunk.update(repeating: 0, count: images * g.c * g.h * g.w) }
            winogradAccumulateInputGradient(inputProducts.pointer, images: images, plan, dxChunk)
        }
    }

    func finishBackward(_ gradients: ConvolutionGradients) {
        if let weightProducts, let (dw, accumulate) = gradients.weight {
            winogradWeightGradient(weightProducts.pointer, plan, dw, accumulate: accumulate)
        }
    }

    /// The whole fused op with a 2x2 max-pool in the output transform: bias, relu (if `relu`) and pool happen there,
    /// forward; backward goes straight from the pooled gradient to Ŷ (and the bias gradient).
    func convolvePooled(_ operands: ConvolutionOperands, relu: Bool, output out: Tensor, allocate: (Int) -> TensorStorage,
                        inputs: (input: Tensor, weight: Tensor, bias: Tensor?)) {
        let g = plan.g, pooled = (g.oh / 2) * (g.ow / 2), y = out.pointer
        let winners = allocate(g.n * g.o * pooled)  // Int32 winners of each window
        for first in Swift.stride(from: 0, to: g.n, by: chunk) {
            let images = min(chunk, g.n - first)
            multiply(operands, first: first, images: images)
            winners.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                winogradTransformOutputPooled(products.pointer, images: images, plan, bias: operands.bias, relu: relu,
                                              y + first * g.o * pooled, argmax + first * g.o * pooled)
            }
        }
        out.tape?.record(out) { tape, upstream in
            let gradients = ConvolutionGradients(weight: tape.gradientDestination(of: inputs.weight),
                                                 input: tape.gradientDestination(of: inputs.input), threading: tape.plan)
            let db = inputs.bias.flatMap { tape.gradientDestination(of: $0) }
            self.beginBackward(gradients, allocate: tape.arena.allocate)
            withExtendedLifetime(winners) {
                if let (db, accumulate) = db, !accumulate { db.update(repeating: 0, count: g.o) }
                for first in Swift.stride(from: 0, to: g.n, by: self.chunk) {
                    if first > 0 { tape.progress?() }
                    let images = min(self.chunk, g.n - first), planes = first * g.o * pooled
                    if let (db, _) = db {
                        for plane in 0..<(images * g.o) {
                            let start = planes + plane * pooled
                            db[plane % g.o] += relu ? vectorSum(upstream + start, wherePositive: y + start, pooled)
                                : vectorSum(upstream + start, pooled)
                        }
                    }
                    winners.pointer.withMemoryRebound(to: Int32.self, capacity: g.n * g.o * pooled) { argmax in
                        winogradTransformPooledGradient(upstream + planes, pooled: y + planes, argmax: argmax + planes,
                                                        images: images, self.plan, relu: relu, self.transformedGradient!.pointer)
                    }
                    self.backwardProducts(operands, first: first, images: images, gradients)
                }
                self.finishBackward(gradients)
            }
        }
    }
}

/// U[ξ][o][c] = (G g Gᵀ)[ξ] for every output and input channel: 16 x O x C.
func winogradTransformWeights(_ weight: UnsafePointer<Float>, _ plan: WinogradPlan, _ u: UnsafeMutablePointer<Float>) {
    let stride = plan.g.o * plan.g.c
    for oc in 0..<stride {
        let k = weight + oc * 9
        // Rows of G g (4 x 3), then each row times Gᵀ.
        for i in 0..<4 {
            let (a, b, e): (Float, Float, Float)
            switch i {
            case 0: (a, b, e) = (k[0], k[1], k[2])
            case 1: (a, b, e) = ((k[0] + k[3] + k[6]) * 0.5, (k[1] + k[4] + k[7]) * 0.5, (k[2] + k[5] + k[8]) * 0.5)
            case 2: (a, b, e) = ((k[0] - k[3] + k[6]) * 0.5, (k[1] - k[4] + k[7]) * 0.5, (k[2] - k[5] + k[8]) * 0.5)
            default: (a, b, e) = (k[6], k[7], k[8])
            }
            u[(4 * i + 0) * stride + oc] = a
            u[(4 * i + 1) * stride + oc] = (a + b + e) * 0.5
            u[(4 * i + 2) * stride + oc] = (a - b + e) * 0.5
            u[(4 * i + 3) * stride + oc] = e
        }
    }
}

/// dW[o][c] (3x3) from P[ξ][o][c]: Gᵀ P G, written (or added, when `accumulate`) into `weightGradient`.
func winogradWeightGradient(_ p: UnsafePointer<Float>, _ plan: WinogradPlan, _ weightGradient: UnsafeMutablePointer<Float>,
                            accumulate: Bool) {
    let stride = plan.g.o * plan.g.c
    for oc in 0..<stride {
        // Gᵀ P: 3 rows of 4.
        var q = SIMD16<Float>()
        for j in 0..<4 {
            let (p0, p1, p2, p3) = (p[j * stride + oc], p[(4 + j) * stride + oc], p[(8 + j) * stride + oc], p[(12 + j) * stride + oc])
            q[j] = p0 + (p1 + p2) * 0.5
            q[4 + j] = (p1 - p2) * 0.5
            q[8 + j] = (p1 + p2) * 0.5 + p3
        }
        // (Gᵀ P) G: 3 x 3.
        let dw = weightGradient + oc * 9
        for i in 0..<3 {
            let (x0, x1, x2, x3) = (q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3])
            let values = (x0 + (x1 + x2) * 0.5, (x1 - x2) * 0.5, (x1 + x2) * 0.5 + x3)
            if accumulate {
                dw[3 * i] += values.0; dw[3 * i + 1] += values.1; dw[3 * i + 2] += values.2
            } else {
                dw[3 * i] = values.0; dw[3 * i + 1] = values.1; dw[3 * i + 2] = values.2
            }
        }
    }
}

// MARK: Transforms, four tiles at a time
//
// Four horizontally adjacent tiles share one row load: their 4x4 patches start 2 columns apart, so the even and odd
// halves of 8 consecutive inputs are the patches' columns 0 and 1, and of the 8 starting two further on, columns 2
// and 3. Each transformed value of the four tiles is then one contiguous 4-float store into its ξ plane (where a
// tile at a time would scatter 16 single floats over 16 planes). Tiles at edges and padding take the scalar path.

private typealias Lane = SIMD4<Float>

/// (a0, b0, a1, b1, a2, b2, a3, b3)
@inline(__always) private func interleave(_ a: Lane, _ b: Lane) -> SIMD8<Float> {
    SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
}

/// V[ξ][c][t] = (Bᵀ d B)[ξ] for the 4x4 input tile of every channel and tile of `images` images: 16 x C x T.
/// Input outside the image (padding, or a tile hanging over an odd edge) reads as zero.
func winogradTransformInput(_ input: UnsafePointer<Float>, images: Int, _ plan: WinogradPlan,
                            _ v: UnsafeMutablePointer<Float>) {
    let g = plan.g
    let stride = g.c * images * plan.tilesPerImage
    plan.walkTiles(planes: (images, g.c), widest: 8, fits: plan.inputPatchesInside) { planeIndex, tiles, ty, tx, run in
        let plane = input + planeIndex * g.h * g.w, out = v + tiles
        let y0 = 2 * ty - g.padTop, x0 = 2 * tx - g.padLeft
        let index = out + ty * plan.tilesX + tx
        switch run {
        case 8: transformTileRows(plane + y0 * g.w + x0, width: g.w, columns8, index, stride)  // rows of 16, halves of 8
        case 4: transformTileRows(plane + y0 * g.w + x0, width: g.w, columns, index, stride)
        default: transformInputTile(plane, y0: y0, x0: x0, g, index, stride)
        }
    }
}

/// Columns 0...3 of four adjacent patches in one input row starting at `row`.
@inline(__always)
private func columns(_ row: UnsafePointer<Float>) -> (Lane, Lane, Lane, Lane) {
    let low = load8(row), high = load8(row + 2)
    return (low.evenHalf, low.oddHalf, high.evenHalf, high.oddHalf)
}

/// V of as many adjacent tiles as `L` has lanes, whose 4x4 patches start at `row0`: the rows of the patches, as
/// columns j = 0...3 across the tiles, then Bᵀ d (rows a - c, b + c, c - b, b - e), each row times B.
@inline(__always)
private func transformTileRows<L: SIMD>(_ row0: UnsafePointer<Float>, width: Int, _ columns: (UnsafePointer<Float>) -> (L, L, L, L),
                                        _ index: UnsafeMutablePointer<Float>, _ stride: Int) where L.Scalar == Float {
    let (a0, a1, a2, a3) = columns(row0), (b0, b1, b2, b3) = columns(row0 + width)
    let (c0, c1, c2, c3) = columns(row0 + 2 * width), (e0, e1, e2, e3) = columns(row0 + 3 * width)
    writeBRow(a0 - c0, a1 - c1, a2 - c2, a3 - c3, index, 0, stride)
    writeBRow(b0 + c0, b1 + c1, b2 + c2, b3 + c3, index, 4, stride)
    writeBRow(c0 - b0, c1 - b1, c2 - b2, c3 - b3, index, 8, stride)
    writeBRow(b0 - e0, b1 - e1, b2 - e2, b3 - e3, index, 12, stride)
}

/// Columns 0...3 of eight adjacent patches in one input row starting at `row` (which must hold 18 values).
@inline(__always)
private func columns8(_ row: UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let low = load16(row), high = load16(row + 2)
    return (low.evenHalf, low.oddHalf, high.evenHalf, high.oddHalf)
}

/// Stores row r of (Bᵀ d) times B: (r0 - r2, r1 + r2, r2 - r1, r1 - r3) at ξ = first...first + 3, for as many
/// tiles as `L` has lanes.
@inline(__always)
private func writeBRow<L: SIMD>(_ r0: L, _ r1: L, _ r2: L, _ r3: L, _ index: UnsafeMutablePointer<Float>,
                                _ first: Int, _ stride: Int) where L.Scalar == Float {
    storeLanes(r0 - r2, index + first * stride)
    storeLanes(r1 + r2, index + (first + 1) * stride)
    storeLanes(r2 - r1, index + (first + 2) * stride)
    storeLanes(r1 - r3, index + (first + 3) * stride)
}

@inline(__always)
private func storeLanes<L: SIMD>(_ v: L, _ p: UnsafeMutablePointer<Float>) where L.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: L.self)
}
@inline(__always)
private func loadLanes<L: SIMD>(_ p: UnsafePointer<Float>, as: L.Type = L.self) -> L where L.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: L.self)
}

private func transformInputTile(_ plane: UnsafePointer<Float>, y0: Int, x0: Int, _ g: ConvolutionGeometry,
                                _ index: UnsafeMutablePointer<Float>, _ stride: Int) {
    var d = SIMD16<Float>()
    for i in 0..<4 where y0 + i >= 0 && y0 + i < g.h {
        for j in 0..<4 where x0 + j >= 0 && x0 + j < g.w { d[4 * i + j] = plane[(y0 + i) * g.w + x0 + j] }
    }
    for j in 0..<4 {
        let r: (Float, Float, Float, Float)
        switch j {
        case 0: r = (d[0] - d[8], d[1] - d[9], d[2] - d[10], d[3] - d[11])
        case 1: r = (d[4] + d[8], d[5] + d[9], d[6] + d[10], d[7] + d[11])
        case 2: r = (d[8] - d[4], d[9] - d[5], d[10] - d[6], d[11] - d[7])
        default: r = (d[4] - d[12], d[5] - d[13], d[6] - d[14], d[7] - d[15])
        }
        index[(4 * j + 0) * stride] = r.0 - r.2
        index[(4 * j + 1) * stride] = r.1 + r.2
        index[(4 * j + 2) * stride] = r.2 - r.1
        index[(4 * j + 3) * stride] = r.1 - r.3
    }
}

/// The convolution's output from M[ξ][o][t]: y = Aᵀ M A + bias for every 2x2 output block, written into
/// `output` (images x O x OH x OW); a block hanging over an odd edge writes only its inside.
func winogradTransformOutput(_ m: UnsafePointer<Float>, images: Int, _ plan: WinogradPlan, bias: UnsafePointer<Float>?,
                             _ output: UnsafeMutablePointer<Float>) {
    let g = plan.g
    let stride = g.o * images * plan.tilesPerImage
    plan.walkTiles(planes: (images, g.o), widest: 4, fits: plan.outputBlocksInside) { planeIndex, tiles, ty, tx, run in
        let source = m + tiles, plane = output + planeIndex * g.p
        let b = bias?[planeIndex % g.o] ?? 0
        let (oy, ox) = (2 * ty, 2 * tx)
        let index = source + ty * plan.tilesX + tx
        if run == 4 {
            func x(_ xi: Int) -> Lane { load4(index + xi * stride) }
            // Aᵀ x: rows x0 + x1 + x2 and x1 - x2 - x3 (of 4 columns each), then each row times A.
            let r0 = (x(0) + x(4) + x(8), x(1) + x(5) + x(9), x(2) + x(6) + x(10), x(3) + x(7) + x(11))
            let r1 = (x(4) - x(8) - x(12), x(5) - x(9) - x(13), x(6) - x(10) - x(14), x(7) - x(11) - x(15))
            let bias = Lane(repeating: b)
            store(interleave(r0.0 + r0.1 + r0.2 + bias, r0.1 - r0.2 - r0.3 + bias), plane + oy * g.ow + ox)
            store(interleave(r1.0 + r1.1 + r1.2 + bias, r1.1 - r1.2 - r1.3 + bias), plane + (oy + 1) * g.ow + ox)
        } else {
            var x = SIMD16<Float>()
            for xi in 0..<16 { x[xi] = index[xi * stride] }
            let r0 = (x[0] + x[4] + x[8], x[1] + x[5] + x[9], x[2] + x[6] + x[10], x[3] + x[7] + x[11])
            let r1 = (x[4] - x[8] - x[12], x[5] - x[9] - x[13], x[6] - x[10] - x[14], x[7] - x[11] - x[15])
            let top = plane + oy * g.ow + ox
            top[0] = r0.0 + r0.1 + r0.2 + b
            if ox + 1 < g.ow { top[1] = r0.1 - r0.2 - r0.3 + b }
            if oy + 1 < g.oh {
                top[g.ow] = r1.0 + r1.1 + r1.2 + b
                if ox + 1 < g.ow { top[g.ow + 1] = r1.1 - r1.2 - r1.3 + b }
            }
        }
    }
}

/// Ŷ[ξ][o][t] = (A dy Aᵀ)[ξ] from the output gradient (images x O x OH x OW); positions of a block beyond an
/// odd edge count as zero.
func winogradTransformOutputGradient(_ dy: UnsafePointer<Float>, images: Int, _ plan: WinogradPlan,
                                     _ yhat: UnsafeMutablePointer<Float>) {
    let g = plan.g
    let stride = g.o * images * plan.tilesPerImage
    plan.walkTiles(planes: (images, g.o), widest: 4, fits: plan.outputBlocksInside) { planeIndex, tiles, ty, tx, run in
        let plane = dy + planeIndex * g.p, out = yhat + tiles
        let (oy, ox) = (2 * ty, 2 * tx)
        let index = out + ty * plan.tilesX + tx
        if run == 4 {
            let top = load8(plane + oy * g.ow + ox), bottom = load8(plane + (oy + 1) * g.ow + ox)
            writeARow(top.evenHalf, top.oddHalf, index, 0, stride)
            writeARow(top.evenHalf + bottom.evenHalf, top.oddHalf + bottom.oddHalf, index, 4, stride)
            writeARow(top.evenHalf - bottom.evenHalf, top.oddHalf - bottom.oddHalf, index, 8, stride)
            writeARow(-bottom.evenHalf, -bottom.oddHalf, index, 12, stride)
        } else {
            let top = plane + oy * g.ow + ox
            let right = ox + 1 < g.ow, below = oy + 1 < g.oh
            let a0 = top[0], a1 = right ? top[1] : 0
            let b0 = below ? top[g.ow] : 0, b1 = below && right ? top[g.ow + 1] : 0
            for i in 0..<4 {
                let r: (Float, Float)
                switch i {
                case 0: r = (a0, a1)
                case 1: r = (a0 + b0, a1 + b1)
                case 2: r = (a0 - b0, a1 - b1)
                default: r = (-b0, -b1)
                }
                index[(4 * i + 0) * stride] = r.0
                index[(4 * i + 1) * stride] = r.0 + r.1
                index[(4 * i + 2) * stride] = r.0 - r.1
                index[(4 * i + 3) * stride] = -r.1
            }
        }
    }
}

/// Stores row (x0, x1) of A dy times Aᵀ: (x0, x0 + x1, x0 - x1, -x1) at ξ = first...first + 3.
@inline(__always)
private func writeARow(_ x0: Lane, _ x1: Lane, _ index: UnsafeMutablePointer<Float>, _ first: Int, _ stride: Int) {
    store(x0, index + first * stride)
    store(x0 + x1, index + (first + 1) * stride)
    store(x0 - x1, index + (first + 2) * stride)
    store(-x1, index + (first + 3) * stride)
}

/// Adds dd = B Q Bᵀ of every tile into its 4x4 patch of the input gradient (images x C x H x W); positions in the
/// padding are dropped.
func winogradAccumulateInputGradient(_ q: UnsafePointer<Float>, images: Int, _ plan: WinogradPlan,
                                     _ dx: UnsafeMutablePointer<Float>) {
    let g = plan.g
    let stride = g.c * images * plan.tilesPerImage
    plan.walkTiles(planes: (images, g.c), widest: 8, fits: plan.inputPatchesInside) { planeIndex, tiles, ty, tx, run in
        let source = q + tiles, plane = dx + planeIndex * g.h * g.w
        let y0 = 2 * ty - g.padTop, x0 = 2 * tx - g.padLeft
        let index = source + ty * plan.tilesX + tx
        switch run {
        case 8: accumulateTileRows(index, stride, plane + y0 * g.w + x0, width: g.w, addBRow8)
        case 4: accumulateTileRows(index, stride, plane + y0 * g.w + x0, width: g.w, addBRow)
        default: accumulateInputTile(index, stride, plane, y0: y0, x0: x0, g)
        }
    }
}

/// Adds dd = B Q Bᵀ of as many adjacent tiles as `L` has lanes into the four input-gradient rows from `row0`:
/// B x has rows x0, x1 - x2 + x3, -x0 + x1 + x2, -x3 (of 4 columns each), and `addRow` adds each row times Bᵀ.
@inline(__always)
private func accumulateTileRows<L: SIMD>(_ index: UnsafePointer<Float>, _ stride: Int, _ row0: UnsafeMutablePointer<Float>,
                                         width: Int, _ addRow: (L, L, L, L, UnsafeMutablePointer<Float>) -> Void)
    where L.Scalar == Float {
    @inline(__always) func x(_ xi: Int) -> L { loadLanes(index + xi * stride) }
    addRow(x(0), x(1), x(2), x(3), row0)
    addRow(x(4) - x(8) + x(12), x(5) - x(9) + x(13), x(6) - x(10) + x(14), x(7) - x(11) + x(15), row0 + width)
    addRow(x(4) + x(8) - x(0), x(5) + x(9) - x(1), x(6) + x(10) - x(2), x(7) + x(11) - x(3), row0 + 2 * width)
    addRow(-x(12), -x(13), -x(14), -x(15), row0 + 3 * width)
}

/// Adds row (r0, r1, r2, r3) times Bᵀ — (r0, r1 - r2 + r3, -r0 + r1 + r2, -r3), the patches' columns 0...3 — of
/// four adjacent tiles into one input-gradient row (their patches overlap by two columns).
@inline(__always)
private func addBRow(_ r0: Lane, _ r1: Lane, _ r2: Lane, _ r3: Lane, _ row: UnsafeMutablePointer<Float>) {
    store(load8(row) + interleave(r0, r1 - r2 + r3), row)
    store(load8(row + 2) + interleave(r1 + r2 - r0, -r3), row + 2)
}

/// `addBRow` for eight adjacent tiles (an input-gradient row of 18 values).
@inline(__always)
private func addBRow8(_ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>, _ r3: SIMD8<Float>,
                      _ row: UnsafeMutablePointer<Float>) {
    store(load16(row) + interleave8(r0, r1 - r2 + r3), row)
    store(load16(row + 2) + interleave8(r1 + r2 - r0, -r3), row + 2)
}

/// (a0, b0, a1, b1, ..., a7, b7)
@inline(__always) private func interleave8(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
    SIMD16(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

private func accumulateInputTile(_ index: UnsafePointer<Float>, _ stride: Int, _ plane: UnsafeMutablePointer<Float>,
                                 y0: Int, x0: Int, _ g: ConvolutionGeometry) {
    var x = SIMD16<Float>()
    for xi in 0..<16 { x[xi] = index[xi * stride] }
    var d = SIMD16<Float>()
    for j in 0..<4 {
        let r: (Float, Float, Float, Float)
        switch j {
        case 0: r = (x[0], x[1], x[2], x[3])
        case 1: r = (x[4] - x[8] + x[12], x[5] - x[9] + x[13], x[6] - x[10] + x[14], x[7] - x[11] + x[15])
        case 2: r = (-x[0] + x[4] + x[8], -x[1] + x[5] + x[9], -x[2] + x[6] + x[10], -x[3] + x[7] + x[11])
        default: r = (-x[12], -x[13], -x[14], -x[15])
        }
        d[4 * j] = r.0
        d[4 * j + 1] = r.1 - r.2 + r.3
        d[4 * j + 2] = -r.0 + r.1 + r.2
        d[4 * j + 3] = -r.3
    }
    for i in 0..<4 where y0 + i >= 0 && y0 + i < g.h {
        for j in 0..<4 where x0 + j >= 0 && x0 + j < g.w { plane[(y0 + i) * g.w + x0 + j] += d[4 * i + j] }
    }
}

// MARK: Fused 2x2 max-pool
//
// A 2x2 output tile is exactly a 2x2 pooling window (both start at even rows and columns), so the output transform
// can apply bias, activation and the pool at once and write only the window's maximum and where it was. Backward,
// each window passes its gradient to one position (r, c) of its tile, and A dy Aᵀ of a single non-zero g there is
// g · A[i][r] · A[j][c]: Ŷ comes straight from the pooled gradient, with no full-size output gradient at all.

/// Whether the fused pooled output applies: a 2x2 pool over an output of even height and width.
func winogradPoolFuses(_ plan: WinogradPlan, maxPool: Int?) -> Bool {
    maxPool == 2 && plan.g.oh % 2 == 0 && plan.g.ow % 2 == 0
}

/// Pooled output (images x O x OH/2 x OW/2) and the winners' positions in their OH x OW plane, from M.
/// Ties go to the first of (0,0), (0,1), (1,0), (1,1), and NaN wins, as in `maxPool2D`.
///
/// Every tile's sums are its own, and a plane's tiles lie consecutive in each ξ plane of M, so the tiles of a
/// plane are taken 16 at a time in one flat run (one AVX-512 register, or two AVX2 ones), whatever the tile rows;
/// the choices (relu, the window's winner) are bit masks, not branches.
func winogradTransformOutputPooled(_ m: UnsafePointer<Float>, images: Int, _ plan: WinogradPlan, bias: UnsafePointer<Float>?,
                                   relu: Bool, _ pooled: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int32>) {
    let g = plan.g
    let tiles = plan.tilesPerImage
    let t = images * tiles
    let stride = g.o * t
    let width = Int32(g.ow)
    plan.walkPlaneTiles(images: images) { image, channel, at, run, origins in
        let source = m + channel * t + image * tiles
        let planeIndex = (image * g.o + channel) * tiles
        let values = pooled + planeIndex, winners = argmax + planeIndex
        let b = bias?[channel] ?? 0
        if run == 16 {
            let index = source + at
            @inline(__always) func x(_ xi: Int) -> Wide { load16(index + xi * stride) }
            let bias = Wide(repeating: b)
            let r00 = x(0) + x(4) + x(8), r01 = x(1) + x(5) + x(9), r02 = x(2) + x(6) + x(10), r03 = x(3) + x(7) + x(11)
            let r10 = x(4) - x(8) - x(12), r11 = x(5) - x(9) - x(13), r12 = x(6) - x(10) - x(14), r13 = x(7) - x(11) - x(15)
            var c00 = r00 + r01 + r02 + bias, c01 = r01 - r02 - r03 + bias
            var c10 = r10 + r11 + r12 + bias, c11 = r11 - r12 - r13 + bias
            if relu {  // max(x, 0), keeping NaN as the scalar relu does
                let zero = Wide()
                c00 = select(bits(c00 .< zero), zero, c00)
                c01 = select(bits(c01 .< zero), zero, c01)
                c10 = select(bits(c10 .< zero), zero, c10)
                c11 = select(bits(c11 .< zero), zero, c11)
            }
            let origin = loadIndices(origins + at)
            var best = c00, position = origin
            @inline(__always) func consider(_ candidate: Wide, _ offset: Int32) {
                let wins = bits(candidate .> best) | bits(candidate .!= candidate)
                best = select(wins, candidate, best)
                position = select(wins, origin &+ offset, position)
            }
            consider(c01, 1)
            consider(c10, width)
            consider(c11, width + 1)
            store(best, values + at)
            UnsafeMutableRawPointer(winners + at).storeBytes(of: position, as: WideIndices.self)
        } else {
            var x = Wide()
            for xi in 0..<16 { x[xi] = source[at + xi * stride] }
            let r0 = (x[0] + x[4] + x[8], x[1] + x[5] + x[9], x[2] + x[6] + x[10], x[3] + x[7] + x[11])
            let r1 = (x[4] - x[8] - x[12], x[5] - x[9] - x[13], x[6] - x[10] - x[14], x[7] - x[11] - x[15])
            var c = SIMD4<Float>(r0.0 + r0.1 + r0.2 + b, r0.1 - r0.2 - r0.3 + b, r1.0 + r1.1 + r1.2 + b, r1.1 - r1.2 - r1.3 + b)
            if relu { for k in 0..<4 where c[k] < 0 { c[k] = 0 } }
            let offsets = SIMD4<Int32>(0, 1, width, width + 1)
            var best = c[0], position = origins[at]
            for k in 1..<4 where c[k] > best || c[k] != c[k] {
                best = c[k]
                position = origins[at] + offsets[k]
            }
            values[at] = best
            winners[at] = position
        }
    }
}

/// Ŷ[ξ][o][t] from the pooled gradient: g · A[i][r] · A[j][c] at the winner (r, c) of each window, zero where the
/// relu was inactive (pooled value not positive). Tiles 16 at a time, as in `winogradTransformOutputPooled`.
func winogradTransformPooledGradient(_ upstream: UnsafePointer<Float>, pooled: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                                     images: Int, _ plan: WinogradPlan, relu: Bool, _ yhat: UnsafeMutablePointer<Float>) {
    let g = plan.g
    let tiles = plan.tilesPerImage
    let t = images * tiles
    let stride = g.o * t
    let width = Int32(g.ow)
    plan.walkPlaneTiles(images: images) { image, channel, at, run, origins in
        let planeIndex = (image * g.o + channel) * tiles
        let gradients = upstream + planeIndex, values = pooled + planeIndex, winners = argmax + planeIndex
        let out = yhat + channel * t + image * tiles
        if run == 16 {
            var gradient = load16(gradients + at)
            if relu { gradient = select(bits(load16(values + at) .> Wide()), gradient, Wide()) }
            let offset = loadIndices(winners + at) &- loadIndices(origins + at)
            // 1 where the winner is in the tile's lower row (right column), else 0; A's entries from them:
            // A[.][0] = (1, 1, 1, 0) and A[.][1] = (0, 1, -1, -1), so A[i][s] = (1 - s, 1, 1 - 2s, 0 - s).
            let one = Wide(repeating: 1)
            let lower = select(bits(offset .>= WideIndices(repeating: width)), one, Wide())
            let right = select(bits(offset .== WideIndices(repeating: 1)) | bits(offset .== WideIndices(repeating: width + 1)),
                               one, Wide())
            let rows = ((one - lower) * gradient, one * gradient, (one - 2 * lower) * gradient, (Wide() - lower) * gradient)
            let columns = (one - right, one, one - 2 * right, Wide() - right)
            @inline(__always) func write(_ row: Wide, _ i: Int) {
                let base = out + at + 4 * i * stride
                store(row * columns.0, base)
                store(row * columns.1, base + stride)
                store(row * columns.2, base + 2 * stride)
                store(row * columns.3, base + 3 * stride)
            }
            write(rows.0, 0); write(rows.1, 1); write(rows.2, 2); write(rows.3, 3)
        } else {
            var gradient = gradients[at]
            if relu && !(values[at] > 0) { gradient = 0 }
            let offset = winners[at] - origins[at]
            let lower: Float = offset >= width ? 1 : 0
            let right: Float = offset == 1 || offset == width + 1 ? 1 : 0
            let rows = SIMD4<Float>((1 - lower) * gradient, 1 * gradient, (1 - 2 * lower) * gradient, (0 - lower) * gradient)
            let columns = SIMD4<Float>(1 - right, 1, 1 - 2 * right, 0 - right)
            for i in 0..<4 {
                for j in 0..<4 { out[at + (4 * i + j) * stride] = rows[i] * columns[j] }
            }
        }
    }
}

// MARK: 16 tiles at a time

private typealias Wide = SIMD16<Float>
private typealias WideIndices = SIMD16<Int32>

@inline(__always) private func loadIndices(_ p: UnsafePointer<Int32>) -> WideIndices {
    UnsafeRawPointer(p).loadUnaligned(as: WideIndices.self)
}
@inline(__always) private func loadIndices(_ p: UnsafeMutablePointer<Int32>) -> WideIndices { loadIndices(UnsafePointer(p)) }

/// A comparison's lanes as bits (all ones where true): masks are combined as integers, since SIMDMask's own
/// operators (`.|`, `replace(with:where:)`) compile to a loop over the lanes.
@inline(__always) private func bits(_ mask: SIMDMask<WideIndices>) -> SIMD16<UInt32> { unsafeBitCast(mask, to: SIMD16<UInt32>.self) }

/// `mask ? a : b` per lane, as bit operations.
@inline(__always) private func select(_ m: SIMD16<UInt32>, _ a: Wide, _ b: Wide) -> Wide {
    let x = unsafeBitCast(a, to: SIMD16<UInt32>.self), y = unsafeBitCast(b, to: SIMD16<UInt32>.self)
    return unsafeBitCast((x & m) | (y & ~m), to: Wide.self)
}
@inline(__always) private func select(_ m: SIMD16<UInt32>, _ a: WideIndices, _ b: WideIndices) -> WideIndices {
    let mask = unsafeBitCast(m, to: WideIndices.self)
    return (a & mask) | (b & ~mask)
}

extension WinogradPlan {
    /// The walk of the fused-pool transforms: for each image and output channel, the plane's tiles as one flat run
    /// (a plane's tiles lie consecutive in each ξ plane, whatever the tile rows), 16 at a time (`run` 16) and the
    /// rest one by one, with every tile's origin in its OH x OW plane.
    @inline(__always)
    func walkPlaneTiles(images: Int, _ body: (_ image: Int, _ channel: Int, _ at: Int, _ run: Int,
                                              _ origins: UnsafeMutablePointer<Int32>) -> Void) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: tilesPerImage) { buffer in
            let origins = buffer.baseAddress!
            for at in 0..<tilesPerImage { origins[at] = Int32(2 * (at / tilesX) * g.ow + 2 * (at % tilesX)) }
            for image in 0..<images {
                for channel in 0..<g.o {
                    var at = 0
                    while at < tilesPerImage {
                        let run = at + 16 <= tilesPerImage ? 16 : 1
                        body(image, channel, at, run, origins)
                        at += run
                    }
                }
            }
        }
    }
}
