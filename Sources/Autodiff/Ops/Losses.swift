// Classification losses on log-probabilities: PyTorch's nll_loss and the chapter's one-hot loss.
import Support

/// Negative log-likelihood: -Σᵢ logProbabilities[i, labels[i]] / normalizer.
///
/// - Parameters:
///   - logProbabilities: N x classes (the output of `logSoftmax(_:axis: 1)`).
///   - labels: N class indices.
///   - normalizer: what the sum is divided by; by default N, giving PyTorch's mean reduction. A rank holding a
///     shard of a global batch passes the global batch size, so that the ranks' losses (and gradients) sum to the
///     mean over the whole batch.
public func nllLoss(logProbabilities: Tensor, labels: [Int32], normalizer: Int? = nil) -> Tensor {
    require(logProbabilities.rank == 2 && logProbabilities.shape[0] == labels.count,
                 "nllLoss: log-probabilities \(describe(logProbabilities.shape)) and \(labels.count) labels disagree")
    let rows = labels.count, classes = logProbabilities.shape[1]
    let divisor = Float(normalizer ?? max(rows, 1))
    let out = Tape.output("nllLoss", shape: [], inputs: logProbabilities)
    let x = logProbabilities.pointer
    var total: Float = 0
    for (row, label) in labels.enumerated() {
        require(label >= 0 && Int(label) < classes, "nllLoss: label \(label) outside 0..<\(classes)")
        total -= x[row * classes + Int(label)]
    }
    out.pointer.pointee = total / divisor
    out.tape?.record(out) { tape, g in
        let scale = -g.pointee / divisor
        tape.withGradient(of: logProbabilities) { dx, acc in
            if !acc { dx.update(repeating: 0, count: rows * classes) }
            for (row, label) in labels.enumerated() { dx[row * classes + Int(label)] += scale }
        }
    }
    return out
}

/// One-hot rows: N x classes, 1 at each label's column (a constant on `like`'s tape, if it has one).
public func oneHot(_ labels: [Int32], classes: Int, like: Tensor? = nil) -> Tensor {
    let fill = { (buffer: UnsafeMutableBufferPointer<Float>) in
        buffer.update(repeating: 0)
        for (row, label) in labels.enumerated() {
            require(label >= 0 && Int(label) < classes, "oneHot: label \(label) outside 0..<\(classes)")
            buffer[row * classes + Int(label)] = 1
        }
    }
    if let tape = like?.tape { return tape.constant([labels.count, classes], fill: fill) }
    var scalars = [Float](repeating: 0, count: labels.count * classes)
    scalars.withUnsafeMutableBufferPointer { fill($0) }
    return Tensor(shape: [labels.count, classes], scalars: scalars)
}

/// The chapter's loss, `-mean(sum(preds * targets, axis=1))` with one-hot targets, built from primitive ops.
/// - Parameter normalizer: the divisor (default N), as for `nllLoss`.
public func oneHotLoss(logProbabilities: Tensor, labels: [Int32], normalizer: Int? = nil) -> Tensor {
    let targets = oneHot(labels, classes: logProbabilities.shape[1], like: logProbabilities)
    let perRow = sum(logProbabilities * targets, axis: 1)
    return -sum(perRow) / Float(normalizer ?? max(labels.count, 1))
}
