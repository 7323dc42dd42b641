// The one file that talks to BLAS (OpenBLAS's CBLAS interface).
import COpenBLAS
import Support

/// Single-precision matrix products and OpenBLAS's thread control.
public enum BLAS {
    /// Threads OpenBLAS uses for one call.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// Parts a large product is cut into, each a single-threaded sgemm on a thread of its own (see `gemm`); 1 leaves
    /// any threading to OpenBLAS.
    nonisolated(unsafe) private(set) static var splitParts = 1

    /// Column width at which large products are always cut, whatever the thread count (nil: cut into
    /// `splitParts` ranges). OpenBLAS's result for a column depends in its last bits on where the call's columns
    /// start and how many there are; fixed cuts make a product's bits independent of the thread count.
    nonisolated(unsafe) private(set) static var fixedColumnBlock: Int?

    /// How every product of this process uses threads: OpenBLAS's own (`threadsPerCall`), or `splitParts` column
    /// ranges computed side by side, each by single-threaded OpenBLAS; with `fixedColumnBlock`, large products are
    /// cut at multiples of that many columns and the pieces shared among `splitParts` threads. Set once, before
    /// training, by whoever decides a rank's thread plan.
    /// - Precondition: not both `threadsPerCall` and `splitParts` above 1 (two thread pools would fight for the cores).
    public static func configure(threadsPerCall: Int, splitParts parts: Int, fixedColumnBlock block: Int? = nil) {
        require(threadsPerCall >= 1 && parts >= 1 && (threadsPerCall == 1 || parts == 1) && (block ?? 64) >= 64,
                "BLAS.configure: \(threadsPerCall) OpenBLAS threads with products split \(parts) ways, blocks \(block ?? 0)")
        openblas_set_num_threads(Int32(threadsPerCall))
        splitParts = parts
        fixedColumnBlock = block
    }

    /// Threads one product may use, whichever way they are used (OpenBLAS's or split parts).
    static var threadsPerProduct: Int { max(threadCount, splitParts) }

    /// Products smaller than this many multiply-adds are not split: waking a thread would cost more than it saves.
    static let splitMinimum = 1 << 21

    /// Outputs of at least this many elements take the memset path for beta 0 (see `gemm`).
    static let largeOutput = 1 << 12

    /// Whether `gemm` zeroes a large output itself before a beta-0 product (see `product`): not with OpenBLAS's
    /// AVX-512 kernels, whose small-matrix path has beta-0 kernels that write C without reading it, and whose
    /// zeroing pass is as fast as memset. Measured on a Xeon (family 6, model 207), SkylakeX kernels, perf samples:
    /// CNN 18.8K -> 17.9K for 3 epochs (memset was 6.1 %), MLP unchanged; the same parameters bit for bit.
    static let zeroesOutputFirst = !["SkylakeX", "Cooperlake", "SapphireRapids"].contains(coreName)

    /// The CPU kernel family OpenBLAS picked (e.g. "Zen", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// `c = alpha * op(a) * op(b) + beta * c` for row-major matrices, where op(a) is m x k and op(b) is k x n.
    ///
    /// Transposes are expressed through CBLAS's flags, never materialised. With `beta` 0, `c` need not be
    /// initialised (BLAS does not read it). A large product is split into `parts` column ranges (default:
    /// `splitParts`) computed side by side.
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int? = nil) {
        guard m > 0, n > 0 else { return }
        // C[:, columns] = op(A) · op(B)[:, columns], which reads B from column (or, transposed, row) `first`.
        func columns(_ first: Int, _ count: Int) {
            product(transposeA, transposeB, m, count, k, alpha, a, lda, transposeB ? b + first * ldb : b + first, ldb,
                    beta, c + first, ldc)
        }
        if let block = fixedColumnBlock, parts == nil, n > block, m * n * k >= splitMinimum {
            // Fixed cuts: the same calls whatever the thread count; thread t takes pieces t, t + threads, ...
            let pieces = (n + block - 1) / block, threads = min(splitParts, pieces)
            Parallel.forEach(parts: threads) { thread in
                for piece in stride(from: thread, to: pieces, by: threads) { columns(piece * block, min(block, n - piece * block)) }
            }
            return
        }
        let parts = min(parts ?? splitParts, n / 64)
        guard parts > 1 && m * n * k >= splitMinimum else {
            product(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        // Split C by columns, in whole 64-column blocks. The result depends on the number of parts in the last bits
        // (OpenBLAS's kernels do not sum every column alike wherever a range starts), never on timing: the same parts
        // give the same bits every run.
        Parallel.forEach(parts: parts) { part in
            let range = Parallel.part(part, of: n, parts: parts)
            columns(range.lowerBound, range.count)
        }
    }

    /// One single call's worth of `gemm` (all of it, or one part of a split).
    private static func product(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                                _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                                _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        var beta = beta
        if beta == 0 && k > 0 && m * n >= largeOutput && zeroesOutputFirst {
            // OpenBLAS (0.3.21, Haswell kernels on Zen) handles beta 0 with a zeroing pass of its own (sgemm_beta) that is slower than
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
