// numpy's 1-D `convolve(a, v, mode)` with modes full, same and valid, differentiable in both arguments.
import Support

/// Which part of the full convolution `convolve` returns (numpy's modes).
public enum ConvolveMode: String, Sendable, CaseIterable {
    /// Every overlap: n + m - 1 values.
    case full
    /// max(n, m) values centred on the full result; for an even shorter length the window sits one step left of
    /// centre, exactly as numpy places it.
    case same
    /// Only complete overlaps: max(n, m) - min(n, m) + 1 values.
    case valid
}

/// The discrete convolution of two 1-D tensors, as `numpy.convolve(a, v, mode)`.
///
/// full[k] = Σⱼ a[j] · v[k - j]; `same` and `valid` are slices of it. Backward: each argument's gradient is the
/// correlation of the (zero-extended) output gradient with the other argument.
public func convolve(_ a: Tensor, _ v: Tensor, mode: ConvolveMode) -> Tensor {
    require(a.rank == 1 && v.rank == 1 && a.count > 0 && v.count > 0,
                 "convolve: needs two non-empty 1-D tensors, got \(describe(a.shape)) and \(describe(v.shape))")
    let n = a.count, m = v.count
    let longer = max(n, m), shorter = min(n, m)
    let (start, length): (Int, Int)
    switch mode {
    case .full: (start, length) = (0, n + m - 1)
    case .same: (start, length) = ((shorter - 1) - shorter / 2, longer)
    case .valid: (start, length) = (shorter - 1, longer - shorter + 1)
    }
    let out = Tape.output("convolve", shape: [length], inputs: a, v)
    let x = a.pointer, w = v.pointer, y = out.pointer
    for i in 0..<length {
        let k = start + i  // index into the full convolution
        var total: Double = 0
        for j in max(0, k - m + 1)...min(n - 1, k) { total += Double(x[j]) * Double(w[k - j]) }
        y[i] = Float(total)
    }
    out.tape?.record(out) { tape, g in
        // Output gradient at full index k, zero outside the returned slice.
        let upstream = { (k: Int) -> Float in k >= start && k < start + length ? g[k - start] : 0 }
        tape.withGradient(of: a) { da, acc in
            store(da, count: n, accumulate: acc) { j in
                var total: Float = 0
                for t in 0..<m { total += upstream(j + t) * w[t] }
                return total
            }
        }
        tape.withGradient(of: v) { dv, acc in
            store(dv, count: m, accumulate: acc) { t in
                var total: Float = 0
                for j in 0..<n { total += upstream(j + t) * x[j] }
                return total
            }
        }
    }
    return out
}
