// TensorBoard's record framing, against the published CRC-32C check values (RFC 3720, appendix B.4). Reading whole
// event files back with TensorBoard's own reader is EndToEndTests/FormatReaderTests.
import Testing
import TestSupport
import TensorBoard

@Suite("TensorBoard records", .limit(minutes: 5))
struct EventFileTests {
    @Test("CRC-32C check values: \"123456789\", 32 zero bytes, 32 bytes 0xff, 0...31")
    func checkValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xe306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8a91_36aa)
        #expect(CRC32C.checksum([UInt8](repeating: 0xff, count: 32)) == 0x62a8_ab43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46dd_794e)
    }

    @Test("a record is length, masked CRC of the length, payload, masked CRC of the payload")
    func framing() {
        let payload = Array("event".utf8)
        let record = EventRecord.frame(payload)
        #expect(record.count == 8 + 4 + payload.count + 4)
        #expect(Array(record[0..<8]) == [5, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = record[8..<12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        #expect(lengthCRC == EventRecord.maskedCRC(Array(record[0..<8])))
        #expect(Array(record[12..<17]) == payload)
        let crc = CRC32C.checksum(payload)
        let masked = ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
        #expect(record[17..<21].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } == masked)
    }
}
