// ONNX models of the chapter's networks, written by hand as protocol buffers (onnx.proto's field numbers, IR version
// 8, opset 13): the few message types a feed-forward graph needs are short to write, and generating code from
// onnx.proto would add swift-protobuf and its plugin to the build for them.
//
// The graph takes pixels scaled to 0-1, N x 1 x 28 x 28 (N dynamic), light digits on a dark background as in MNIST;
// the normalisation the model was trained with is its first node, and it answers log-probabilities, N x 10.
import Autodiff
import MNISTData
import NN
import Support

public enum ONNXExport {
    /// The opset the graphs use: every op they need (Conv, Relu, MaxPool, Flatten, Gemm, Tanh, LogSoftmax, Sub, Div)
    /// has had its present form since 13.
    public static let opset = 13
    /// The ONNX IR version that opset 13 belongs with (onnx 1.8 and later read it).
    public static let irVersion = 7

    /// What an exported file says about its model beside the graph.
    public struct About {
        /// What the model is and what it was trained on (the doc_string).
        public let description: String
        /// Key-value pairs the model carries (`metadata_props`).
        public let metadata: [(String, String)]
        public let producerVersion: String
        public init(description: String, metadata: [(String, String)], producerVersion: String) {
            (self.description, self.metadata, self.producerVersion) = (description, metadata, producerVersion)
        }
    }

    /// The model's bytes (an ONNX ModelProto).
    /// - Parameters:
    ///   - weights: the parameters under their portable names (`PortableWeights.tensors`).
    ///   - scaling: the pixel scaling the model was trained with.
    ///   - about: what the file says about the model: its doc_string, `metadata_props` and producer version.
    public static func model(_ model: Model, weights: [NamedTensor], scaling: PixelScaling, about: About) -> [UInt8] {
        let (description, metadata, producerVersion) = (about.description, about.metadata, about.producerVersion)
        var graph = Graph(weights: weights)
        var x = "pixels"
        if let (mean, std) = scaling.standardization {
            graph.constant("normalization.mean", mean)
            graph.constant("normalization.std", std)
            x = graph.node("Sub", [x, "normalization.mean"], "centred")
            x = graph.node("Div", [x, "normalization.std"], "normalized")
        }
        if let cnn = model as? ChapterCNN {
            for layer in [cnn.conv1, cnn.conv2] {
                x = graph.node("Conv", [x, "\(layer.name).weight", "\(layer.name).bias"], layer.name,
                               attributes: [.ints("kernel_shape", [layer.kernel, layer.kernel]),
                                            .ints("strides", [layer.stride, layer.stride]), padding(layer.padding)])
                if layer.activation == .relu { x = graph.node("Relu", [x], "\(layer.name).relu") }
                if let pool = layer.maxPool {
                    x = graph.node("MaxPool", [x], "\(layer.name).pool",
                                   attributes: [.ints("kernel_shape", [pool, pool]), .ints("strides", [pool, pool])])
                }
            }
            x = graph.node("Flatten", [x], "flatten", attributes: [.int("axis", 1)])
            x = graph.node("Gemm", [x, "fc1.weight", "fc1.bias"], "fc1", attributes: [.int("transB", 1)])
            x = graph.node("Relu", [x], "fc1.relu")
            x = graph.node("Gemm", [x, "fc2.weight", "fc2.bias"], "fc2", attributes: [.int("transB", 1)])
        } else if let mlp = model as? MLP {
            x = graph.node("Flatten", [x], "flatten", attributes: [.int("axis", 1)])
            let layers = mlp.layerSizes.count - 1
            for layer in 1...layers {
                x = graph.node("Gemm", [x, "layer\(layer).weight", "layer\(layer).bias"], "layer\(layer)", attributes: [.int("transB", 1)])
                if layer < layers { x = graph.node("Tanh", [x], "layer\(layer).tanh") }
            }
        }
        _ = graph.node("LogSoftmax", [x], "log_softmax", output: "log_probabilities", attributes: [.int("axis", 1)])

        let (rows, columns) = model.imageSize
        var body = ProtobufMessage()
        for node in graph.nodes { body.message(1, node) }
        body.string(2, "mnist-dist \(model.name)")
        for tensor in graph.initializers { body.message(5, tensor) }
        body.string(10, description)
        body.message(11, valueInfo("pixels", dimensions: [.symbol("N"), .size(1), .size(rows), .size(columns)],
                                   doc: "pixels scaled to 0-1 (byte / 255), light digit on dark background as in MNIST"))
        body.message(12, valueInfo("log_probabilities", dimensions: [.symbol("N"), .size(10)],
                                   doc: "natural-log probabilities of the digits 0-9"))

        var file = ProtobufMessage()
        file.int(1, irVersion)
        file.string(2, "mnist-dist")
        file.string(3, producerVersion)
        file.string(6, description)
        file.message(7, body)
        var opsetImport = ProtobufMessage()
        opsetImport.string(1, "")
        opsetImport.int(2, opset)
        file.message(8, opsetImport)
        for (key, value) in metadata {
            var entry = ProtobufMessage()
            entry.string(1, key)
            entry.string(2, value)
            file.message(14, entry)
        }
        return file.bytes
    }

