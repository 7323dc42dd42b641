// reshape and flatten: views that share storage and gradient slot with their input, so they cost nothing either way.
import Support

/// The same elements under a new shape; one dimension may be -1 (inferred).
public func reshape(_ a: Tensor, _ shape: [Int]) -> Tensor {
    var resolved = shape
    if let hole = shape.firstIndex(of: -1) {
        let known = shape.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
        require(known > 0 && a.count % known == 0,
                     "reshape: cannot view \(describe(a.shape)) as \(describe(shape))")
        resolved[hole] = a.count / known
    }
    require(resolved.allSatisfy { $0 >= 0 } && resolved.reduce(1, *) == a.count,
                 "reshape: cannot view \(describe(a.shape)) (\(a.count) elements) as \(describe(shape))")
    // Same storage, same gradient slot: a gradient written for the view is the input's gradient.
    return Tensor(shape: resolved, storage: a.storage, offset: a.offset, tape: a.tape, node: a.node,
                  generation: a.generation)
}

/// Collapses every dimension from `startAxis` on into one (`torch.flatten(x, 1)`: N, C, H, W -> N, C*H*W).
public func flatten(_ a: Tensor, startAxis: Int = 1) -> Tensor {
    require(startAxis >= 0 && startAxis < max(a.rank, 1), "flatten: axis \(startAxis) for shape \(describe(a.shape))")
    return reshape(a, Array(a.shape[..<startAxis]) + [a.shape[startAxis...].reduce(1, *)])
}
