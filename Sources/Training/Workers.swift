// A rank's share of each step, split over worker threads (or, for a model made of a few large GEMMs, run by one
// worker whose products are split over the threads).
//
// Each worker takes a contiguous part of the rank's shard, runs forward and backward on a tape of its own with
// single-threaded BLAS, and leaves its gradient in a buffer of its own; the buffers are then summed into the
// store's gradient. This keeps both cores busy through the whole step — im2col, relu and pooling included — where
// OpenBLAS's own threads parallelise only inside each sgemm call and spin between calls.
import Autodiff
import Reporting
import Dispatch
import Distributed
import Foundation
import MNISTData
import NN
import Support

/// What one step's forward and backward measured, summed over the workers.
struct WorkerTotals {
    /// Σ per-sample loss over the samples this rank computed.
    var lossSum = 0.0
    /// Correct predictions among them.
    var correct = 0
    var samples = 0
    /// Wall time of the forward and backward phases (the slowest worker's).
    var forwardSeconds = 0.0
    var backwardSeconds = 0.0

    /// Adds another part's loss, correct predictions and samples.
    mutating func add(_ other: WorkerTotals) {
        lossSum += other.lossSum
        correct += other.correct
        samples += other.samples
    }
}

/// Samples of a dataset in an order: position i is sample `order[i]`.
struct OrderedSamples {
    let dataset: Dataset
    let order: [Int32]
}

/// This rank's place among the ranks, for the share of a batch it computes.
struct RankPlace {
    let rank: Int
    let ranks: Int
}

/// One forward and backward pass of a worker: which positions, the loss's divisor, where the gradient goes, and the
/// backward hooks.
private struct Pass {
    let range: Range<Int>
    let normalizer: Int
    let destination: TensorStorage
    let hooks: (((Int) -> Void)?, (() -> Void)?)
}

/// Runs a model on parts of a batch in parallel threads, each with its own tape and gradient buffer. What never
/// changes in a run (the model, its parameters, the pixel scaling, the thread plan) is given once, here.
final class Workers: @unchecked Sendable {
    // @unchecked Sendable: each worker thread touches only its own index of every array below, and the main thread
    // reads them only after the pool's loop has returned.
    let model: Model
    let store: ParameterStore
    let scaling: PixelScaling
    let count: Int
    private let trainTapes: [Tape]
    private let evaluationTapes: [Tape]
    /// Gradient buffers of workers 1..<count (worker 0 writes into the store's own buffer).
    private let gradientBuffers: [TensorStorage]
    private var labels: [[Int32]]
    private var results: [WorkerTotals]
    /// Each worker's gradient of the last step, worker 0's in the store's own buffer: the parts a `GradientReducer`
    /// sums (made once: the buffers never move).
    let gradientParts: [UnsafeMutableBufferPointer<Float>]
    /// Micro-batch gradient buffers (the first is the store's own), grown to the most micro-batches a step has given
    /// this rank, and pointers to them.
    private var microStorage: [TensorStorage] = []
    /// Where each worker records its data, forward and backward phases (--trace), on track 1 + worker.
    var trace: TraceRecorder?
    private var microParts: [UnsafeMutableBufferPointer<Float>] = []
    /// How the reducer wants the parts: cut into micro-batches or not, and written where (`GradientReducer.layout`).
    let layout: PartLayout

    /// - Parameters:
    ///   - threads: worker threads, each computing a part of the shard, and how each worker's products use threads
    ///     (split among more threads, or one call each).
    ///   - layout: the reducer's; with slots, worker w's part (or the j-th micro-batch's) is written into slot w (j).
    ///     Worker 0 writes into the store's gradient buffer, which is then the first slot.
    init(model: Model, store: ParameterStore, scaling: PixelScaling, threads: (count: Int, plan: BLAS.Plan),
         layout: PartLayout = PartLayout()) {
        let (threads, plan) = threads
        require(threads >= 1, "Workers: \(threads) threads")
        require(layout.slots.isEmpty || layout.slots[0] == store.gradientBuffer.pointer,
                "Workers: the first slot must be the store's gradient buffer")
        require(layout.slots.isEmpty || layout.microBatches != nil || layout.slots.count >= threads,
                "Workers: \(layout.slots.count) slots for \(threads) workers")
        self.layout = layout
        self.model = model
        self.store = store
        self.scaling = scaling
        count = threads
        trainTapes = (0..<threads).map { _ in Tape(plan: plan) }
        evaluationTapes = (0..<threads).map { _ in Tape(recording: false, plan: plan) }
        let slots = layout.microBatches == nil ? layout.slots : []
        gradientBuffers = (1..<max(threads, 1)).map {
            $0 < slots.count ? TensorStorage(borrowing: slots[$0], capacity: store.count) : TensorStorage(zeros: store.count)
        }
        labels = Array(repeating: [], count: threads)
        results = Array(repeating: WorkerTotals(), count: threads)
        gradientParts = ([store.gradientBuffer] + gradientBuffers).map { UnsafeMutableBufferPointer(start: $0.pointer, count: store.count) }
    }

