// The chapter models' parameters under the names and layouts PyTorch gives them, for files other programs read and
// write: the CNN's are pytorch/examples' MNIST `Net` (conv1.weight, ..., fc2.bias); the MLP's are `layerK.weight`
// (out x in, as torch.nn.Linear stores it) and `layerK.bias` for its K-th dense layer.
import Autodiff
import NN
import Support

public enum PortableWeights {
    /// Each parameter of the model under its portable name and layout.
    public static func tensors(of model: Model, store: ParameterStore) -> [NamedTensor] {
        layout(of: model).map { entry in
            let values = store[entry.storeName]
            guard entry.transposed else { return NamedTensor(name: entry.name, shape: entry.shape, values: values) }
            let (rows, columns) = (entry.shape[0], entry.shape[1])  // out x in; the store holds in x out
            var transposed = [Float](repeating: 0, count: values.count)
            for i in 0..<columns { for o in 0..<rows { transposed[o * columns + i] = values[i * rows + o] } }
            return NamedTensor(name: entry.name, shape: entry.shape, values: transposed)
        }
    }

    /// Writes the tensors into the store, after checking that they are exactly the model's: every name present
    /// with its shape, none other, every value finite.
    public static func load(_ tensors: [NamedTensor], into store: ParameterStore, model: Model, file: String) throws(FileError) {
        func wrong(_ problem: String) -> FileError { FileError(file: file, problem: problem) }
        let expected = layout(of: model)
        let names = expected.map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
        for tensor in tensors where !expected.contains(where: { $0.name == tensor.name }) {
            throw wrong("tensor \(tensor.name) is not a parameter of the \(model.architecture) (its tensors: \(names))")
        }
        var values = store.flatValues
        for entry in expected {
            guard let tensor = tensors.first(where: { $0.name == entry.name }) else {
                throw wrong("tensor \(entry.name) is missing (the \(model.architecture) has \(names))")
            }
            guard tensor.shape == entry.shape else {
                throw wrong("tensor \(entry.name) has shape \(tensor.shape), but the \(model.architecture)'s is \(entry.shape)")
            }
            guard tensor.values.allSatisfy(\.isFinite) else {
                throw wrong("tensor \(entry.name) holds a value that is not finite")
            }
            let target = store.entry(entry.storeName)
            if entry.transposed {
                let (rows, columns) = (entry.shape[0], entry.shape[1])
                for o in 0..<rows { for i in 0..<columns { values[target.offset + i * rows + o] = tensor.values[o * columns + i] } }
            } else {
                for i in 0..<tensor.values.count { values[target.offset + i] = tensor.values[i] }
            }
        }
        store.flatValues = values
    }

    /// The model whose parameters the tensors are: the chapter's CNN when they name conv1.weight, an MLP (of the
    /// layer sizes their shapes give, on 28x28 images) when they name layer1.weight. `load` then checks them all.
    public static func model(for tensors: [NamedTensor], file: String) throws(FileError) -> Model {
        if tensors.contains(where: { $0.name == "conv1.weight" }) { return ChapterCNN() }
        var sizes: [Int] = []
        for layer in 1... {
            guard let weight = tensors.first(where: { $0.name == "layer\(layer).weight" }) else { break }
            guard weight.shape.count == 2, weight.shape.allSatisfy({ $0 > 0 }), sizes.isEmpty || sizes.last == weight.shape[1] else {
                throw FileError(file: file, problem: "tensor layer\(layer).weight has shape \(weight.shape); an MLP's layer\(layer).weight is "
                                    + "outputs x \(sizes.last.map(String.init) ?? "inputs")")
            }
            if sizes.isEmpty { sizes.append(weight.shape[1]) }
            sizes.append(weight.shape[0])
        }
        guard !sizes.isEmpty else {
            throw FileError(file: file, problem: "holds neither the chapter CNN's tensors (conv1.weight, conv1.bias, conv2.weight, "
                                + "conv2.bias, fc1.weight, fc1.bias, fc2.weight, fc2.bias) nor an MLP's (layer1.weight, layer1.bias, ...)")
        }
        guard sizes.first == 784, sizes.last == 10 else {
            throw FileError(file: file, problem: "its MLP maps \(sizes.first!) inputs to \(sizes.last!) outputs; mnist-dist's MLPs map "
                                + "784 pixels (28x28) to 10 classes")
        }
        return MLP(layerSizes: sizes)
    }

    /// Each portable tensor: its name and shape, the store entry it comes from, and whether the store holds it
    /// transposed (the MLP's weights are in x out there).
    static func layout(of model: Model) -> [(name: String, shape: [Int], storeName: String, transposed: Bool)] {
        guard let mlp = model as? MLP else { return model.parameterLayout.map { ($0.name, $0.shape, $0.name, false) } }
        return zip(mlp.layerSizes, mlp.layerSizes.dropFirst()).enumerated().flatMap { index, sizes in
            [("layer\(index + 1).weight", [sizes.1, sizes.0], "W\(index + 1)", true),
             ("layer\(index + 1).bias", [sizes.1], "b\(index + 1)", false)]
        }
    }
}
