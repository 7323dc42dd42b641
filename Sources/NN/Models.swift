// The chapter's two models: the tanh MLP (JAX layout, numpy initialisation) and PyTorch's MNIST CNN.
import Autodiff
import Support

/// One row of a model summary.
public struct LayerSummary: Sendable {
    public let name: String
    public let kind: String
    /// Output shape per sample (the batch dimension is left out).
    public let outputShape: [Int]
    public let parameters: Int
}

/// A classifier of 1 x rows x columns images into 10 classes, with its parameters in a flat store.
public protocol Model: Sendable {
    /// The name used on the command line and in checkpoints ("cnn", "mlp").
    var name: String { get }
    /// A description of the architecture, for the configuration check and checkpoints ("mlp 784-1024-1024-10").
    var architecture: String { get }
    /// Parameter names and shapes, in store order.
    var parameterLayout: [(name: String, shape: [Int])] { get }
    /// Image size the model takes: rows, columns.
    var imageSize: (rows: Int, columns: Int) { get }
    /// Sets the initial parameter values, drawn from `seed`.
    func initialize(_ store: ParameterStore, seed: UInt32)
    /// Log-probabilities (N x 10) for images N x 1 x rows x columns.
    func logProbabilities(_ images: Tensor, _ p: Parameters) -> Tensor
    /// The training loss on `logProbabilities` for `labels`: the summed per-sample loss divided by `normalizer`.
    func loss(logProbabilities: Tensor, labels: [Int32], normalizer: Int) -> Tensor
    /// Each layer, its output shape and parameter count.
    var summary: [LayerSummary] { get }
    /// The first layer's weights as small images, one per filter or unit (at most `limit`), for the pictures.
    func firstLayerWeights(_ store: ParameterStore, limit: Int) -> WeightMaps
    /// The first layer's output maps for a batch of one image, where it has spatial maps (nil for dense layers).
    func firstLayerMaps(_ image: Tensor, _ p: Parameters) -> Tensor?
}

/// Weights shown as images: `maps[i]` is `height` x `width`, row-major.
public struct WeightMaps: Sendable {
    public let title: String
    public let maps: [[Double]]
    public let width: Int
    public let height: Int
}

extension Model {
    /// A zero-filled store with this model's layout.
    /// - Parameter memory: where the values and the gradient live (`ParameterStore.init(_:memory:)`).
    public func makeParameterStore(memory: (values: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)? = nil) -> ParameterStore {
        ParameterStore(parameterLayout, memory: memory)
    }

    /// Total number of parameters.
    public var parameterCount: Int { parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) } }
}

/// The chapter's multilayer perceptron: tanh hidden layers and a log-softmax output, in JAX's layout
/// (x · W + b, W is in x out), trained on the chapter's loss -mean(sum(preds * onehot)).
public struct MLP: Model {
    public let layerSizes: [Int]
    public let imageSize: (rows: Int, columns: Int)

    /// - Precondition: at least an input and an output size, the input matching `rows * columns`.
    public init(layerSizes: [Int] = [784, 1024, 1024, 10], imageSize: (rows: Int, columns: Int) = (28, 28)) {
        require(layerSizes.count >= 2 && layerSizes.allSatisfy { $0 > 0 }, "MLP: layer sizes \(layerSizes) are not valid")
        require(layerSizes.first == imageSize.rows * imageSize.columns && layerSizes.last == 10,
                "MLP: layer sizes \(layerSizes) must start with \(imageSize.rows * imageSize.columns) inputs and end with 10 classes")
        self.layerSizes = layerSizes
        self.imageSize = imageSize
    }

    public var name: String { "mlp" }
    public var architecture: String { "mlp " + layerSizes.map(String.init).joined(separator: "-") }

    public var parameterLayout: [(name: String, shape: [Int])] {
        zip(layerSizes, layerSizes.dropFirst()).enumerated().flatMap { index, sizes in
            [("W\(index + 1)", [sizes.0, sizes.1]), ("b\(index + 1)", [sizes.1])]
        }
    }

