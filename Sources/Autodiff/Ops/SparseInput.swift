// Products whose left operand is a mostly-zero input batch (81 % of MNIST's pixels are 0): the MLP's first layer
// x · W and its weight gradient xᵀ · g walk x's nonzeros instead of multiplying its zeros.
//
// x is kept twice for the step: by row (CSR), for the forward product, and by column (CSC), for the weight
// gradient. Both kernels work on a panel of 64 output columns at a time, copied contiguous (a row of W or g with
// a 4 KB stride would map every row's panel onto the same few cache sets), and keep the 64 sums in eight AVX
// registers. Each output element is a sum in a fixed order (the nonzeros in increasing index) whatever the
// thread count, so the result does not depend on how the work is split; it does differ from sgemm's order in
// the last bits, like any other summation order.
//
// Shapes: x is M x K with Z nonzeros, W (or g's partner) is K x N, the product and g are M x N.

/// The densest input (nonzeros / elements) that takes the sparse path: below about 1/2, walking nonzeros beats
/// sgemm (measured on Zen 3: 1.2 ms against 2.3 ms for 128 x 784 x 1024 at MNIST's 19 % density, one thread).
let sparseInputDensityLimit = 0.5
/// Output columns per panel: eight 8-wide AVX accumulators.
private let panelWidth = 64

/// x's nonzeros by row and, when asked, by column, in buffers from the tape's arena (or the heap, without a tape).
///
/// `matmul` uses it by itself for an input that needs no gradient; it is public for tests and benchmarks that
/// drive the kernels with a chosen thread count.
public struct SparseInput {
    public let rows: Int       // M
    public let columns: Int    // K
    public let nonzeros: Int   // Z
    /// Int32 indices: rowStart (M + 1), rowColumn (Z), then, if built, columnStart (K + 2), columnRow (Z).
    let indices: TensorStorage
    /// Float values: by row (Z), then, if built, by column (Z).
    let values: TensorStorage
    public let byColumn: Bool

    /// x (M x K, row-major) compressed, or nil when more than `sparseInputDensityLimit` of it is nonzero.
    /// - Parameters:
    ///   - byColumn: also build the column-major copy (for the weight gradient).
    ///   - tape: where the buffers come from (nil: the heap).
    public init?(_ x: UnsafePointer<Float>, rows: Int, columns: Int, byColumn: Bool, tape: Tape?) {
        let nonzeros = countNonzeros(x, rows * columns)
        guard Double(nonzeros) <= sparseInputDensityLimit * Double(rows * columns),
              rows * columns < Int(Int32.max) else { return nil }
        self.rows = rows
        self.columns = columns
        self.nonzeros = nonzeros
        self.byColumn = byColumn
        // Sized by the density limit rather than this batch's count, so that the arena's buffers fit every batch;
        // 8 more for the branch-free fill, which writes up to 7 entries past the last nonzero.
        let capacity = Int(sparseInputDensityLimit * Double(rows * columns)) + 8
        let indexCount = rows + 1 + capacity + (byColumn ? columns + 2 + capacity : 0)
        let valueCount = capacity * (byColumn ? 2 : 1)
        indices = tape?.arena.allocate(indexCount) ?? TensorStorage(capacity: indexCount)
        values = tape?.arena.allocate(valueCount) ?? TensorStorage(capacity: valueCount)
        let value = values.pointer
        withIndices { rowStart, rowColumn, columnStart, columnRow in
            var z = 0
            rowStart[0] = 0
            for i in 0..<rows {
                let row = x + i * columns
                var j = 0
                while j + 8 <= columns {  // eight at a time: most of an image's 8-pixel runs are all zero
                    if load8(row + j) != SIMD8(repeating: 0) {
                        for c in j..<j + 8 {  // without branches: write every entry, keep the nonzero ones
                            rowColumn[z] = Int32(c)
                            value[z] = row[c]
                            z &+= row[c] != 0 ? 1 : 0
                        }
                    }
                    j += 8
                }
                for c in j..<columns where row[c] != 0 { rowColumn[z] = Int32(c); value[z] = row[c]; z += 1 }
                rowStart[i + 1] = Int32(z)
            }
            guard byColumn else { return }
            // Counting sort by column, rows staying in increasing order within a column: count into
            // columnStart[j + 2], prefix-sum so that columnStart[j + 1] is column j's start, then place entries
            // at columnStart[j + 1], which leaves columnStart[j] = start of column j.
            columnStart.update(repeating: 0, count: columns + 2)
            for e in 0..<nonzeros { columnStart[Int(rowColumn[e]) + 2] += 1 }
            for j in 0..<columns { columnStart[j + 2] += columnStart[j + 1] }
            let columnValue = value + nonzeros
            for i in 0..<rows {
                for e in Int(rowStart[i])..<Int(rowStart[i + 1]) {
                    let j = Int(rowColumn[e]) + 1
                    let position = Int(columnStart[j])
                    columnRow[position] = Int32(i)
                    columnValue[position] = value[e]
                    columnStart[j] += 1
                }
            }
        }
    }

