// Unaligned SIMD loads and stores of Float, for the hand-vectorised kernels (Winograd transforms, sparse inputs,
// reductions). Internal and always inlined: the release build's whole-module optimisation makes each one a single
// vector instruction (a build without it leaves them calls and the kernels several times slower).

// SIMD16 is one AVX-512 register; on AVX2 the compiler splits it into two, which is what two SIMD8 would be. (The
// compiler's own vectorised loops stay at 8 lanes on AVX-512 CPUs, its preference there: kernels that should use
// the whole register spell SIMD16 out.)
@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}
@inline(__always) func load16(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> { load16(UnsafePointer(p)) }
@inline(__always) func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
}
@inline(__always) func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
@inline(__always) func store(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
}

/// Σ p[0..<n] in a fixed order that vectorises: four 16-lane partial sums over blocks of 64, combined
/// pairwise, then the rest in order. (A plain running sum is one dependent addition after another.)
@inline(__always) func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = SIMD16<Float>(), s1 = s0, s2 = s0, s3 = s0
    var i = 0
    while i + 64 <= n {
        s0 += load16(p + i); s1 += load16(p + i + 16); s2 += load16(p + i + 32); s3 += load16(p + i + 48)
        i += 64
    }
    var total = ((s0 + s1) + (s2 + s3)).sum()
    while i < n { total += p[i]; i += 1 }
    return total
}

/// Σ p[i] over the i in 0..<n where keep[i] > 0 (NaN keeps nothing), in `vectorSum`'s order.
@inline(__always) func vectorSum(_ p: UnsafePointer<Float>, wherePositive keep: UnsafePointer<Float>, _ n: Int) -> Float {
    @inline(__always) func kept(_ at: Int) -> SIMD16<Float> {
        let mask = unsafeBitCast(load16(keep + at) .> SIMD16<Float>(), to: SIMD16<UInt32>.self)
        return unsafeBitCast(unsafeBitCast(load16(p + at), to: SIMD16<UInt32>.self) & mask, to: SIMD16<Float>.self)
    }
    var s0 = SIMD16<Float>(), s1 = s0, s2 = s0, s3 = s0
    var i = 0
    while i + 64 <= n {
        s0 += kept(i); s1 += kept(i + 16); s2 += kept(i + 32); s3 += kept(i + 48)
        i += 64
    }
    var total = ((s0 + s1) + (s2 + s3)).sum()
    while i < n {
        if keep[i] > 0 { total += p[i] }
        i += 1
    }
    return total
}