    /// The chapter's `init_random_params(0.1, layer_sizes, RandomState(seed))`: for each layer in order,
    /// W = 0.1 * randn(m, n), then b = 0.1 * randn(n), from one generator (Double, rounded to Float).
    public func initialize(_ store: ParameterStore, seed: UInt32 = 0) {
        var generator = RandomState(seed: seed)
        store.withValues { values in
            for entry in store.entries {
                for i in 0..<entry.count { values[entry.offset + i] = Float(0.1 * generator.standardNormal()) }
            }
        }
    }

    /// The chapter's `predict`: tanh(x · W + b) for each hidden layer, then logits minus their logSumExp.
    public func logProbabilities(_ images: Tensor, _ p: Parameters) -> Tensor {
        var activations = flatten(images)
        for layer in 0..<(layerSizes.count - 2) {
            activations = tanh(affine(activations, p[2 * layer], bias: p[2 * layer + 1]))
        }
        let logits = affine(activations, p[p.count - 2], bias: p[p.count - 1])
        return logits - logSumExp(logits, axis: 1, keepingDimension: true)
    }

    public func loss(logProbabilities: Tensor, labels: [Int32], normalizer: Int) -> Tensor {
        oneHotLoss(logProbabilities: logProbabilities, labels: labels, normalizer: normalizer)
    }

    public var summary: [LayerSummary] {
        var rows = [LayerSummary(name: "flatten", kind: "Flatten", outputShape: [layerSizes[0]], parameters: 0)]
        for (index, sizes) in zip(layerSizes, layerSizes.dropFirst()).enumerated() {
            let last = index == layerSizes.count - 2
            rows.append(LayerSummary(name: "layer\(index + 1)", kind: last ? "Dense" : "Dense + tanh",
                                     outputShape: [sizes.1], parameters: sizes.0 * sizes.1 + sizes.1))
        }
        rows.append(LayerSummary(name: "output", kind: "LogSoftmax", outputShape: [layerSizes.last!], parameters: 0))
        return rows
    }

    /// Each of the first hidden units' input weights, as an image of the input's size.
    public func firstLayerWeights(_ store: ParameterStore, limit: Int) -> WeightMaps {
        let weights = store["W1"], hidden = layerSizes[1], units = min(limit, hidden)
        return WeightMaps(title: "First-layer weights of \(units) hidden units (blue negative, red positive)",
                          maps: (0..<units).map { unit in (0..<layerSizes[0]).map { Double(weights[$0 * hidden + unit]) } },
                          width: imageSize.columns, height: imageSize.rows)
    }

    public func firstLayerMaps(_ image: Tensor, _ p: Parameters) -> Tensor? { nil }
}

/// The chapter's convolutional network (pytorch/examples' MNIST `Net` without dropout):
/// conv 1→32 3x3, relu, conv 32→64 3x3, relu, max-pool 2, flatten, fc 9216→128, relu, fc 128→10, log-softmax.
public struct ChapterCNN: Model {
    public let conv1: Conv2D
    public let conv2: Conv2D
    public let fc1: Linear
    public let fc2: Linear
    public let parameterLayout: [(name: String, shape: [Int])]
    public var imageSize: (rows: Int, columns: Int) { (28, 28) }

    public init() {
        var builder = LayerBuilder()
        conv1 = builder.conv2D("conv1", 1, 32, kernel: 3, activation: .relu)
        conv2 = builder.conv2D("conv2", 32, 64, kernel: 3, activation: .relu, maxPool: 2)
        fc1 = builder.linear("fc1", 9216, 128)
        fc2 = builder.linear("fc2", 128, 10)
        parameterLayout = builder.layout
    }

    /// The feature maps' shape after each convolution (before and after its pooling): C, H, W.
    private var convolutionShapes: [(conv: Conv2D, convolved: [Int], pooled: [Int])] {
        var (height, width) = imageSize
        return [conv1, conv2].map { layer in
            let size = layer.convolvedSize(height: height, width: width)
            let pool = layer.maxPool ?? 1
            (height, width) = (size.height / pool, size.width / pool)
            return (layer, [layer.outputChannels, size.height, size.width], [layer.outputChannels, height, width])
        }
    }

    public var name: String { "cnn" }
    public var architecture: String {
        let convolutions = [conv1, conv2].map { "\($0.name)(\($0.inputChannels),\($0.outputChannels),\($0.kernel))" + ($0.maxPool.map { " pool\($0)" } ?? "") }
        let denses = [fc1, fc2].map { "\($0.name)(\($0.inputs),\($0.outputs))" }
        return (["cnn"] + convolutions + denses).joined(separator: " ")
    }

