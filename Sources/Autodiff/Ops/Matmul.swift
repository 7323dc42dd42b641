// Matrix products through BLAS sgemm, and the fully connected layer built on them.
//
// Transposed operands use sgemm's transpose flags; nothing is ever transposed in memory, forward or backward.
import Support

/// `op(a) · op(b)` for 2-D tensors, where op transposes when asked: op(a) is m x k, op(b) is k x n.
///
/// For C = op(A)·op(B) the pullbacks are dA = dC·op(B)ᵀ (or its transpose) and dB = op(A)ᵀ·dC (or its
/// transpose), each one sgemm with flags chosen so that no operand is copied.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    product(a, b, transposeA: transposeA, transposeB: transposeB, bias: nil)
}

/// `matmul(a, b) + bias`, with `bias` (n values) added to every row, as one op: the same bits as the two, but the
/// product's pullback reads the output's gradient itself, where the sum's pullback copied it into the product's
/// gradient (a pass over the batch's activations per layer), and the sum's output is not stored.
public func affine(_ a: Tensor, _ b: Tensor, transposeB: Bool = false, bias: Tensor) -> Tensor {
    product(a, b, transposeA: false, transposeB: transposeB, bias: bias)
}

/// `matmul`, and with `bias`, `affine`.
private func product(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, bias: Tensor?) -> Tensor {
    require(a.rank == 2 && b.rank == 2, "matmul: needs 2-D tensors, got \(describe(a.shape)) and \(describe(b.shape))")
    let m = transposeA ? a.shape[1] : a.shape[0]
    let k = transposeA ? a.shape[0] : a.shape[1]
    let kb = transposeB ? b.shape[1] : b.shape[0]
    let n = transposeB ? b.shape[0] : b.shape[1]
    require(k == kb, "matmul: inner sizes differ: \(describe(a.shape))\(transposeA ? "ᵀ" : "") · "
                    + "\(describe(b.shape))\(transposeB ? "ᵀ" : "") (\(k) vs \(kb))")
    if let bias {
        require(bias.count == n && bias.rank == 1, "affine: a bias of shape \(describe(bias.shape)) for \(n) columns")
    }
    let out = Tape.output(bias == nil ? "matmul" : "affine", shape: [m, n], inputList: bias.map { [a, b, $0] } ?? [a, b])
    let lda = a.shape[1], ldb = b.shape[1]
    if !transposeA && !transposeB && !a.requiresGradient,
       let sparse = SparseInput(a.pointer, rows: m, columns: k, byColumn: out.requiresGradient && b.requiresGradient,
                                tape: out.tape) {
        sparseMatmul(sparse, b, bias, out)
        return out
    }
    let plan = out.tape?.plan ?? .serial
    BLAS.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
              a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: out.pointer, ldc: n, plan: plan)
    if let bias { addToRows(out.pointer, bias.pointer, rows: m, width: n, into: out.pointer, threads: plan.parts) }
    out.tape?.record(out) { tape, g in  // g: m x n
        if let bias { biasGradient(tape, bias, g, rows: m) }
        tape.withGradient(of: a) { da, acc in
            if !transposeA {  // dA (m x k) = g · op(B)ᵀ
                BLAS.gemm(transposeA: false, transposeB: !transposeB, m: m, n: k, k: n,
                          a: g, lda: n, b: b.pointer, ldb: ldb, beta: acc ? 1 : 0, c: da, ldc: k, plan: plan)
            } else {          // dA (k x m) = op(B) · gᵀ
                BLAS.gemm(transposeA: transposeB, transposeB: true, m: k, n: m, k: n,
                          a: b.pointer, lda: ldb, b: g, ldb: n, beta: acc ? 1 : 0, c: da, ldc: m, plan: plan)
            }
        }
        tape.withGradient(of: b) { db, acc in
            if !transposeB {  // dB (k x n) = op(A)ᵀ · g
                BLAS.gemm(transposeA: !transposeA, transposeB: false, m: k, n: n, k: m,
                          a: a.pointer, lda: lda, b: g, ldb: n, beta: acc ? 1 : 0, c: db, ldc: n, plan: plan)
            } else {          // dB (n x k) = gᵀ · op(A)
                BLAS.gemm(transposeA: true, transposeB: transposeA, m: n, n: k, k: m,
                          a: g, lda: n, b: a.pointer, ldb: lda, beta: acc ? 1 : 0, c: db, ldc: k, plan: plan)
            }
        }
    }
    return out
}

/// `matmul(a, b)` for an input `a` (no gradient) that mostly holds one background value: the product and b's
/// gradient walk the entries that differ from it (see SparseInput.swift), on as many threads as a dense product
/// would use.
private func sparseMatmul(_ a: SparseInput, _ b: Tensor, _ bias: Tensor?, _ out: Tensor) {
    let n = b.shape[1]
    let threads = (out.tape?.plan ?? .serial).threadsPerProduct
    func scratch(_ count: Int) -> TensorStorage { out.tape?.arena.allocate(count) ?? TensorStorage(capacity: count) }
    let forwardPanels = scratch(a.forwardScratch(n: n, threads: threads))
    a.times(b.pointer, n: n, ldw: n, into: out.pointer, ldc: n, panels: forwardPanels.pointer, threads: threads)
    if let bias {
        addToRows(out.pointer, bias.pointer, rows: a.rows, width: n, into: out.pointer,
                  threads: Parallel.elementwiseThreads(out.tape))
    }
    let gradientPanels = a.byColumn ? scratch(a.gradientScratch(n: n, threads: threads)) : nil
    out.tape?.record(out) { tape, g in  // g: m x n
        if let bias { biasGradient(tape, bias, g, rows: a.rows) }
        guard let gradientPanels else { return }  // b needs no gradient
        tape.withGradient(of: b) { db, acc in  // dB (k x n) = aᵀ · g
            a.transposedTimes(g, n: n, ldg: n, into: db, ldc: n, accumulate: acc, panels: gradientPanels.pointer,
                              threads: threads)
        }
    }
}

/// The gradient of a bias added to every row of an m x n output: the column sums of g (n values).
private func biasGradient(_ tape: Tape, _ bias: Tensor, _ g: UnsafePointer<Float>, rows: Int) {
    tape.withGradient(of: bias) { db, acc in
        sumRows(g, rows: rows, width: bias.count, into: db, accumulate: acc, threads: tape.plan.parts)
    }
}

/// A fully connected layer in PyTorch's layout: `input · weightᵀ + bias`.
/// - Parameters:
///   - input: N x in.
///   - weight: out x in.
///   - bias: out.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
    affine(input, weight, transposeB: true, bias: bias)
}
