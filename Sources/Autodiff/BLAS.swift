// The one file that talks to BLAS (OpenBLAS's CBLAS interface); bfloat16 products go on to BFloat16.swift.
import COpenBLAS
import Support

/// Single-precision matrix products and OpenBLAS's thread control.
///
/// Nothing here changes while products run elsewhere in the process: how a product uses threads is a `Plan` that
/// its caller passes (ops take it from their tape), and OpenBLAS's own thread count, the one process-wide setting,
/// is 1 from the first product on unless a run that lets OpenBLAS thread its calls raises it
/// (`useOpenBLASThreads`).
public enum BLAS {
    /// How the products of one tape (one worker) use threads.
    public struct Plan: Sendable, Equatable {
        /// Column ranges a large product is cut into, each a single-threaded sgemm on a thread of its own (see
        /// `gemm`); 1 leaves any threading to OpenBLAS.
        public let parts: Int
        /// Column width at which large products are always cut, whatever `parts` is (nil: cut into `parts`
        /// ranges). OpenBLAS's result for a column depends in its last bits on where the call's columns start and
        /// how many there are; fixed cuts make a product's bits independent of the thread count.
        public let fixedColumnBlock: Int?
        /// The operands' precision: Float products are OpenBLAS's sgemm, bfloat16 ones `BFloat16.gemm`. Either
        /// sums each element over k in an order that does not depend on the column range a call covers.
        public let precision: ProductPrecision

        /// - Precondition: `parts` >= 1; a fixed block, if any, of at least 64 columns; bfloat16 only on a CPU
        ///   that has it (`BFloat16.supported`).
        public init(parts: Int, fixedColumnBlock: Int? = nil, precision: ProductPrecision = .float) {
            require(parts >= 1 && (fixedColumnBlock ?? 64) >= 64,
                    "BLAS.Plan: products split \(parts) ways, blocks \(fixedColumnBlock ?? 0)")
            require(precision == .float || BFloat16.supported, "BLAS.Plan: bfloat16 products on a CPU without AVX512_BF16")
            self.parts = parts
            self.fixedColumnBlock = fixedColumnBlock
            self.precision = precision
        }

        /// One call per product, on the calling thread (and OpenBLAS's, if a run raised their count).
        public static let serial = Plan(parts: 1)

        /// Threads one product may use, whichever way they are used (OpenBLAS's or split parts).
        var threadsPerProduct: Int { max(BLAS.threadCount, parts) }
    }

    /// Threads OpenBLAS uses for one call.
    public static var threadCount: Int {
        _ = singleThreadedAtStart
        return Int(openblas_get_num_threads())
    }

    /// OpenBLAS starts with one thread per core; every process of ours starts it with one, before its first product,
    /// so that no product's bits depend on the machine's core count or on when a setting was made.
    private static let singleThreadedAtStart: Void = openblas_set_num_threads(1)

    /// Lets OpenBLAS thread each call over `threads` threads, for the whole process. Only a run whose products
    /// are all its own calls this (the `blas` thread mode), before its first product; products split by a `Plan`
    /// need it at 1, the count every process starts with.
    public static func useOpenBLASThreads(_ threads: Int) {
        require(threads >= 1, "BLAS.useOpenBLASThreads: \(threads) threads")
        _ = singleThreadedAtStart
        openblas_set_num_threads(Int32(threads))
    }

    /// Products smaller than this many multiply-adds are not split: waking a thread would cost more than it saves.
    static let splitMinimum = 1 << 21

    /// Outputs of at least this many elements take the memset path for beta 0 (see `gemm`).
    static let largeOutput = 1 << 12

    /// Whether `gemm` zeroes a large output itself before a beta-0 product (see `product`): not with OpenBLAS's
    /// AVX-512 kernels, whose small-matrix path has beta-0 kernels that write C without reading it, and whose
    /// zeroing pass is as fast as memset, so a memset first would only add a pass (the bits are the same either way).
    static let zeroesOutputFirst = !["SkylakeX", "Cooperlake", "SapphireRapids"].contains(coreName)

    /// The CPU kernel family OpenBLAS picked (e.g. "Zen", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// `c = alpha * op(a) * op(b) + beta * c` for row-major matrices, where op(a) is m x k and op(b) is k x n.
    ///
    /// Transposes are expressed through CBLAS's flags, never materialised. With `beta` 0, `c` need not be
    /// initialised (BLAS does not read it). A large product is cut as `plan` says (or, given `parts`, into that
    /// many column ranges) and the pieces computed side by side.
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, plan: Plan, parts: Int? = nil) {
        guard m > 0, n > 0 else { return }
        _ = singleThreadedAtStart
        // C[:, columns] = op(A) · op(B)[:, columns], which reads B from column (or, transposed, row) `first`.
        func columns(_ first: Int, _ count: Int) {
            product(transposeA, transposeB, m, count, k, alpha, a, lda, transposeB ? b + first * ldb : b + first, ldb,
                    beta, c + first, ldc, plan.precision)
        }
        if let block = plan.fixedColumnBlock, parts == nil, n > block, m * n * k >= splitMinimum {
            // Fixed cuts: the same calls whatever the thread count; thread t takes pieces t, t + threads, ...
            let pieces = (n + block - 1) / block, threads = min(plan.parts, pieces)
            Parallel.forEach(parts: threads) { thread in
                for piece in stride(from: thread, to: pieces, by: threads) { columns(piece * block, min(block, n - piece * block)) }
            }
            return
        }
        let parts = min(parts ?? plan.parts, n / 64)
        guard parts > 1 && m * n * k >= splitMinimum else {
            product(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, plan.precision)
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
                                _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ precision: ProductPrecision) {
        if precision == .bf16 {
            require(alpha == 1, "BLAS.gemm: bfloat16 products take alpha 1, not \(alpha)")
            BFloat16.gemm(transposeA, transposeB, m, n, k, a, lda, b, ldb, beta, c, ldc)
            return
        }
        var beta = beta
        if beta == 0 && k > 0 && m * n >= largeOutput && zeroesOutputFirst {
            // OpenBLAS's AVX2 and older kernels handle beta 0 with a zeroing pass of their own (sgemm_beta) that is
            // slower than memset, then add the product onto C anyway; memset and beta 1 give the same bits, faster.
            for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
