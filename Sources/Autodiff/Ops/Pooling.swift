// 2-D max pooling over N, C, H, W, remembering each window's argmax for the backward pass.
import Support

/// Max pooling with a square `kernel` moved by `stride` (no padding; output OH = (H - kernel) / stride + 1).
///
/// Ties go to the first maximum in row-major order, as in PyTorch. Backward routes each output's gradient to
/// the input position that won its window.
public func maxPool2D(_ input: Tensor, kernel: Int, stride: Int) -> Tensor {
    require(input.rank == 4, "maxPool2D: input must be N, C, H, W, got \(describe(input.shape))")
    require(kernel > 0 && stride > 0, "maxPool2D: kernel \(kernel) and stride \(stride) must be positive")
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    require(h >= kernel && w >= kernel, "maxPool2D: kernel \(kernel) is larger than the input \(describe(input.shape))")
    let oh = (h - kernel) / stride + 1, ow = (w - kernel) / stride + 1
    let planes = n * c
    let out = Tape.output("maxPool2D", shape: [n, c, oh, ow], inputs: input)
    // argmax: for each output, the winning position within its H x W input plane, as Int32 in a Float buffer.
    let argmaxStorage = out.tape.map { $0.arena.allocate(out.count) } ?? TensorStorage(capacity: out.count)
    let x = input.pointer, y = out.pointer
    argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: out.count) { argmax in
        for plane in 0..<planes {
            let xp = x + plane * h * w, yp = y + plane * oh * ow, ap = argmax + plane * oh * ow
            poolPlane(xp, height: h, width: w, window: kernel, stride: stride, yp, ap)
        }
    }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: input) { dx, acc in
            withExtendedLifetime(argmaxStorage) {
                argmaxStorage.pointer.withMemoryRebound(to: Int32.self, capacity: out.count) { argmax in
                    // Windows that tile the plane exactly (2x2/2 on 24x24) cover every input once: write each
                    // window whole (gradient at the winner, zeros elsewhere) and skip clearing the buffer first.
                    let tiles = kernel == stride && h == oh * kernel && w == ow * kernel
                    if !acc && !tiles { dx.update(repeating: 0, count: input.count) }
                    for plane in 0..<planes {
                        let dp = dx + plane * h * w, gp = g + plane * oh * ow, ap = argmax + plane * oh * ow
                        if tiles && !acc {
                            for oy in 0..<oh {
                                for ox in 0..<ow {
                                    let origin = (oy * kernel) * w + ox * kernel
                                    for ky in 0..<kernel {
                                        for kx in 0..<kernel { dp[origin + ky * w + kx] = 0 }
                                    }
                                    dp[Int(ap[oy * ow + ox])] = gp[oy * ow + ox]
                                }
                            }
                        } else {
                            for i in 0..<(oh * ow) { dp[Int(ap[i])] += gp[i] }
                        }
                    }
                }
            }
        }
    }
    return out
}

/// Max-pools one H x W plane with `window` x `window` windows moved by `stride` into OH x OW values
/// (OH = (H - window) / stride + 1) and the positions of their winners. Candidates are scanned in PyTorch's order
/// (row-major within the window): a later one wins only if strictly greater, or NaN. The 2x2 case at stride 2, the
/// hot one, is written out.
@inline(__always)
func poolPlane(_ x: UnsafePointer<Float>, height: Int, width w: Int, window: Int, stride: Int,
               _ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int32>) {
    let oh = (height - window) / stride + 1, ow = (w - window) / stride + 1
    if window == 2 && stride == 2 {
        for oy in 0..<oh {
            let top = x + 2 * oy * w, bottom = top + w
            let base = Int32(2 * oy * w)
            for ox in 0..<ow {
                var value = top[2 * ox]
                var index = base + Int32(2 * ox)
                let b = top[2 * ox + 1], c = bottom[2 * ox], d = bottom[2 * ox + 1]
                if b > value || b.isNaN { value = b; index = base + Int32(2 * ox + 1) }
                if c > value || c.isNaN { value = c; index = base + Int32(w + 2 * ox) }
                if d > value || d.isNaN { value = d; index = base + Int32(w + 2 * ox + 1) }
                y[oy * ow + ox] = value
                argmax[oy * ow + ox] = index
            }
        }
        return
    }
    for oy in 0..<oh {
        for ox in 0..<ow {
            var best = oy * stride * w + ox * stride
            var value = x[best]
            for ky in 0..<window {
                let row = (oy * stride + ky) * w + ox * stride
                for kx in 0..<window where x[row + kx] > value || x[row + kx].isNaN {
                    value = x[row + kx]
                    best = row + kx
                }
            }
            y[oy * ow + ox] = value
            argmax[oy * ow + ox] = Int32(best)
        }
    }
}
