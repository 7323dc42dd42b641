// The one file that talks to BLAS (OpenBLAS's CBLAS interface).
import COpenBLAS

/// Single-precision matrix products and OpenBLAS's thread control.
public enum BLAS {
    /// Threads OpenBLAS uses for one call.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// Sets the threads OpenBLAS uses for one call (a rank's share of the host's cores).
    public static func setThreadCount(_ count: Int) {
        require(count >= 1, "BLAS.setThreadCount: \(count) threads")
        openblas_set_num_threads(Int32(count))
    }

    /// Outputs of at least this many elements take the memset path for beta 0 (see `gemm`).
    @usableFromInline static let largeOutput = 1 << 12

    /// The CPU kernel family OpenBLAS picked (e.g. "Zen", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// `c = alpha * op(a) * op(b) + beta * c` for row-major matrices, where op(a) is m x k and op(b) is k x n.
    ///
    /// Transposes are expressed through CBLAS's flags, never materialised. With `beta` 0, `c` need not be
    /// initialised (BLAS does not read it).
    @inlinable
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        var beta = beta
        if beta == 0 && k > 0 && m * n >= largeOutput {
            // OpenBLAS (0.3.21, Zen) handles beta 0 with a zeroing pass of its own (sgemm_beta) that is slower than
            // memset, then adds the product onto C anyway; memset and beta 1 give the same bits, faster. Measured
            // medians: fc1's weight gradient (128x64x9216, 1 thread) 2.80 -> 2.46 ms, a Winograd product
            // (64x32x576) 0.049 -> 0.039 ms, the MLP's 1024x128x1024 weight gradient on 2 threads 3.0 -> 2.5 ms.
            for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
