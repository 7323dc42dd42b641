// Layers: named groups of parameters in a model's flat store, called like functions on a batch.
import Autodiff

/// A model's parameters for one step, bound to the step's tape, in the store's layout order.
public typealias Parameters = [Tensor]

/// A fully connected layer in PyTorch's layout: y = x · Wᵀ + b, W is out x in.
public struct Linear: Sendable {
    public let name: String
    public let inputs: Int
    public let outputs: Int
    /// Index of the weight in the parameter list; the bias follows it.
    package let index: Int

    /// Parameters this layer adds to a store: weight (out x in), bias (out).
    var layout: [(name: String, shape: [Int])] { [("\(name).weight", [outputs, inputs]), ("\(name).bias", [outputs])] }

    /// - Parameter x: N x inputs. Returns N x outputs.
    public func callAsFunction(_ x: Tensor, _ p: Parameters) -> Tensor {
        linear(x, weight: p[index], bias: p[index + 1])
    }

    /// Inputs per output (PyTorch's fan_in, which sets its default initialisation's bound).
    public var fanIn: Int { inputs }
    public var parameterCount: Int { outputs * inputs + outputs }
}

/// A 2-D convolution layer with bias: O x C x KH x KW weights, stride 1, no padding unless asked; optionally with
/// a relu and a max-pool fused into it (see `conv2D`).
public struct Conv2D: Sendable {
    public let name: String
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Padding
    public let activation: Activation
    public let maxPool: Int?
    package let index: Int

    var layout: [(name: String, shape: [Int])] {
        [("\(name).weight", [outputChannels, inputChannels, kernel, kernel]), ("\(name).bias", [outputChannels])]
    }

    /// - Parameter x: N x C x H x W. Returns N x O x OH x OW (divided by the pool size, if pooling).
    public func callAsFunction(_ x: Tensor, _ p: Parameters) -> Tensor {
        conv2D(x, weight: p[index], bias: p[index + 1], stride: stride, padding: padding, activation: activation,
               maxPool: maxPool)
    }

    /// Inputs per output: channels times the kernel's area.
    public var fanIn: Int { inputChannels * kernel * kernel }
    public var parameterCount: Int { outputChannels * fanIn + outputChannels }

    /// Output size for an input of `height` x `width`, before pooling.
    public func convolvedSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch padding {
        case .valid: ((height - kernel) / stride + 1, (width - kernel) / stride + 1)
        case .same: ((height + stride - 1) / stride, (width + stride - 1) / stride)
        case .explicit(let rows, let columns): ((height + 2 * rows - kernel) / stride + 1, (width + 2 * columns - kernel) / stride + 1)
        }
    }
}

/// Hands out consecutive parameter indices as a model declares its layers.
struct LayerBuilder {
    private(set) var layout: [(name: String, shape: [Int])] = []

    mutating func linear(_ name: String, _ inputs: Int, _ outputs: Int) -> Linear {
        let layer = Linear(name: name, inputs: inputs, outputs: outputs, index: layout.count)
        layout += layer.layout
        return layer
    }

    mutating func conv2D(_ name: String, _ inputChannels: Int, _ outputChannels: Int, kernel: Int, stride: Int = 1,
                         padding: Padding = .valid, activation: Activation = .identity, maxPool: Int? = nil) -> Conv2D {
        let layer = Conv2D(name: name, inputChannels: inputChannels, outputChannels: outputChannels, kernel: kernel,
                           stride: stride, padding: padding, activation: activation, maxPool: maxPool, index: layout.count)
        layout += layer.layout
        return layer
    }
}
