// libFuzzer target: the checkpoint decoder, compiled together with Sources/Deflate and
// Sources/Checkpoints/CheckpointFormat.swift by scripts/fuzz.sh. Any input must decode or throw a FileError.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(bytes)
    // Also with the CRC trailer recomputed: random mutations nearly always break the CRC, and the parser behind it
    // (header lines, lengths, generator state) must withstand anything a valid CRC lets through.
    if size >= 4 {
        var patched = Array(bytes.dropLast(4))
        let crc = Zlib.crc32(patched)
        patched += (0..<4).map { UInt8(truncatingIfNeeded: crc >> UInt32(8 * $0)) }
        check(patched)
    }
    return 0
}

private func check(_ bytes: [UInt8]) {
    if let checkpoint = try? Checkpoint.decode(bytes, name: "fuzz") {
        // A checkpoint that verifies must survive a round trip (compared as bytes: a NaN is not == itself).
        let encoded = checkpoint.encoded()
        let again = try? Checkpoint.decode(encoded, name: "again")
        precondition(again?.encoded() == encoded, "round trip differs")
    }
}