    /// Runs `body(worker)` for every worker, in parallel when there are several.
    private func parallel(_ body: @Sendable (Int) -> Void) {
        ThreadPool.shared.run(parts: count, body)
    }

    /// The gradient of Σ loss / `batch.count` over this rank's share of `batch` (positions in `order`), cut as the
    /// reducer needs it: with `layout.microBatches`, one part per micro-batch of this rank (each computed as a unit of its
    /// own, so its bits do not depend on who computes it), else one part per worker, of this rank's contiguous shard.
    /// - Parameter hooks: passed to the tape's backward (with micro-batches, to the last one's), one worker only:
    ///   they run on the calling thread, which may then start and progress all-reduces.
    /// - Returns: the totals, and the parts for `GradientReducer.reduce` (the first is the store's gradient buffer).
    func gradient(of samples: OrderedSamples, batch: Range<Int>, place: RankPlace,
                  hooks: BackwardHooks? = nil) -> (WorkerTotals, ArraySlice<UnsafeMutableBufferPointer<Float>>) {
        if let microBatches = layout.microBatches {
            let mine = shard(of: 0..<microBatches.count(of: batch), rank: place.rank, ranks: place.ranks)
            return (gradient(of: samples, microBatches: mine, of: batch, plan: microBatches, hooks: hooks),
                    microParts[0..<max(1, mine.count)])
        }
        let totals = gradient(of: samples, range: shard(of: batch, rank: place.rank, ranks: place.ranks), normalizer: batch.count,
                              hooks: hooks)
        return (totals, gradientParts[...])
    }

    /// Forward and backward over positions `range` of `order`: afterwards each worker's part of the gradient of
    /// Σ loss / `normalizer` over those samples (zero for an empty part) is in `gradientParts`.
    func gradient(of samples: OrderedSamples, range: Range<Int>, normalizer: Int, hooks: BackwardHooks? = nil) -> WorkerTotals {
        require(count == 1 || hooks == nil, "Workers.gradient: backward hooks need a single worker")
        let callbacks = UncheckedSendable((hooks?.parameterReady, hooks?.progress))
        samples.order.withUnsafeBufferPointer { orderBuffer in
            let order = UncheckedSendable(orderBuffer)
            parallel { worker in
                let part = shard(of: range, rank: worker, ranks: count)
                let destination = worker == 0 ? store.gradientBuffer : gradientBuffers[worker - 1]
                guard !part.isEmpty else {
                    results[worker] = WorkerTotals()
                    destination.pointer.update(repeating: 0, count: store.count)
                    everyParameterReady(callbacks.value.0)
                    return
                }
                results[worker] = backpropagate(samples.dataset, order: order.value, worker: worker,
                                                Pass(range: part, normalizer: normalizer, destination: destination,
                                                     hooks: callbacks.value))
            }
        }
        return totalOverWorkers()
    }

    /// Forward and backward of micro-batches `indices` of `batch` (positions in `order`), each as a unit of its
    /// own: afterwards the j-th one's gradient of Σ loss / `batch.count` is in `microParts[j]` (or `microParts[0]`
    /// is zero, for none). Worker w computes a contiguous run of them, one after another.
    /// - Parameter hooks: given the parts, then passed to the last micro-batch's backward (one worker only); with no
    ///   micro-batch, every parameter is ready at once.
    func gradient(of samples: OrderedSamples, microBatches indices: Range<Int>, of batch: Range<Int>, plan: MicroBatches,
                  hooks: BackwardHooks? = nil) -> WorkerTotals {
        require(count == 1 || hooks == nil, "Workers.gradient: backward hooks need a single worker")
        while microStorage.count < max(1, indices.count) {  // grows in the first steps only
            let j = microStorage.count
            let storage = j == 0 ? store.gradientBuffer
                : j < layout.slots.count ? TensorStorage(borrowing: layout.slots[j], capacity: store.count) : TensorStorage(zeros: store.count)
            microStorage.append(storage)
            microParts.append(UnsafeMutableBufferPointer(start: storage.pointer, count: store.count))
        }
        hooks?.microBatchParts?(microParts[0..<max(1, indices.count)])
        if indices.isEmpty {
            microParts[0].update(repeating: 0)
            everyParameterReady(hooks?.parameterReady)
        }
        let callbacks = UncheckedSendable((hooks?.parameterReady, hooks?.progress))
        samples.order.withUnsafeBufferPointer { orderBuffer in
            let order = UncheckedSendable(orderBuffer)
            parallel { worker in
                results[worker] = WorkerTotals()
                for j in shard(of: 0..<indices.count, rank: worker, ranks: count) {
                    let last = j == indices.count - 1
                    let pass = Pass(range: plan.microBatch(indices.lowerBound + j, of: batch), normalizer: batch.count,
                                    destination: microStorage[j], hooks: last ? callbacks.value : (nil, nil))
                    let one = backpropagate(samples.dataset, order: order.value, worker: worker, pass)
                    results[worker].add(one)
                    results[worker].forwardSeconds += one.forwardSeconds
                    results[worker].backwardSeconds += one.backwardSeconds
                }
            }
        }
        return totalOverWorkers()
    }

