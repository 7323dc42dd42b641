// Elementwise arithmetic with numpy broadcasting, scaling, and sums and means (whole tensor or along an axis).
//
// Broadcasting follows numpy: shapes are aligned from the right and each pair of sizes must be equal or 1 (so a
// bias [O] adds to every row of [N, O], and logits [N, 10] minus logSumExp [N, 1] works as in the chapter). A
// broadcast operand's gradient is the output gradient summed over the dimensions it was repeated along. Equal
// shapes and a suffix-shaped second operand (the common cases) take loops without index arithmetic.
import Support

/// How two shapes broadcast: the output shape and, per operand, the stride of each output dimension (0 where the
/// operand is repeated).
private struct Broadcast {
    enum Kind { case same, suffix, general }
    let shape: [Int]
    let aStrides: [Int]
    let bStrides: [Int]
    let kind: Kind
    /// For `.suffix`: b repeats every `width` elements.
    let width: Int

    init(_ op: String, _ a: [Int], _ b: [Int]) {
        let rank = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a
        let pb = [Int](repeating: 1, count: rank - b.count) + b
        var shape: [Int] = []
        for (x, y) in zip(pa, pb) {
            require(x == y || x == 1 || y == 1,
                         "\(op): shapes \(describe(a)) and \(describe(b)) do not broadcast")
            shape.append(x == 1 ? y : x)
        }
        func strides(_ padded: [Int]) -> [Int] {
            var result = [Int](repeating: 0, count: rank)
            var step = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                result[d] = padded[d] == 1 ? 0 : step
                step *= padded[d]
            }
            return result
        }
        self.shape = shape
        aStrides = strides(pa)
        bStrides = strides(pb)
        width = b.reduce(1, *)
        if a == b {
            kind = .same
        } else if pa == shape && b.count <= a.count && Array(a.suffix(b.count)) == b {
            kind = .suffix
        } else {
            kind = .general
        }
    }

    var count: Int { shape.reduce(1, *) }

    /// Calls `body(output, aIndex, bIndex)` for every output element, in order.
    @inline(__always)
    func forEach(_ body: (Int, Int, Int) -> Void) {
        switch kind {
        case .same:
            for i in 0..<count { body(i, i, i) }
        case .suffix:
            guard width > 0 else { return }
            for row in 0..<(count / width) {
                let base = row * width
                for j in 0..<width { body(base + j, base + j, j) }
            }
        case .general:
            let rank = shape.count
            var index = [Int](repeating: 0, count: rank)
            var ai = 0, bi = 0
            for i in 0..<count {
                body(i, ai, bi)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    ai += aStrides[d]
                    bi += bStrides[d]
                    if index[d] < shape[d] { break }
                    ai -= aStrides[d] * shape[d]
                    bi -= bStrides[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}

/// Adds `value(output, aIndex, bIndex)` into the gradient of one operand of a broadcast op, indexed by that
/// operand's side (`useA`). An operand repeated over some dimensions collects the sum over them.
private func accumulateBroadcast(_ tape: Tape, _ operand: Tensor, _ layout: Broadcast, useA: Bool,
                                 _ value: (Int, Int, Int) -> Float) {
    tape.withGradient(of: operand) { d, acc in
        if layout.kind == .same {
            store(d, count: layout.count, accumulate: acc) { value($0, $0, $0) }
            return
        }
        if layout.kind == .suffix && useA && layout.width > 0 {
            // a has the output's shape: write (or add) each element once, row by row, instead of zeroing first.
            let width = layout.width
            for row in 0..<(layout.count / width) {
                let base = row * width
                store(d + base, count: width, accumulate: acc) { value(base + $0, base + $0, $0) }
            }
            return
        }
        if !acc { d.update(repeating: 0, count: operand.count) }
        if useA {
            layout.forEach { i, ai, bi in d[ai] += value(i, ai, bi) }
        } else {
            layout.forEach { i, ai, bi in d[bi] += value(i, ai, bi) }
        }
    }
}

/// Elementwise sum, with numpy broadcasting.
public func + (a: Tensor, b: Tensor) -> Tensor {
    let layout = Broadcast("+", a.shape, b.shape)
    let out = Tape.output("+", shape: layout.shape, inputs: a, b)
    let x = a.pointer, y = b.pointer, z = out.pointer
    if layout.kind == .suffix && layout.width > 0 {  // a bias added to every row
        addToRows(x, y, rows: layout.count / layout.width, width: layout.width, into: z,
                  threads: Parallel.elementwiseThreads(out.tape))
    } else {
        layout.forEach { i, ai, bi in z[i] = x[ai] + y[bi] }
    }
    out.tape?.record(out) { tape, g in
        accumulateBroadcast(tape, a, layout, useA: true) { i, _, _ in g[i] }
        if layout.kind == .suffix && layout.width > 0 {
            tape.withGradient(of: b) { db, acc in
                sumRows(g, rows: layout.count / layout.width, width: layout.width, into: db, accumulate: acc,
                        threads: Parallel.elementwiseThreads(tape))
            }
        } else {
            accumulateBroadcast(tape, b, layout, useA: false) { i, _, _ in g[i] }
        }
    }
    return out
}

/// z[r, :] = x[r, :] + y for each of `rows` rows of `width`, 16 lanes at a time, the rows shared among the
/// threads of a product.
func addToRows(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, width: Int,
               into z: UnsafeMutablePointer<Float>, threads: Int) {
    let whole = width / 16 * 16
    let parts = Parallel.partCount(of: rows * width, threads: threads)
    Parallel.forEach(parts: parts) { part in
        for row in rows * part / parts..<rows * (part + 1) / parts {
            let xr = x + row * width, zr = z + row * width
            var j = 0
            while j < whole { store(load16(xr + j) + load16(y + j), zr + j); j += 16 }
            while j < width { zr[j] = xr[j] + y[j]; j += 1 }
        }
    }
}

/// d = Σ over rows of g (or d += when `accumulate`), g being `rows` x `width`: a bias's gradient. Each column is
/// summed in row order, starting from 0 (or d), the order of the general broadcast loop, so the bits are the same;
/// 64 columns at a time, in four registers, the columns shared among the threads of a product.
func sumRows(_ g: UnsafePointer<Float>, rows: Int, width: Int, into d: UnsafeMutablePointer<Float>,
             accumulate: Bool, threads: Int) {
    let parts = max(1, min(Parallel.partCount(of: rows * width, threads: threads), width / 64))
    Parallel.forEach(parts: parts) { part in
        sumRows(g, rows: rows, width: width, columns: Parallel.part(part, of: width, parts: parts), into: d,
                accumulate: accumulate)
    }
}

/// `sumRows` for the columns in `columns`.
private func sumRows(_ g: UnsafePointer<Float>, rows: Int, width: Int, columns: Range<Int>,
                     into d: UnsafeMutablePointer<Float>, accumulate: Bool) {
    var j = columns.lowerBound
    while j + 64 <= columns.upperBound {
        var s0 = SIMD16<Float>(), s1 = s0, s2 = s0, s3 = s0
        if accumulate { s0 = load16(d + j); s1 = load16(d + j + 16); s2 = load16(d + j + 32); s3 = load16(d + j + 48) }
        for row in 0..<rows {
            let p = g + row * width + j
            s0 += load16(p); s1 += load16(p + 16); s2 += load16(p + 32); s3 += load16(p + 48)
        }
        store(s0, d + j); store(s1, d + j + 16); store(s2, d + j + 32); store(s3, d + j + 48)
        j += 64
    }
    for column in j..<columns.upperBound {
        var sum: Float = accumulate ? d[column] : 0
        for row in 0..<rows { sum += g[row * width + column] }
        d[column] = sum
    }
}

/// Elementwise difference, with numpy broadcasting.
public func - (a: Tensor, b: Tensor) -> Tensor { a + (-b) }

/// Elementwise negation.
public prefix func - (a: Tensor) -> Tensor { -1 * a }

/// Elementwise product, with numpy broadcasting.
public func * (a: Tensor, b: Tensor) -> Tensor {
    let layout = Broadcast("*", a.shape, b.shape)
    let out = Tape.output("*", shape: layout.shape, inputs: a, b)
    let x = a.pointer, y = b.pointer, z = out.pointer
    layout.forEach { i, ai, bi in z[i] = x[ai] * y[bi] }
    out.tape?.record(out) { tape, g in
        accumulateBroadcast(tape, a, layout, useA: true) { i, _, bi in g[i] * y[bi] }
        accumulateBroadcast(tape, b, layout, useA: false) { i, ai, _ in g[i] * x[ai] }
    }
    return out
}

/// Every element times `scale`.
public func * (scale: Float, a: Tensor) -> Tensor {
    let out = Tape.output("scale", shape: a.shape, inputs: a)
    let x = a.pointer, z = out.pointer
    for i in 0..<a.count { z[i] = scale * x[i] }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in store(da, count: a.count, accumulate: acc) { scale * g[$0] } }
    }
    return out
}

/// Every element times `scale`.
public func * (a: Tensor, scale: Float) -> Tensor { scale * a }

/// Every element divided by `divisor`.
public func / (a: Tensor, divisor: Float) -> Tensor { (1 / divisor) * a }

// MARK: Reductions

/// The sum of all elements, as a scalar (shape `[]`). Accumulated in Double.
public func sum(_ a: Tensor) -> Tensor {
    let out = Tape.output("sum", shape: [], inputs: a)
    let x = a.pointer
    var total = 0.0
    for i in 0..<a.count { total += Double(x[i]) }
    out.pointer.pointee = Float(total)
    out.tape?.record(out) { tape, g in
        let seed = g.pointee
        tape.withGradient(of: a) { da, acc in store(da, count: a.count, accumulate: acc) { _ in seed } }
    }
    return out
}

/// The mean of all elements, as a scalar.
public func mean(_ a: Tensor) -> Tensor {
    require(a.count > 0, "mean: tensor of shape \(describe(a.shape)) is empty")
    return sum(a) / Float(a.count)
}

/// Splits `shape` around `axis` into (outer, length, inner) so that index = (o * length + i) * inner + j.
func axisLayout(_ op: String, _ shape: [Int], axis: Int) -> (outer: Int, length: Int, inner: Int, axis: Int) {
    let resolved = axis < 0 ? axis + shape.count : axis
    require(resolved >= 0 && resolved < shape.count, "\(op): axis \(axis) is out of range for shape \(describe(shape))")
    return (shape[..<resolved].reduce(1, *), shape[resolved], shape[(resolved + 1)...].reduce(1, *), resolved)
}

/// The shape left after reducing `axis` (kept as size 1 when `keepingDimension`).
func reducedShape(_ shape: [Int], axis: Int, keepingDimension: Bool) -> [Int] {
    var result = shape
    if keepingDimension { result[axis] = 1 } else { result.remove(at: axis) }
    return result
}

/// Sums along `axis` (negative counts from the end), removing it unless `keepingDimension`.
public func sum(_ a: Tensor, axis: Int, keepingDimension: Bool = false) -> Tensor {
    let (outer, length, inner, axis) = axisLayout("sum(axis:)", a.shape, axis: axis)
    let out = Tape.output("sum(axis:)", shape: reducedShape(a.shape, axis: axis, keepingDimension: keepingDimension),
                          inputs: a)
    let x = a.pointer, z = out.pointer
    for o in 0..<outer {
        for j in 0..<inner {
            var total: Float = 0
            for i in 0..<length { total += x[(o * length + i) * inner + j] }
            z[o * inner + j] = total
        }
    }
    out.tape?.record(out) { tape, g in
        tape.withGradient(of: a) { da, acc in
            store(da, count: a.count, accumulate: acc) { index in
                g[(index / (length * inner)) * inner + index % inner]
            }
        }
    }
    return out
}

/// Means along `axis`, removing it unless `keepingDimension`.
public func mean(_ a: Tensor, axis: Int, keepingDimension: Bool = false) -> Tensor {
    let (_, length, _, _) = axisLayout("mean(axis:)", a.shape, axis: axis)
    require(length > 0, "mean(axis:): axis \(axis) of shape \(describe(a.shape)) is empty")
    return sum(a, axis: axis, keepingDimension: keepingDimension) / Float(length)
}
