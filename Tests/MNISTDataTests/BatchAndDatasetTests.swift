// Batches, shards, epoch orders, pixel conversion, and the real MNIST t10k files.
import Foundation
import MNISTData
import Support
import Testing
import TestSupport

@Suite("Batches and shards", .limit(minutes: 5))
struct BatchTests {
    @Test("8,000 samples in batches of 128: 63 batches, the last of 64")
    func chapterBatches() {
        let plan = BatchPlan(sampleCount: 8000, batchSize: 128)
        #expect(plan.batchCount == 63)
        #expect(plan.batch(0) == 0..<128)
        #expect(plan.batch(62) == 7936..<8000)
        #expect((0..<plan.batchCount).map { plan.batch($0).count }.reduce(0, +) == 8000)
        #expect(BatchPlan(sampleCount: 0, batchSize: 5).batchCount == 0)
        #expect(BatchPlan(sampleCount: 7, batchSize: 100).batch(0) == 0..<7)
    }

    @Test("shards cover each batch exactly once, contiguous, sizes within one", arguments: 1...8)
    func shardsPartitionBatches(ranks: Int) {
        for size in [0, 1, 2, 3, 5, 7, 8, 63, 64, 127, 128, 129] {
            let batch = 1000..<(1000 + size)
            let parts = (0..<ranks).map { shard(of: batch, rank: $0, ranks: ranks) }
            // Contiguous and in rank order: each starts where the previous ended.
            #expect(parts.first!.lowerBound == batch.lowerBound)
            #expect(parts.last!.upperBound == batch.upperBound)
            for r in 1..<ranks where ranks > 1 { #expect(parts[r].lowerBound == parts[r - 1].upperBound) }
            let counts = parts.map(\.count)
            #expect(counts.max()! - counts.min()! <= 1, "batch \(size) over \(ranks) ranks: \(counts)")
            #expect(counts.reduce(0, +) == size)
            // Larger shards come first, so a batch smaller than the rank count leaves the last ranks empty.
            #expect(counts == counts.sorted(by: >))
        }
    }

    @Test("seeded epoch orders are permutations, reproducible, and differ between epochs")
    func seededOrders() {
        var a = ShuffleSource.seeded(1)
        var b = ShuffleSource.seeded(1)
        let first = a.order(forEpoch: 0, count: 8000)
        expectIdentical(first, b.order(forEpoch: 0, count: 8000))
        #expect(Set(first).count == 8000 && first.min() == 0 && first.max() == 7999)
        #expect(first != a.order(forEpoch: 1, count: 8000))
        // RandomState([1, 0]).permutation(8000)[:8] printed by numpy 2.4.6.
        #expect(Array(first.prefix(8)) == [7801, 5487, 2009, 3613, 3532, 7932, 7554, 6312])
        // Drawing epoch 5 directly gives what a run reaching epoch 5 draws.
        #expect(a.order(forEpoch: 5, count: 100) == b.order(forEpoch: 5, count: 100))
    }

    @Test("a continuing source advances its generator like numpy's")
    func continuingOrders() {
        var source = ShuffleSource.continuing(RandomState(seed: 0))
        var generator = RandomState(seed: 0)
        #expect(source.order(forEpoch: 0, count: 50) == generator.permutation(50))
        #expect(source.order(forEpoch: 1, count: 50) == generator.permutation(50))
        #expect(source == .continuing(generator))
    }
}

@Suite("Pixel conversion", .limit(minutes: 5))
struct PixelTests {
    @Test("bytes become x/255 or the standardised value, in Float arithmetic like numpy's float32")
    func conversion() throws {
        let pixels: [UInt8] = [0, 1, 128, 255, 10, 20, 30, 40]
        let dataset = try Dataset(name: "t", pixels: pixels, labels: [3, 7], rows: 2, columns: 2)
        let order: [Int32] = [1, 0]
        var images = [Float](repeating: -1, count: 8)
        var labels = [Int32](repeating: -1, count: 2)
        order.withUnsafeBufferPointer { o in
            dataset.fillBatch(order: o, range: 0..<2, scaling: .unit, images: &images, labels: &labels)
        }
        #expect(images == [10, 20, 30, 40, 0, 1, 128, 255].map { Float($0) / 255 })
        #expect(labels == [7, 3])
        order.withUnsafeBufferPointer { o in
            dataset.fillBatch(order: o, range: 1..<2, scaling: .mnistStandard, images: &images, labels: &labels)
        }
        #expect(images[3] == (Float(255) / 255 - Float(0.1307)) / Float(0.3081))
        #expect(abs(images[3] - 2.8215) < 1e-4)
    }
}

@Suite("The real MNIST t10k files", .enabled(if: Fixtures.mnistAvailable), .limit(minutes: 5))
struct RealMNISTTests {
    @Test("10,000 images with the published class counts; load and convert time")
    func t10k() throws {
        let directory = try #require(Fixtures.mnistDirectory)
        let start = Date()
        let split = try DatasetFiles.load(.mnist, directory: directory, split: .chapter)
        let loaded = Date()
        let all = split.train.count + split.test.count
        #expect(all == 10000)
        #expect(split.train.count == 8000 && split.test.count == 2000)
        let test = try Dataset.load(name: "t10k", imagesPath: DatasetFiles.locate(DatasetName.testImages, in: directory)!,
                                    labelsPath: DatasetFiles.locate(DatasetName.testLabels, in: directory)!)
        let classCounts = test.labels.reduce(into: [Int](repeating: 0, count: 10)) { $0[Int($1)] += 1 }
        #expect(classCounts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
        #expect(test.rows == 28 && test.columns == 28)
        // Convert all 10,000 images to Float, a batch at a time, as training does.
        var images = [Float](repeating: 0, count: 128 * 784)
        var labels = [Int32](repeating: 0, count: 128)
        let order = (0..<Int32(10000)).map { $0 }
        let plan = BatchPlan(sampleCount: 10000, batchSize: 128)
        var checksum: Float = 0
        order.withUnsafeBufferPointer { o in
            for b in 0..<plan.batchCount {
                test.fillBatch(order: o, range: plan.batch(b), scaling: .mnistStandard, images: &images, labels: &labels)
                checksum += images[0]
            }
        }
        let converted = Date()
        #expect(checksum.isFinite)
        print("t10k: load + chapter split \(Int(loaded.timeIntervalSince(start) * 1000)) ms, "
              + "convert 10,000 images \(Int(converted.timeIntervalSince(loaded) * 1000)) ms")
        // The chapter split is RandomState(0).permutation(10000): its first training image is row 9394.
        #expect(split.train.labels[0] == test.labels[9394])
        expectIdentical(split.train.pixels[0..<784], test.pixels[(9394 * 784)..<(9395 * 784)])
    }
}
