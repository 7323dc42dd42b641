// The direct, loop-by-loop convolution in Double: the oracle the im2col and Winograd paths are tested against. It
// works out the output size and padding itself, from PyTorch's and TensorFlow's definitions, rather than sharing
// the product's geometry.
import Autodiff

enum ConvolutionReference {
    /// Sizes of one convolution: input N, C, H, W; weight O, KH, KW; the padding above and left; the output size.
    private struct Sizes {
        let n: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int, stride: Int, top: Int, left: Int, oh: Int, ow: Int

        init(input: [Int], weight: [Int], stride: Int, padding: Padding) {
            (n, c, h, w) = (input[0], input[1], input[2], input[3])
            (o, kh, kw) = (weight[0], weight[2], weight[3])
            self.stride = stride
            let (rows, columns): (Int, Int)
            switch padding {
            case .valid:
                (top, left, rows, columns) = (0, 0, 0, 0)
            case .explicit(let r, let c):
                (top, left, rows, columns) = (r, c, 2 * r, 2 * c)
            case .same:
                // Output ceil(size / stride); the padding's odd extra goes below and right.
                let totalH = max(((h + stride - 1) / stride - 1) * stride + kh - h, 0)
                let totalW = max(((w + stride - 1) / stride - 1) * stride + kw - w, 0)
                (top, left, rows, columns) = (totalH / 2, totalW / 2, totalH, totalW)
            }
            oh = (h + rows - kh) / stride + 1
            ow = (w + columns - kw) / stride + 1
        }

        /// Calls `body(inputIndex, weightIndex, outputIndex, o)` for every product of the convolution.
        func forEachProduct(_ body: (Int, Int, Int, Int) -> Void) {
            for image in 0..<n {
                for out in 0..<o {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            for ch in 0..<c {
                                for ky in 0..<kh {
                                    for kx in 0..<kw {
                                        let iy = oy * stride + ky - top, ix = ox * stride + kx - left
                                        guard iy >= 0 && iy < h && ix >= 0 && ix < w else { continue }
                                        body(((image * c + ch) * h + iy) * w + ix, ((out * c + ch) * kh + ky) * kw + kx,
                                             ((image * o + out) * oh + oy) * ow + ox, out)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Output values (N x O x OH x OW) and shape.
    static func forward(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], bias: [Float]?,
                        stride: Int, padding: Padding) -> (values: [Double], shape: [Int]) {
        let s = Sizes(input: inputShape, weight: weightShape, stride: stride, padding: padding)
        var out = [Double](repeating: 0, count: s.n * s.o * s.oh * s.ow)
        for index in out.indices { out[index] = bias.map { Double($0[(index / (s.oh * s.ow)) % s.o]) } ?? 0 }
        s.forEachProduct { xi, wi, yi, _ in out[yi] += Double(input[xi]) * Double(weight[wi]) }
        return (out, [s.n, s.o, s.oh, s.ow])
    }

    /// Gradients of Σ output · `outputGradient` with respect to input, weight and bias.
    static func gradients(input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], stride: Int,
                          padding: Padding, outputGradient: [Float]) -> (input: [Double], weight: [Double], bias: [Double]) {
        let s = Sizes(input: inputShape, weight: weightShape, stride: stride, padding: padding)
        var dx = [Double](repeating: 0, count: input.count)
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: s.o)
        for (index, up) in outputGradient.enumerated() { db[(index / (s.oh * s.ow)) % s.o] += Double(up) }
        s.forEachProduct { xi, wi, yi, _ in
            dx[xi] += Double(outputGradient[yi]) * Double(weight[wi])
            dw[wi] += Double(outputGradient[yi]) * Double(input[xi])
        }
        return (dx, dw, db)
    }
}
