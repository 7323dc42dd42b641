// logSumExp and logSoftmax along an axis, stable for logits of any size (the maximum is subtracted first).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// For every line along `axis` of `x` (outer, length, inner): the maximum and log Σ exp(x - max), accumulated
/// in Double so that lines of ±1000 logits lose nothing.
private func forEachLine(_ x: UnsafeMutablePointer<Float>, outer: Int, length: Int, inner: Int,
                         _ body: (_ base: Int, _ maximum: Float, _ logSum: Float) -> Void) {
    for o in 0..<outer {
        for j in 0..<inner {
            let base = o * length * inner + j
            var maximum = -Float.infinity
            for i in 0..<length { maximum = max(maximum, x[base + i * inner]) }
            if maximum == -.infinity { maximum = 0 }  // a line of -inf: keep exp(x - max) defined
            var total = 0.0
            for i in 0..<length { total += exp(Double(x[base + i * inner] - maximum)) }
            body(base, maximum, Float(log(total)))
        }
    }
}

/// log Σ exp(x) along `axis`. Backward: g · exp(x - lse) (the softmax).
public func logSumExp(_ a: Tensor, axis: Int, keepingDimension: Bool = false) -> Tensor {
    let (outer, length, inner, axis) = axisLayout("logSumExp", a.shape, axis: axis)
    let out = Tape.output("logSumExp", shape: reducedShape(a.shape, axis: axis, keepingDimension: keepingDimension),
                          inputs: a)
    let x = a.pointer, y = out.pointer
    forEachLine(x, outer: outer, length: length, inner: inner) { base, maximum, logSum in
        y[(base / (length * inner)) * inner + base % inner] = maximum + logSum
    }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in
            store(da, count: a.count, accumulate: acc) { index in
                let line = (index / (length * inner)) * inner + index % inner
                return g[line] * expf(x[index] - y[line])
            }
        }
    }
    return out
}

/// log(softmax(x)) along `axis`: x - max - log Σ exp(x - max).
///
/// Backward: dx = g - softmax · Σ g along the axis, with softmax = exp(y) from the saved output.
public func logSoftmax(_ a: Tensor, axis: Int) -> Tensor {
    let (outer, length, inner, _) = axisLayout("logSoftmax", a.shape, axis: axis)
    let out = Tape.output("logSoftmax", shape: a.shape, inputs: a)
    let x = a.pointer, y = out.pointer
    forEachLine(x, outer: outer, length: length, inner: inner) { base, maximum, logSum in
        for i in 0..<length { y[base + i * inner] = x[base + i * inner] - maximum - logSum }
    }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in
            for o in 0..<outer {
                for j in 0..<inner {
                    let base = o * length * inner + j
                    var total: Float = 0
                    for i in 0..<length { total += g[base + i * inner] }
                    for i in 0..<length {
                        let index = base + i * inner
                        let value = g[index] - expf(y[index]) * total
                        da[index] = acc ? da[index] + value : value
                    }
                }
            }
        }
    }
    return out
}
