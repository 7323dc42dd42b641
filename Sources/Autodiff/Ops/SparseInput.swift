// Products whose left operand is an input batch that mostly holds one value (81 % of MNIST's pixels are 0, which
// standardisation turns into -0.4242): the MLP's first layer x · W and its weight gradient xᵀ · g walk the entries
// that differ from that background value b instead of multiplying all of them. With x = b + s, s sparse:
//   x · W  = s · W  + b · (1ᵀ W)     (every output row starts from b times W's column sums)
//   xᵀ · g = sᵀ · g + b · 1 (1ᵀ g)   (every gradient row starts from b times g's column sums)
//
// x is kept by row (CSR) and, for a step that needs W's gradient, by column (CSC). Every kernel works on 64 output
// columns at a time. The gathers (x · W without the CSC, and xᵀ · g) copy that block of W or g into a contiguous
// panel (a row with a 4 KB stride would map every row's block onto the same few cache sets) and keep an output
// row's 64 sums in eight AVX registers while they add the panel rows its entries select. With the CSC and at most
// 128 rows, x · W scatters instead: the M x 64 output block stays contiguous in the first-level cache, and each
// row of W, read where it lies, is added into the output rows that select it (fewer cycles than the gather and its
// copy). Either way each output element is a sum in a
// fixed order (the entries in increasing index) whatever the thread count or the walk, so the result does not
// depend on how the work is split; it does differ from sgemm's order in the last bits, like any other summation
// order.
//
// Shapes: x is M x K with Z entries other than b, W is K x N, the product and g are M x N.
import Support

/// The densest input (entries other than the background / elements) that takes the sparse path: below about 1/2,
/// walking nonzeros beats sgemm (at MNIST's 19 % density, in about half its time).
let sparseInputDensityLimit = 0.5
/// Output columns per panel: eight 8-wide AVX accumulators.
private let panelWidth = 64
/// The most rows of x for which `times` walks x by column: an output block of 128 rows x 64 columns is 32 KB.
private let scatterRowLimit = 128