    /// Conv's padding: `pads` (top, left, bottom, right), or SAME_UPPER, whose odd row and column go last as ours do.
    static func padding(_ padding: Padding) -> Attribute {
        switch padding {
        case .valid: .ints("pads", [0, 0, 0, 0])
        case .explicit(let rows, let columns): .ints("pads", [rows, columns, rows, columns])
        case .same: .string("auto_pad", "SAME_UPPER")
        }
    }

    /// A node attribute (AttributeProto): one integer, a list of them, or a string.
    enum Attribute {
        case int(String, Int)
        case ints(String, [Int])
        case string(String, String)
    }

    enum Dimension { case size(Int), symbol(String) }

    static func valueInfo(_ name: String, dimensions: [Dimension], doc: String) -> ProtobufMessage {
        var shape = ProtobufMessage()
        for dimension in dimensions {
            var entry = ProtobufMessage()
            switch dimension {
            case .size(let size): entry.int(1, size)
            case .symbol(let symbol): entry.string(2, symbol)
            }
            shape.message(1, entry)
        }
        var tensorType = ProtobufMessage()
        tensorType.int(1, 1)  // FLOAT
        tensorType.message(2, shape)
        var type = ProtobufMessage()
        type.message(1, tensorType)
        var info = ProtobufMessage()
        info.string(1, name)
        info.message(2, type)
        info.string(3, doc)
        return info
    }

    /// Nodes and initializers as they are added.
    struct Graph {
        var nodes: [ProtobufMessage] = []
        var initializers: [ProtobufMessage] = []

        init(weights: [NamedTensor]) {
            for tensor in weights { initializers.append(Graph.tensor(tensor.name, shape: tensor.shape, values: tensor.values)) }
        }

        static func tensor(_ name: String, shape: [Int], values: [Float]) -> ProtobufMessage {
            var tensor = ProtobufMessage()
            for size in shape { tensor.int(1, size) }
            tensor.int(2, 1)  // FLOAT
            tensor.string(8, name)
            tensor.bytes(9, values.withUnsafeBytes { Array($0) })  // raw_data: little-endian float32
            return tensor
        }

        mutating func constant(_ name: String, _ value: Float) {
            initializers.append(Graph.tensor(name, shape: [], values: [value]))
        }

        /// Adds a node of `op` reading `inputs`; returns its output's name (`output`, or the node's name).
        mutating func node(_ op: String, _ inputs: [String], _ name: String, output: String? = nil, attributes: [Attribute] = []) -> String {
            var node = ProtobufMessage()
            for input in inputs { node.string(1, input) }
            node.string(2, output ?? name)
            node.string(3, name)
            node.string(4, op)
            for attribute in attributes {
                var entry = ProtobufMessage()
                switch attribute {
                case .int(let name, let value):
                    entry.string(1, name)
                    entry.int(3, value)
                    entry.int(20, 2)  // INT
                case .ints(let name, let values):
                    entry.string(1, name)
                    for value in values { entry.int(8, value) }
                    entry.int(20, 7)  // INTS
                case .string(let name, let value):
                    entry.string(1, name)
                    entry.string(4, value)
                    entry.int(20, 3)  // STRING
                }
                node.message(5, entry)
            }
            nodes.append(node)
            return output ?? name
        }
    }
}
