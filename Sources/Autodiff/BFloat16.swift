// The one file that talks to the bfloat16 kernels (CBFloat16, a C target of our own with AVX512_BF16 intrinsics).
import CBFloat16
import Foundation
import Support

/// The operands a tape's products and convolutions take.
public enum ProductPrecision: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Float operands (OpenBLAS sgemm).
    case float
    /// bfloat16 operands, rounded to nearest from the Float values, multiplied in pairs and summed in Float
    /// (vdpbf16ps). Parameters, gradients, activations and everything between the products stay Float.
    case bf16
    public var description: String { rawValue }
}

/// bfloat16 products of Float matrices, and the rounding they apply.
public enum BFloat16 {
    /// Whether this CPU runs bfloat16 products: AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire
    /// Rapids and later). `MNIST_DIST_NO_BF16=1` makes a process act as if it did not, so that the refusal can be
    /// tested on a CPU that has them.
    public static let supported: Bool =
        ProcessInfo.processInfo.environment["MNIST_DIST_NO_BF16"] != "1" && bf16_supported()

    /// Multiply-adds per second of bfloat16 dot products against Float FMAs on this core, measured now (about 2 ms):
    /// above 1, bf16 products can outrun Float ones. nil on a CPU without AVX512_BF16.
    public static func measuredRateAgainstFloat() -> Double? {
        supported ? bf16_rate_against_float() : nil
    }

    /// `c = op(a) · op(b) + beta · c` with bfloat16 operands (see `bf16_gemm`); beta 0 or 1.
    static func gemm(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int,
                     _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        require(supported, "BFloat16.gemm: this CPU has no AVX512_BF16")
        require(beta == 0 || beta == 1, "BFloat16.gemm: beta \(beta)")
        bf16_gemm(transposeA, transposeB, Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