/// x's entries other than its background value, minus that value, by row and, when asked, by column, in buffers
/// from the tape's arena (or the heap, without a tape).
///
/// `matmul` uses it by itself for an input that needs no gradient; tests drive the kernels with a chosen thread
/// count, so its API is open to the package.
package struct SparseInput {
    package let rows: Int       // M
    package let columns: Int    // K
    package let nonzeros: Int   // Z, the entries other than the background
    /// The value most of x holds: 0 when at least half of x is 0, otherwise x's first entry (an image's corner).
    package let background: Float
    /// Int32 indices: rowStart (M + 1), rowColumn (Z), then, if built, columnStart (K + 2), columnRow (Z).
    let indices: TensorStorage
    /// Float values: by row (Z), then, if built, by column (Z).
    let values: TensorStorage
    package let byColumn: Bool

    /// x (M x K, row-major) compressed, or nil when more than `sparseInputDensityLimit` of it differs from the
    /// background (0, or else x's first entry).
    /// - Parameters:
    ///   - byColumn: also build the column-major copy (for the weight gradient).
    ///   - tape: where the buffers come from (nil: the heap).
    package init?(_ x: UnsafePointer<Float>, rows: Int, columns: Int, byColumn: Bool, tape: Tape?) {
        let count = rows * columns
        guard count < Int(Int32.max) else { return nil }
        let limit = Int(sparseInputDensityLimit * Double(count))
        var background: Float = 0
        var nonzeros = countDiffering(x, count, from: 0)
        if nonzeros > limit && count > 0 && x[0] != 0 && x[0].isFinite {
            background = x[0]
            nonzeros = countDiffering(x, count, from: background)
        }
        guard nonzeros <= limit else { return nil }
        self.background = background
        self.rows = rows
        self.columns = columns
        self.nonzeros = nonzeros
        self.byColumn = byColumn
        // Sized by the density limit rather than this batch's count, so that the arena's buffers fit every batch;
        // 8 more for the branch-free fill, which writes up to 7 entries past the last nonzero.
        let capacity = limit + 8
        let indexCount = rows + 1 + capacity + (byColumn ? columns + 2 + capacity : 0)
        let valueCount = capacity * (byColumn ? 2 : 1)
        indices = tape?.arena.allocate(indexCount) ?? TensorStorage(capacity: indexCount)
        values = tape?.arena.allocate(valueCount) ?? TensorStorage(capacity: valueCount)
        let value = values.pointer
        let backgroundPair = UInt64(background.bitPattern) &* 0x1_0000_0001
        withIndices { rowStart, rowColumn, columnStart, columnRow in
            var z = 0
            rowStart[0] = 0
            for i in 0..<rows {
                let row = x + i * columns
                var j = 0
                while j + 8 <= columns {  // eight at a time: most of an image's 8-pixel runs are all background
                    if differsInBits(row + j, from: backgroundPair) {
                        for c in j..<j + 8 {  // without branches: write every entry, keep the ones that differ
                            rowColumn[z] = Int32(c)
                            value[z] = row[c] - background
                            z &+= row[c] != background ? 1 : 0
                        }
                    }
                    j += 8
                }
                for c in j..<columns where row[c] != background {
                    rowColumn[z] = Int32(c)
                    value[z] = row[c] - background
                    z += 1
                }
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
    package func times(_ w: UnsafePointer<Float>, n: Int, ldw: Int, into out: UnsafeMutablePointer<Float>, ldc: Int,
                      panels: UnsafeMutablePointer<Float>, threads: Int) {
        if scatters {
            withIndices { _, _, columnStart, columnRow in
                scatteredRows(of: w, stride: ldw, n: n, columnStart: columnStart, columnRow: columnRow,
                              value: values.pointer + nonzeros, into: out, ldc: ldc, tiles: panels, threads: threads)
            }
            return
        }
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
    package func transposedTimes(_ g: UnsafePointer<Float>, n: Int, ldg: Int, into gradient: UnsafeMutablePointer<Float>,
                                ldc: Int, accumulate: Bool, panels: UnsafeMutablePointer<Float>, threads: Int) {
        require(byColumn, "SparseInput.transposedTimes: the column-major copy was not built")
        withIndices { _, _, columnStart, columnRow in
            // Gradient row j sums the rows of g that column j of x selects.
            sumsOfSelectedRows(of: g, count: rows, stride: ldg, n: n, selection: columnStart, index: columnRow,
                               value: values.pointer + nonzeros, outputs: columns, into: gradient, ldc: ldc,
                               accumulate: accumulate, panels: panels, threads: threads)
        }
    }

    /// The shape both kernels share: for each output row r, out[r, :] = background · Σ source's rows +
    /// Σ value[e] · source[index[e], :] over e in selection[r]..<selection[r + 1] (or += when `accumulate`), where
    /// source has `count` rows of N, `stride` apart. A block of 64 columns at a time: the block's `count` x 64 panel
    /// of source is copied contiguous first, with background times its column sums as one more row.
    private func sumsOfSelectedRows(of source: UnsafePointer<Float>, count: Int, stride: Int, n: Int,
                                    selection: UnsafePointer<Int32>, index: UnsafePointer<Int32>,
                                    value: UnsafePointer<Float>, outputs: Int, into out: UnsafeMutablePointer<Float>,
                                    ldc: Int, accumulate: Bool, panels: UnsafeMutablePointer<Float>, threads: Int) {
        forEachBlock(n: n, threads: threads) { block, slot in
            let panel = panels + slot * (count + 1) * panelWidth  // count x 64, then the start row
            let first = block * panelWidth
            let width = min(panelWidth, n - first)
            for row in 0..<count { (panel + row * panelWidth).update(from: source + row * stride + first, count: width) }
            let start = panel + count * panelWidth
            startRow(background, panel, rows: count, stride: panelWidth, width: width, into: start)
            for r in 0..<outputs {
                sumOfScaledRows(panel, start: start, index: index, value: value,
                                entries: Int(selection[r])..<Int(selection[r + 1]), width: width,
                                into: out + r * ldc + first, accumulate: accumulate)
            }
        }
    }

    /// Whether `times` walks x by column (`scatteredRows`): when the column-major copy is built and the output
    /// block of every row fits the first-level cache.
    private var scatters: Bool { byColumn && rows <= scatterRowLimit }

    /// `times` by column: for each 64-column block, the M x 64 output block is kept contiguous (from the start row),
    /// and each row k of w, loaded once into four registers from where it lies, is added, scaled, into the output
    /// rows that column k of x selects. Each output element gets the same fused multiply-adds in the same order
    /// (increasing k) as `sumsOfSelectedRows` gives it, so the same bits; but w is read in place (once, and once more
    /// for the start row when the background is not 0), where the gather copies each block into a panel and reads a
    /// panel row from the second-level cache per entry.
    private func scatteredRows(of w: UnsafePointer<Float>, stride: Int, n: Int, columnStart: UnsafePointer<Int32>,
                               columnRow: UnsafePointer<Int32>, value: UnsafePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, ldc: Int, tiles: UnsafeMutablePointer<Float>,
                               threads: Int) {
        forEachBlock(n: n, threads: threads) { block, slot in
            let tile = tiles + slot * (rows + 1) * panelWidth  // rows x 64, then the start row
            let first = block * panelWidth
            let width = min(panelWidth, n - first)
            let start = tile + rows * panelWidth
            startRow(background, w + first, rows: columns, stride: stride, width: width, into: start)
            for r in 0..<rows { (tile + r * panelWidth).update(from: start, count: panelWidth) }
            if width == panelWidth {
                // Row k + 1 of w (the next one any entry selects) is loaded before row k's entries are added: its
                // rows lie a page apart, where no hardware prefetcher follows, and its load then overlaps the adds.
                func nonEmpty(from k: Int) -> Int {
                    var k = k
                    while k < columns && columnStart[k] == columnStart[k + 1] { k += 1 }
                    return k
                }
                func load(_ k: Int) -> WideRow { WideRow(w + k * stride + first) }
                var k = nonEmpty(from: 0)
                var row = k < columns ? load(k) : WideRow()
                while k < columns {
                    let next = nonEmpty(from: k + 1), current = row
                    if next < columns { row = load(next) }
                    current.addScaled(to: tile, rows: columnRow, value: value,
                                      entries: Int(columnStart[k])..<Int(columnStart[k + 1]))
                    k = next
                }
            } else {
                for k in 0..<columns {
                    let entries = Int(columnStart[k])..<Int(columnStart[k + 1])
                    let row = w + k * stride + first
                    for e in entries {
                        let o = tile + Int(columnRow[e]) * panelWidth
                        for c in 0..<width { o[c] = o[c].addingProduct(value[e], row[c]) }
                    }
                }
            }
            for r in 0..<rows { (out + r * ldc + first).update(from: tile + r * panelWidth, count: width) }
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
            Parallel.forEach(parts: blocks, threads: threads) { block in body(block, block) }
        } else {
            for block in 0..<blocks { body(block, 0) }
        }
    }

    /// Scratch Floats `times` needs: a (K + 1) x 64 panel per block when several threads may share the blocks, one
    /// otherwise; an (M + 1) x 64 output block instead when it scatters. It depends on the shape, `threads` and
    /// whether the CSC is built, not on this batch's entries, so an arena's buffer from a full batch fits every step.
    package func forwardScratch(n: Int, threads: Int) -> Int {
        panelSlots(n: n, threads: threads) * ((scatters ? rows : columns) + 1) * panelWidth
    }
    /// Scratch Floats `transposedTimes` needs: an (M + 1) x 64 panel per block on several threads, one on one.
    package func gradientScratch(n: Int, threads: Int) -> Int {
        panelSlots(n: n, threads: threads) * (rows + 1) * panelWidth
    }
    private func panelSlots(n: Int, threads: Int) -> Int { threads > 1 ? (n + panelWidth - 1) / panelWidth : 1 }
}

/// start[0..<64] = background · (the sum of the `rows` rows of `width` columns, `stride` apart, from `panel`), in
/// row order; zero for background 0.
@inline(__always)
private func startRow(_ background: Float, _ panel: UnsafePointer<Float>, rows: Int, stride: Int, width: Int,
                      into start: UnsafeMutablePointer<Float>) {
    start.update(repeating: 0, count: panelWidth)
    guard background != 0 else { return }
    if width == panelWidth {
        var s0 = SIMD16<Float>(), s1 = s0, s2 = s0, s3 = s0
        for row in 0..<rows {
            let p = panel + row * stride
            s0 += load16(p); s1 += load16(p + 16); s2 += load16(p + 32); s3 += load16(p + 48)
        }
        let b = SIMD16<Float>(repeating: background)
        store(b * s0, start); store(b * s1, start + 16); store(b * s2, start + 32); store(b * s3, start + 48)
    } else {
        for c in 0..<width {
            var sum: Float = 0
            for row in 0..<rows { sum += panel[row * stride + c] }
            start[c] = background * sum
        }
    }
}

/// Whether any of p[0..<8] has other bits than the background, given as two copies of its bits (`pair`): four
/// 64-bit compares. (SIMD8's != and .!= both compiled to a loop over the lanes through the stack here, which made
/// this test 40 % of building the CSR.) Conservative: -0 against a background of 0 counts as differing, and the
/// caller then compares each value.
@inline(__always)
private func differsInBits(_ p: UnsafePointer<Float>, from pair: UInt64) -> Bool {
    let raw = UnsafeRawPointer(p)
    let a = raw.loadUnaligned(as: UInt64.self) ^ pair, b = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ pair
    let c = raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self) ^ pair
    let d = raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self) ^ pair
    return (a | b | c | d) != 0
}

/// How many of x[0..<count] differ from `value`.
private func countDiffering(_ x: UnsafePointer<Float>, _ count: Int, from value: Float) -> Int {
    // A true lane of the comparison's mask is -1: subtracting the mask counts (SIMD's `replace(with:where:)` does
    // not vectorise here).
    let background = SIMD16<Float>(repeating: value)
    var counts = SIMD16<Int32>()
    var i = 0
    while i + 16 <= count {
        counts &-= unsafeBitCast(load16(x + i) .!= background, to: SIMD16<Int32>.self)
        i += 16
    }
    var total = Int(counts.wrappedSum())
    while i < count { if x[i] != value { total += 1 }; i += 1 }
    return total
}

/// out[0..<width] = start + Σ over `entries` e of value[e] · panel row index[e] (or += when `accumulate`), the
/// terms added in order; panel rows are `panelWidth` apart.
@inline(__always)
private func sumOfScaledRows(_ panel: UnsafePointer<Float>, start: UnsafePointer<Float>, index: UnsafePointer<Int32>,
                             value: UnsafePointer<Float>, entries: Range<Int>, width: Int,
                             into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
    if width == panelWidth {
        // Four registers of 16 on AVX-512 (eight of 8 on AVX2): the panel row's 64 columns.
        var s0 = load16(start), s1 = load16(start + 16), s2 = load16(start + 32), s3 = load16(start + 48)
        for e in entries {
            let v = SIMD16<Float>(repeating: value[e])
            let p = panel + Int(index[e]) &* panelWidth
            s0 = s0.addingProduct(v, load16(p)); s1 = s1.addingProduct(v, load16(p + 16))
            s2 = s2.addingProduct(v, load16(p + 32)); s3 = s3.addingProduct(v, load16(p + 48))
        }
        if accumulate {
            s0 += load16(out); s1 += load16(out + 16); s2 += load16(out + 32); s3 += load16(out + 48)
        }
        store(s0, out); store(s1, out + 16); store(s2, out + 32); store(s3, out + 48)
    } else {
        // The last, narrower panel: the same sums, a column at a time.
        for c in 0..<width {
            var sum = start[c]
            for e in entries { sum = sum.addingProduct(value[e], panel[Int(index[e]) * panelWidth + c]) }
            out[c] = accumulate ? out[c] + sum : sum
        }
    }
}

/// 64 columns of a row of w, in four registers of 16 (eight of 8 on AVX2).
private struct WideRow {
    var w0 = SIMD16<Float>(), w1 = SIMD16<Float>(), w2 = SIMD16<Float>(), w3 = SIMD16<Float>()
    init() {}
    @inline(__always) init(_ p: UnsafePointer<Float>) {
        (w0, w1, w2, w3) = (load16(p), load16(p + 16), load16(p + 32), load16(p + 48))
    }

    /// tile row index[e] += value[e] · self, for the `entries` e in order (tile rows are `panelWidth` apart): a row
    /// of w added into the output rows that its column of x selects.
    @inline(__always)
    func addScaled(to tile: UnsafeMutablePointer<Float>, rows index: UnsafePointer<Int32>, value: UnsafePointer<Float>,
                   entries: Range<Int>) {
        for e in entries {
            let v = SIMD16<Float>(repeating: value[e])
            let o = tile + Int(index[e]) &* panelWidth
            store(load16(o).addingProduct(v, w0), o); store(load16(o + 16).addingProduct(v, w1), o + 16)
            store(load16(o + 32).addingProduct(v, w2), o + 32); store(load16(o + 48).addingProduct(v, w3), o + 48)
        }
    }
}
