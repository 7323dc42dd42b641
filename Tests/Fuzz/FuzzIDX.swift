// libFuzzer target: the IDX reader (raw and gzip), compiled together with Sources/Deflate and Sources/MNISTData by scripts/fuzz.sh.
// Any input must end in a value or a FileError: no crash, no hang, no allocation larger than the input justifies.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for kind in [IDXKind.images, .labels] {
        if let array = try? IDX.read(from: MemorySource(bytes), size: size, name: "fuzz", kind: kind) {
            // What reads cleanly must be consistent with its header.
            precondition(array.bytes.count == array.dimensions.reduce(1, *), "IDX payload disagrees with its header")
        }
    }
    return 0
}