    /// For a rank or worker with no samples, whose zero gradient is final at once: every parameter ready, in the
    /// order backward would make them ready (last first). In another order, a reducer that starts a bucket's
    /// all-reduce when its last parameter is ready would issue its collectives in an order the other ranks do not.
    private func everyParameterReady(_ parameterReady: ((Int) -> Void)?) {
        guard let parameterReady else { return }
        for parameter in store.entries.indices.reversed() { parameterReady(parameter) }
    }

    /// Forward and backward of `pass.range` (positions in `order`) on `worker`'s tape, the gradient written to
    /// `pass.destination`.
    private func backpropagate(_ dataset: Dataset, order: UnsafeBufferPointer<Int32>, worker: Int, _ pass: Pass) -> WorkerTotals {
        let tape = trainTapes[worker]
        let start = DispatchTime.now()
        tape.reset()
        let parameters = tape.bind(store, gradients: pass.destination)
        let images = batch(dataset, order: order, range: pass.range, worker: worker, tape: tape)
        let loaded = DispatchTime.now()
        let logProbabilities = model.logProbabilities(images, parameters)
        let loss = model.loss(logProbabilities: logProbabilities, labels: labels[worker], normalizer: pass.normalizer)
        let middle = DispatchTime.now()
        tape.backward(from: loss, parameterReady: pass.hooks.0, progress: pass.hooks.1)
        let end = DispatchTime.now()
        if let trace {
            trace.record(.data, track: 1 + worker, from: start, to: loaded)
            trace.record(.forward, track: 1 + worker, from: loaded, to: middle)
            trace.record(.backward, track: 1 + worker, from: middle, to: end)
        }
        return WorkerTotals(lossSum: Double(loss.scalar) * Double(pass.normalizer),
                            correct: countCorrect(logProbabilities, labels[worker]), samples: pass.range.count,
                            forwardSeconds: seconds(start, middle), backwardSeconds: seconds(middle, end))
    }

    /// The workers' results summed (the phases: the slowest worker's).
    private func totalOverWorkers() -> WorkerTotals {
        results.reduce(into: WorkerTotals()) { sum, r in
            sum.add(r)
            sum.forwardSeconds = max(sum.forwardSeconds, r.forwardSeconds)
            sum.backwardSeconds = max(sum.backwardSeconds, r.backwardSeconds)
        }
    }

    /// Predicted classes for positions `range` of `order` (forward only), written to `predictions[range]`.
    func predict(_ samples: OrderedSamples, range: Range<Int>, into predictions: UnsafeMutableBufferPointer<Int32>) {
        let output = UncheckedSendable(predictions)
        let dataset = samples.dataset
        samples.order.withUnsafeBufferPointer { orderBuffer in
            let order = UncheckedSendable(orderBuffer)
            parallel { worker in
                let part = shard(of: range, rank: worker, ranks: count)
                guard !part.isEmpty else { return }
                let tape = evaluationTapes[worker]
                tape.reset()
                let parameters = tape.bind(store)
                let images = batch(dataset, order: order.value, range: part, worker: worker, tape: tape)
                let logProbabilities = model.logProbabilities(images, parameters)
                logProbabilities.withUnsafeBufferPointer { values in
                    let classes = logProbabilities.shape[1]
                    for row in 0..<part.count {
                        output.value[part.lowerBound + row] = Int32(argmax(values, row: row, classes: classes))
                    }
                }
            }
        }
    }

    /// The images at `order[range]` as a batch on `tape`; fills the worker's label array.
    private func batch(_ dataset: Dataset, order: UnsafeBufferPointer<Int32>, range: Range<Int>, worker: Int, tape: Tape) -> Tensor {
        labels[worker].removeAll(keepingCapacity: true)
        labels[worker].append(contentsOf: repeatElement(0, count: range.count))
        let images = tape.constant([range.count, 1, dataset.rows, dataset.columns]) { buffer in
            labels[worker].withUnsafeMutableBufferPointer { labelBuffer in
                dataset.fillBatch(order: order, range: range, scaling: scaling, images: buffer.baseAddress!,
                                  labels: labelBuffer.baseAddress!)
            }
        }
        return images
    }
}

/// How many rows of `logProbabilities` have their largest value at the label.
func countCorrect(_ logProbabilities: Tensor, _ labels: [Int32]) -> Int {
    logProbabilities.withUnsafeBufferPointer { values in
        let classes = logProbabilities.shape[1]
        return labels.indices.reduce(0) { $0 + (argmax(values, row: $1, classes: classes) == Int(labels[$1]) ? 1 : 0) }
    }
}