    /// PyTorch's default initialisation: weights and biases uniform in ±1/sqrt(fan_in) (kaiming_uniform with
    /// a = sqrt(5) reduces to that bound), drawn in layout order from `RandomState(seed)`.
    public func initialize(_ store: ParameterStore, seed: UInt32) {
        var generator = RandomState(seed: seed)
        let fanIns = [conv1.fanIn, conv2.fanIn, fc1.fanIn, fc2.fanIn].flatMap { [$0, $0] }  // weight, bias of each layer
        store.withValues { values in
            for (entry, fanIn) in zip(store.entries, fanIns) {
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<entry.count { values[entry.offset + i] = Float(generator.uniform(-bound, bound)) }
            }
        }
    }

    /// relu(conv1) and maxPool(relu(conv2)) run as fused ops (identical results, a fraction of the memory
    /// traffic); the tests spell the same network out op by op and compare.
    public func logProbabilities(_ images: Tensor, _ p: Parameters) -> Tensor {
        var x = conv1(images, p)              // N, 32, 26, 26   conv, relu
        x = conv2(x, p)                       // N, 64, 12, 12   conv, relu, 2x2 max-pool
        x = relu(fc1(flatten(x), p))          // N, 128
        return logSoftmax(fc2(x, p), axis: 1) // N, 10
    }

    public func loss(logProbabilities: Tensor, labels: [Int32], normalizer: Int) -> Tensor {
        nllLoss(logProbabilities: logProbabilities, labels: labels, normalizer: normalizer)
    }

    public var summary: [LayerSummary] {
        var rows: [LayerSummary] = []
        for (layer, convolved, pooled) in convolutionShapes {
            rows.append(LayerSummary(name: layer.name, kind: "Conv2D \(layer.kernel)x\(layer.kernel)" + (layer.activation == .relu ? " + relu" : ""),
                                     outputShape: convolved, parameters: layer.parameterCount))
            if let pool = layer.maxPool {
                rows.append(LayerSummary(name: "pool", kind: "MaxPool2D \(pool)x\(pool)", outputShape: pooled, parameters: 0))
            }
        }
        rows.append(LayerSummary(name: "flatten", kind: "Flatten", outputShape: [fc1.inputs], parameters: 0))
        rows.append(LayerSummary(name: fc1.name, kind: "Linear + relu", outputShape: [fc1.outputs], parameters: fc1.parameterCount))
        rows.append(LayerSummary(name: fc2.name, kind: "Linear", outputShape: [fc2.outputs], parameters: fc2.parameterCount))
        rows.append(LayerSummary(name: "output", kind: "LogSoftmax", outputShape: [fc2.outputs], parameters: 0))
        return rows
    }

    /// conv1's filters, one image each.
    public func firstLayerWeights(_ store: ParameterStore, limit: Int) -> WeightMaps {
        let weights = store["\(conv1.name).weight"].map(Double.init)
        let area = conv1.kernel * conv1.kernel * conv1.inputChannels, filters = min(limit, conv1.outputChannels)
        return WeightMaps(title: "\(conv1.name) filters (\(conv1.kernel)x\(conv1.kernel); blue negative, red positive)",
                          maps: (0..<filters).map { Array(weights[($0 * area)..<(($0 + 1) * area)]) },
                          width: conv1.kernel, height: conv1.kernel * conv1.inputChannels)
    }

    public func firstLayerMaps(_ image: Tensor, _ p: Parameters) -> Tensor? { conv1(image, p) }
}

/// The printed model summary: a table of layers with output shapes and parameter counts, and the total.
public func formatSummary(_ model: Model) -> String {
    var lines = ["Layer      Type                 Output shape       Params"]
    for row in model.summary {
        let shape = "[N, " + row.outputShape.map(String.init).joined(separator: ", ") + "]"
        lines.append(row.name.padding(10) + " " + row.kind.padding(20) + " " + shape.padding(17) + " "
                     + groupedThousands(row.parameters).leftPadding(7))
    }
    lines.append("Total parameters: \(groupedThousands(model.parameterCount))")
    return lines.joined(separator: "\n")
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
