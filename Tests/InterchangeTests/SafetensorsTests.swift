// The safetensors reader and writer, and the chapter models under PyTorch's names, in process.
import Autodiff
import Foundation
import Interchange
import MNISTData
import NN
import Testing
import TestSupport
import Support

@Suite("safetensors and portable weights", .limit(minutes: 3))
struct SafetensorsTests {
    static let tensors = [NamedTensor(name: "b", shape: [3], values: [1, -2, 0.5]),
                          NamedTensor(name: "a", shape: [2, 2], values: [.pi, 0, -0, 1e-38]),
                          NamedTensor(name: "empty", shape: [0, 4], values: [])]

    @Test("written and read back: names, shapes, values bit for bit, metadata; the header is JSON padded to 8 bytes")
    func roundTrip() throws {
        let file = SafetensorsFile(tensors: Self.tensors, metadata: ["model": "cnn", "note": "ünïcode"])
        let bytes = file.encoded()
        let headerSize = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) })
        #expect((8 + headerSize) % 8 == 0)
        #expect(bytes.count == 8 + headerSize + 4 * 7)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerSize)])) as? [String: Any]
        #expect((header?["a"] as? [String: Any])?["dtype"] as? String == "F32")
        let read = try SafetensorsFile.decode(bytes, file: "x")
        #expect(read.metadata == file.metadata)
        for tensor in Self.tensors {
            let back = try #require(read[tensor.name])
            #expect(back.shape == tensor.shape)
            #expect(back.values.map(\.bitPattern) == tensor.values.map(\.bitPattern))
        }
    }

    /// The file's bytes with its header replaced by `header` (data unchanged).
    static func withHeader(_ header: String, data: [UInt8] = [0, 0, 128, 63]) -> [UInt8] {
        let json = Array(header.utf8)
        return (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) } + json + data
    }

    @Test("damaged files are refused with what is wrong", arguments: [
        (withHeader(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#), "lie outside the file's 4 bytes"),
        (withHeader(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#), "shape [2] needs 8 bytes, its range holds 4"),
        (withHeader(#"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#), "tensor x is BF16"),
        (withHeader(#"{"x":{"dtype":"F32","shape":[1]}}"#), "needs dtype, shape and data_offsets"),
        (withHeader(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#), "overlap"),
        (withHeader(#"{"__metadata__":{"a":1}}"#), "__metadata__ must map strings to strings"),
        (withHeader(#"[1, 2]"#), "not a JSON object"),
        (Array([255, 255, 255, 255, 0, 0, 0, 0, 123]), "the header claims 4294967295 bytes"),
        (Array([1, 2, 3]), "too short"),
    ] as [([UInt8], String)])
    func damaged(bytes: [UInt8], says: String) {
        #expect(throws: FileError.self) { try SafetensorsFile.decode(bytes, file: "f") }
        do { _ = try SafetensorsFile.decode(bytes, file: "f") } catch {
            #expect(error.description.hasPrefix("f: ") && error.description.contains(says), "\(error)")
            #expect(error.kind == .malformed)
        }
    }

    @Test("the MLP's weights leave transposed (out x in, as torch.nn.Linear) and come back bit for bit; the model is recognised from the names")
    func mlpNames() throws {
        let mlp = MLP(layerSizes: [784, 30, 20, 10])
        let store = mlp.makeParameterStore()
        mlp.initialize(store, seed: 4)
        let tensors = PortableWeights.tensors(of: mlp, store: store)
        #expect(tensors.map(\.name) == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias", "layer3.weight", "layer3.bias"])
        #expect(tensors[0].shape == [30, 784] && tensors[2].shape == [20, 30])
        let w1 = store["W1"]  // 784 x 30: input i, unit o at i * 30 + o
        #expect(tensors[0].values[5 * 784 + 17] == w1[17 * 30 + 5])
        let model = try PortableWeights.model(for: tensors, file: "f")
        #expect(model.architecture == mlp.architecture)
        let back = model.makeParameterStore()
        try PortableWeights.load(tensors, into: back, model: model, file: "f")
        expectIdentical(back.flatValues, store.flatValues, "MLP through portable names")
    }

    @Test("the CNN's names are PyTorch's Net's and its tensors are the store's")
    func cnnNames() throws {
        let cnn = ChapterCNN()
        let store = cnn.makeParameterStore()
        cnn.initialize(store, seed: 2)
        let tensors = PortableWeights.tensors(of: cnn, store: store)
        #expect(tensors.map(\.name) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        #expect(tensors.map(\.shape) == [[32, 1, 3, 3], [32], [64, 32, 3, 3], [64], [128, 9216], [128], [10, 128], [10]])
        expectIdentical(tensors.flatMap(\.values), store.flatValues, "CNN tensors")
    }

    @Test("an MLP whose shapes do not chain, or that is not 784 to 10, is refused")
    func mlpShapes() {
        let chain = [NamedTensor(name: "layer1.weight", shape: [30, 784], values: []), NamedTensor(name: "layer2.weight", shape: [10, 31], values: [])]
        #expect(throws: FileError.self) { _ = try PortableWeights.model(for: chain, file: "f") }
        let wide = [NamedTensor(name: "layer1.weight", shape: [10, 100], values: [])]
        do { _ = try PortableWeights.model(for: wide, file: "f"); Issue.record("accepted 100 inputs") } catch {
            #expect(error.description.contains("maps 100 inputs to 10 outputs"))
        }
    }
}
