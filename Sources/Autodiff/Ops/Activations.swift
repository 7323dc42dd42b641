// Elementwise nonlinearities: tanh, relu, exp, log.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hyperbolic tangent. Backward: g · (1 - y²), from the saved output.
public func tanh(_ a: Tensor) -> Tensor {
    let out = Tape.output("tanh", shape: a.shape, inputs: a)
    let x = a.pointer, y = out.pointer
    Parallel.forEachRange(of: a.count, on: out.tape) { range in
        for i in range { y[i] = fastTanh(x[i]) }
    }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in
            Parallel.forEachRange(of: a.count, on: out.tape) { range in
                store(da + range.lowerBound, count: range.count, accumulate: acc) {
                    let i = range.lowerBound + $0
                    return g[i] * (1 - y[i] * y[i])
                }
            }
        }
    }
    return out
}

/// tanh for Float as a clamped rational function (Eigen's and XLA's), which vectorises, unlike a libm call per
/// element; it is within a few units in the last place of the exact value (tested against Double tanh).
@inline(__always)
func fastTanh(_ input: Float) -> Float {
    // Beyond ±7.9053 tanh rounds to ±1 in Float.
    let x = min(max(input, -7.905_311_107_635_498_05), 7.905_311_107_635_498_05)
    let x2 = x * x
    var p: Float = -2.760_768_477_423_55e-16
    p = p * x2 + 2.000_187_904_824_77e-13
    p = p * x2 - 8.604_671_522_137_35e-11
    p = p * x2 + 5.122_297_090_371_14e-08
    p = p * x2 + 1.485_722_357_179_79e-05
    p = p * x2 + 6.372_619_288_754_36e-04
    p = p * x2 + 4.893_524_558_917_86e-03
    p = p * x
    var q: Float = 1.198_258_394_667_02e-06
    q = q * x2 + 1.185_347_056_866_54e-04
    q = q * x2 + 2.268_434_632_439_00e-03
    q = q * x2 + 4.893_525_185_543_85e-03
    // Tiny inputs: tanh(x) = x to Float precision, and the rational form would lose the sign of -0.
    return abs(input) < 0.0004 ? input : p / q
}

/// max(x, 0). Backward passes the gradient where the output is positive (PyTorch's choice at 0: gradient 0).
public func relu(_ a: Tensor) -> Tensor {
    let out = Tape.output("relu", shape: a.shape, inputs: a)
    let x = a.pointer, y = out.pointer
    for i in 0..<a.count { y[i] = max(x[i], 0) }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in
            store(da, count: a.count, accumulate: acc) { y[$0] > 0 ? g[$0] : 0 }
        }
    }
    return out
}

/// eˣ. Backward: g · y.
public func exp(_ a: Tensor) -> Tensor {
    let out = Tape.output("exp", shape: a.shape, inputs: a)
    let x = a.pointer, y = out.pointer
    for i in 0..<a.count { y[i] = expf(x[i]) }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in store(da, count: a.count, accumulate: acc) { g[$0] * y[$0] } }
    }
    return out
}

/// Natural logarithm. Backward: g / x.
public func log(_ a: Tensor) -> Tensor {
    let out = Tape.output("log", shape: a.shape, inputs: a)
    let x = a.pointer, y = out.pointer
    for i in 0..<a.count { y[i] = logf(x[i]) }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in store(da, count: a.count, accumulate: acc) { g[$0] / x[$0] } }
    }
    return out
}
