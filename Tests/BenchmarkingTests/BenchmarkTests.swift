// The benchmark's arithmetic over rounds: which run stands for a configuration, and which ratio is reported.
import Autodiff
import Distributed
import Testing
import TestSupport
import Training
import Benchmarking

@Suite("Benchmark rounds", .limit(minutes: 5))
struct BenchmarkTests {
    /// Three rounds in which the machine drifts: our CNN at 5, 6 and 4 s, PyTorch at 8, 12 and 9 s.
    static let rounds: [[BenchmarkRow]] = [(5.0, 8.0), (6.0, 12.0), (4.0, 9.0)].map { ours, theirs in
        [BenchmarkRow(name: "mnist-dist cnn -np 1", model: "cnn", secondsPerEpoch: ours, ours: true),
         BenchmarkRow(name: "mnist-dist cnn -np 2", model: "cnn", secondsPerEpoch: ours + 1, ours: true),
         BenchmarkRow(name: "PyTorch CNN", model: "cnn", secondsPerEpoch: theirs, ours: false)]
    }

    @Test("each configuration is represented by its median round")
    func medians() {
        let rows = Benchmark.medianRows(Self.rounds)
        #expect(rows.map(\.name) == ["mnist-dist cnn -np 1", "mnist-dist cnn -np 2", "PyTorch CNN"])
        #expect(rows.map(\.secondsPerEpoch) == [5, 6, 9])
        #expect(Benchmark.medianRows([]).isEmpty)
        // A reference that failed in the first round (PyTorch DDP's gloo run did once) keeps its row from the others.
        let ddp = { (seconds: Double) in BenchmarkRow(name: "PyTorch DDP", model: "cnn", secondsPerEpoch: seconds, ours: false) }
        let patchy = [Self.rounds[0], Self.rounds[1] + [ddp(7)], Self.rounds[2] + [ddp(5)]]
        #expect(Benchmark.medianRows(patchy).map(\.name) == ["mnist-dist cnn -np 1", "mnist-dist cnn -np 2", "PyTorch CNN", "PyTorch DDP"])
        #expect(Benchmark.medianRows(patchy).last?.secondsPerEpoch == 7)
    }

    @Test("the ratio is the median of the per-round ratios of our best to the reference, each round listed")
    func ratios() {
        // Per round: 5/8 = 0.625, 6/12 = 0.5, 4/9 = 0.444; the median is round 2's 0.5, which the ratio of the
        // columns' medians (5/9 = 0.556) would not give.
        let line = Benchmark.comparison(Self.rounds)
        #expect(line.hasPrefix("CNN: mnist-dist cnn -np 1 takes 0.50x the seconds per epoch of PyTorch CNN (6.00 s against 12.00 s)"), "\(line)")
        #expect(line.hasSuffix("median of 3 rounds: 0.62x, 0.50x, 0.44x"), "\(line)")
        // A round whose reference failed (PyTorch DDP aborted once here) drops out; of two, the higher ratio stands.
        let gap = Benchmark.comparison([Self.rounds[0], Array(Self.rounds[1].prefix(2)), Self.rounds[2]])
        #expect(gap.hasPrefix("CNN: mnist-dist cnn -np 1 takes 0.62x the seconds per epoch of PyTorch CNN (5.00 s against 8.00 s)"), "\(gap)")
        #expect(gap.hasSuffix("median of 2 rounds: 0.62x, 0.44x"), "\(gap)")
        let single = Benchmark.comparison([Self.rounds[1]])
        #expect(single == "CNN: mnist-dist cnn -np 1 takes 0.50x the seconds per epoch of PyTorch CNN (6.00 s against 12.00 s)")
    }

    @Test("with bf16 runs: each reference against our best in its own precision, and our best bf16 against the reference's fastest mode and our best Float")
    func precisions() {
        func row(_ name: String, _ seconds: Double, ours: Bool, _ precision: ProductPrecision, ranks: Int = 1) -> BenchmarkRow {
            var row = BenchmarkRow(name: name, model: "cnn", ranks: ranks, secondsPerEpoch: seconds, ours: ours)
            row.precision = precision
            return row
        }
        let rows = [row("ours float", 2, ours: true, .float), row("ours bf16", 3, ours: true, .bf16),
                    row("ours bf16 -np 2", 2.9, ours: true, .bf16, ranks: 2),
                    row("torch float", 5, ours: false, .float), row("torch bf16", 6, ours: false, .bf16),
                    row("ddp bf16", 1, ours: false, .bf16, ranks: 2)]
        let lines = Benchmark.comparison([rows]).split(separator: "\n").map(String.init)
        #expect(lines == [
            "CNN: ours float takes 0.40x the seconds per epoch of torch float (2.00 s against 5.00 s)",
            "CNN: ours bf16 -np 2 takes 0.48x the seconds per epoch of torch bf16 (2.90 s against 6.00 s)",
            "CNN: ours bf16 -np 2 takes 2.90x the seconds per epoch of ddp bf16 (2.90 s against 1.00 s)",
            "CNN: ours bf16 -np 2 takes 0.97x the seconds per epoch of ours bf16 (2.90 s against 3.00 s)",
            "CNN: ours bf16 -np 2 takes 0.58x the seconds per epoch of the reference's fastest mode, torch float (2.90 s against 5.00 s)",
            "CNN: ours bf16 -np 2 takes 1.45x the seconds per epoch of our fastest Float run, ours float (2.90 s against 2.00 s)",
        ], "\(lines)")
    }

    @Test("each of our runs on several ranks against our one process with the same sum and precision, within each round")
    func rankCounts() {
        func row(_ model: String, ranks: Int, _ sum: ReductionPrecision, _ seconds: Double) -> BenchmarkRow {
            var row = BenchmarkRow(name: "\(model) -np \(ranks) \(sum)", model: model, ranks: ranks, secondsPerEpoch: seconds, ours: true)
            row.reduction = sum
            return row
        }
        // The machine slows down over the rounds: per round, -np 4 double takes 0.60/0.40 = 1.5x, 0.65/0.50 = 1.3x
        // and 0.84/0.60 = 1.4x, so the median is 1.4x, where the columns' medians (0.65/0.50) would give 1.3x.
        let rounds = [(0.40, 0.60, 0.44, 0.90, 0.63), (0.50, 0.65, 0.50, 1.00, 0.75), (0.60, 0.84, 0.62, 1.10, 0.88)].map {
            (one: Double, four: Double, float: Double, exactOne: Double, exactTwo: Double) in
            [row("mlp", ranks: 1, .double, one), row("mlp", ranks: 4, .double, four), row("mlp", ranks: 4, .float, float),
             row("mlp", ranks: 1, .exact, exactOne), row("mlp", ranks: 2, .exact, exactTwo),
             BenchmarkRow(name: "JAX MLP", model: "mlp", ranks: 1, secondsPerEpoch: 0.2, ours: false)]
        }
        let lines = Benchmark.comparison(rounds).split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.contains("MLP: mlp -np 4 double takes 1.40x the seconds per epoch of mlp -np 1 double (0.84 s against 0.60 s); "
                               + "median of 3 rounds: 1.50x, 1.30x, 1.40x"), "\(lines)")
        #expect(lines.contains("MLP: mlp -np 2 exact takes 0.75x the seconds per epoch of mlp -np 1 exact (0.75 s against 1.00 s); "
                               + "median of 3 rounds: 0.70x, 0.75x, 0.80x"), "\(lines)")
        // The Float sum was not measured in one process: no line for it, and none that mixes sums.
        #expect(!lines.contains { $0.contains("-np 4 float") }, "\(lines)")
    }
}