    /// Calls `body` with rowStart, rowColumn, columnStart and columnRow (the last two meaningful only when built).
    func withIndices<R>(_ body: (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>,
                                 UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> R) -> R {
        indices.pointer.withMemoryRebound(to: Int32.self, capacity: indices.capacity) { base in
            let rowColumn = base + rows + 1
            let columnStart = rowColumn + nonzeros
            return body(base, rowColumn, columnStart, columnStart + columns + 2)
        }
    }

    /// out (M x N, row-major, ldc) = x · w, where w is K x N with row stride `ldw`.
    /// - Parameter panels: scratch of `forwardScratch(n: N, threads:)` Floats.
    public func times(_ w: UnsafePointer<Float>, n: Int, ldw: Int, into out: UnsafeMutablePointer<Float>, ldc: Int,
                      panels: UnsafeMutablePointer<Float>, threads: Int) {
        withIndices { rowStart, rowColumn, _, _ in
            // Output row i sums the rows of w that row i of x selects.
            sumsOfSelectedRows(of: w, count: columns, stride: ldw, n: n, selection: rowStart, index: rowColumn,
                               value: values.pointer, outputs: rows, into: out, ldc: ldc, accumulate: false,
                               panels: panels, threads: threads)
        }
    }

    /// gradient (K x N, row stride ldc) = xᵀ · g (or += when `accumulate`), where g is M x N with row stride `ldg`.
    /// - Precondition: built with `byColumn`.
    /// - Parameter panels: scratch of `gradientScratch(n: N, threads:)` Floats.
    public func transposedTimes(_ g: UnsafePointer<Float>, n: Int, ldg: Int, into gradient: UnsafeMutablePointer<Float>,
                                ldc: Int, accumulate: Bool, panels: UnsafeMutablePointer<Float>, threads: Int) {
        require(byColumn, "SparseInput.transposedTimes: the column-major copy was not built")
        withIndices { _, _, columnStart, columnRow in
            // Gradient row j sums the rows of g that column j of x selects.
            sumsOfSelectedRows(of: g, count: rows, stride: ldg, n: n, selection: columnStart, index: columnRow,
                               value: values.pointer + nonzeros, outputs: columns, into: gradient, ldc: ldc,
                               accumulate: accumulate, panels: panels, threads: threads)
        }
    }

    /// The shape both kernels share: for each output row r, out[r, :] = Σ value[e] · source[index[e], :] over
    /// e in selection[r]..<selection[r + 1] (or += when `accumulate`), where source has `count` rows of N, `stride`
    /// apart. A block of 64 columns at a time: the block's `count` x 64 panel of source is copied contiguous first.
    private func sumsOfSelectedRows(of source: UnsafePointer<Float>, count: Int, stride: Int, n: Int,
                                    selection: UnsafePointer<Int32>, index: UnsafePointer<Int32>,
                                    value: UnsafePointer<Float>, outputs: Int, into out: UnsafeMutablePointer<Float>,
                                    ldc: Int, accumulate: Bool, panels: UnsafeMutablePointer<Float>, threads: Int) {
        forEachBlock(n: n, threads: threads) { block, slot in
            let panel = panels + slot * count * panelWidth  // count x 64
            let first = block * panelWidth
            let width = min(panelWidth, n - first)
            for row in 0..<count { (panel + row * panelWidth).update(from: source + row * stride + first, count: width) }
            for r in 0..<outputs {
                sumOfScaledRows(panel, index: index, value: value, entries: Int(selection[r])..<Int(selection[r + 1]),
                                width: width, into: out + r * ldc + first, accumulate: accumulate)
            }
        }
    }

    /// Whether the kernels spread their blocks over threads: not when the work is too small to pay for waking one.
    private func parallel(n: Int, threads: Int) -> Bool { threads > 1 && nonzeros * n >= 1 << 18 }

    /// Runs `body(block, slot)` for every 64-column block of N, where `slot` picks the block's scratch panel. On
    /// several threads the blocks are handed out one at a time to whichever thread is free (a thread that wakes
    /// late takes fewer), each with a panel of its own; on one thread they run in order on one panel.
    private func forEachBlock(n: Int, threads: Int, _ body: (Int, Int) -> Void) {
        let blocks = (n + panelWidth - 1) / panelWidth
        if parallel(n: n, threads: threads) {
            Parallel.forEach(parts: blocks) { block in body(block, block) }
        } else {
            for block in 0..<blocks { body(block, 0) }
        }
    }

    /// Scratch Floats `times` needs: a K x 64 panel per block on several threads, one on one.
    public func forwardScratch(n: Int, threads: Int) -> Int { panelSlots(n: n, threads: threads) * columns * panelWidth }
    /// Scratch Floats `transposedTimes` needs: an M x 64 panel per block on several threads, one on one.
    public func gradientScratch(n: Int, threads: Int) -> Int { panelSlots(n: n, threads: threads) * rows * panelWidth }
    private func panelSlots(n: Int, threads: Int) -> Int {
        parallel(n: n, threads: threads) ? (n + panelWidth - 1) / panelWidth : 1
    }
}

/// How many of x[0..<count] are not zero.
private func countNonzeros(_ x: UnsafePointer<Float>, _ count: Int) -> Int {
    var counts = SIMD8<Int32>()
    var i = 0
    while i + 8 <= count {
        counts.replace(with: counts &+ 1, where: load8(x + i) .!= 0)
        i += 8
    }
    var total = Int(counts.wrappedSum())
    while i < count { if x[i] != 0 { total += 1 }; i += 1 }
    return total
}

/// out[0..<width] = Σ over `entries` e of value[e] · panel row index[e] (or += when `accumulate`), the terms added
/// in order; panel rows are `panelWidth` apart.
@inline(__always)
private func sumOfScaledRows(_ panel: UnsafePointer<Float>, index: UnsafePointer<Int32>, value: UnsafePointer<Float>,
                             entries: Range<Int>, width: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
    if width == panelWidth {
        var s0 = SIMD8<Float>(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0
        for e in entries {
            let v = SIMD8<Float>(repeating: value[e])
            let p = panel + Int(index[e]) &* panelWidth
            s0 = s0.addingProduct(v, load8(p)); s1 = s1.addingProduct(v, load8(p + 8))
            s2 = s2.addingProduct(v, load8(p + 16)); s3 = s3.addingProduct(v, load8(p + 24))
            s4 = s4.addingProduct(v, load8(p + 32)); s5 = s5.addingProduct(v, load8(p + 40))
            s6 = s6.addingProduct(v, load8(p + 48)); s7 = s7.addingProduct(v, load8(p + 56))
        }
        if accumulate {
            s0 += load8(out); s1 += load8(out + 8); s2 += load8(out + 16); s3 += load8(out + 24)
            s4 += load8(out + 32); s5 += load8(out + 40); s6 += load8(out + 48); s7 += load8(out + 56)
        }
        store8(s0, out); store8(s1, out + 8); store8(s2, out + 16); store8(s3, out + 24)
        store8(s4, out + 32); store8(s5, out + 40); store8(s6, out + 48); store8(s7, out + 56)
    } else {
        // The last, narrower panel: the same sums, a column at a time.
        for c in 0..<width {
            var sum: Float = 0
            for e in entries { sum = sum.addingProduct(value[e], panel[Int(index[e]) * panelWidth + c]) }
            out[c] = accumulate ? out[c] + sum : sum
        }
    }
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
