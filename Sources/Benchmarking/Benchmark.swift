// mnist-dist bench: train the chapter's CNN and MLP at several rank counts, measure, and (with --compare) run the
// reference PyTorch and JAX programs right after, in the same session, to print the ratios.
//
// Each configuration is a separate run of this same executable (under mpirun for more than one rank) writing
// --metrics; the figures are read back from those JSON lines. Not a test: nothing here asserts a time.
import Autodiff
import Checkpoints
import Distributed
import Foundation
import Platform
import Reporting
import Support
import Training

public struct BenchmarkOptions: Sendable {
    public var epochs = 4
    /// Rounds of (our runs, then the references): each configuration's figures are its median round, and each
    /// ratio is the median of the rounds' ratios, so that a machine whose speed drifts within a session (shared
    /// virtual machines do, by 10-30 %) does not decide a comparison.
    public var rounds = 1
    public var ranks = [1, 2, 4]
    public var models: [ModelKind] = [.cnn, .mlp]
    /// Gradient sums to run each configuration with (`--allreduce`).
    public var reductions: [ReductionPrecision] = [.double]
    /// The products' precisions (`--precision`) to run ours and the references in.
    public var precisions: [ProductPrecision] = [.float]
    public var dataDirectory: String
    /// Run the reference programs too, from this folder (the checkout's `benchmarks`).
    public var references: String?
    /// The Python that has numpy, jax and torch for the reference programs.
    public var python = "python3"
    public var output: String?
    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }
}

/// One configuration's figures.
public struct BenchmarkRow: Sendable {
    public var name: String
    public var model: String
    public var ranks: Int
    public var threads: Int
    /// Median over the epochs after the first.
    public var secondsPerEpoch: Double
    public var samplesPerSecond: Double
    public var gflops: Double
    /// Shares of the step in forward, backward, all-reduce (with waiting) and optimizer.
    public var shares: (forward: Double, backward: Double, allReduce: Double, optimizer: Double)
    public var peakResidentMegabytes: Double
    /// Resident memory after the second epoch and after the last (allocation growth shows as a difference).
    public var residentAfterSecondEpoch: Double
    public var residentAfterLastEpoch: Double
    public var testAccuracy: Double
    public var ours: Bool
    /// The products' operands: float, or bf16 (ours with --precision bf16, PyTorch's autocast, JAX's bf16 dots).
    public var precision = ProductPrecision.float
    /// How our run summed the gradient (--allreduce); nil for the references.
    public var reduction: ReductionPrecision?
    /// Bytes each rank hands to the gradient all-reduce per step, and the milliseconds a step spends in it
    /// (waiting included); NaN for one rank and the references.
    public var allReduceBytesPerStep = Double.nan
    public var allReduceMillisecondsPerStep = Double.nan

    /// The rate at which a ring all-reduce moved the gradient, in GB/s of bus traffic (2 (N - 1) / N x the bytes
    /// per rank, over the step's all-reduce time): the figure to hold against a link's speed.
    public var busGigabytesPerSecond: Double {
        guard ranks > 1 else { return .nan }
        return 2 * Double(ranks - 1) / Double(ranks) * allReduceBytesPerStep / (allReduceMillisecondsPerStep / 1000) / 1e9
    }

    public init(name: String, model: String, ranks: Int = 1, threads: Int = 1, secondsPerEpoch: Double, samplesPerSecond: Double = .nan,
                gflops: Double = .nan, shares: (forward: Double, backward: Double, allReduce: Double, optimizer: Double) = (.nan, .nan, .nan, .nan),
                peakResidentMegabytes: Double = .nan, residentAfterSecondEpoch: Double = .nan, residentAfterLastEpoch: Double = .nan,
                testAccuracy: Double = .nan, ours: Bool) {
        self.name = name
        self.model = model
        self.ranks = ranks
        self.threads = threads
        self.secondsPerEpoch = secondsPerEpoch
        self.samplesPerSecond = samplesPerSecond
        self.gflops = gflops
        self.shares = shares
        self.peakResidentMegabytes = peakResidentMegabytes
        self.residentAfterSecondEpoch = residentAfterSecondEpoch
        self.residentAfterLastEpoch = residentAfterLastEpoch
        self.testAccuracy = testAccuracy
        self.ours = ours
    }
}

/// One configuration of ours that the bench runs.
struct OurRun {
    let model: ModelKind
    let ranks: Int
    let reduction: ReductionPrecision
    let precision: ProductPrecision
}

/// Where the bench's runs happen: this executable, a scratch folder for their metrics, and the cores they share.
struct BenchmarkPlace {
    let executable: String
    let scratch: URL
    let cores: Int
}

public enum Benchmark {
    /// Work per training sample, 2 FLOP per multiply-add: forward, and backward's weight and input gradients (each
    /// as many multiply-adds as forward), less the first layer's input gradient, which nobody computes. CNN: 3 x
    /// 11,992,448 - 194,688 multiply-adds; MLP: 3 x 1,861,632 - 802,816.
    public static let flopPerSample: [ModelKind: Double] = [.cnn: 71.6e6, .mlp: 9.6e6]
    static let trainingSamples = 8000.0  // the chapter split

    public static func run(_ options: BenchmarkOptions, console: Console) throws -> [BenchmarkRow] {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("mnist-dist-bench-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        console.report("mnist-dist bench: \(options.epochs) epochs per run on the chapter split, \(cores) cores; median s/epoch after the first"
                       + (options.rounds > 1 ? "; \(options.rounds) rounds, each ours then the references" : ""))
        let machine = MachineDescription.current()
        console.report("machine: \(machine.summary)")
        if let hint = machine.hint { console.report("note: \(hint)") }
        if options.models.contains(.mlp), let core = mlpKernels(machine) {
            console.report("note: the MLP's runs use OpenBLAS's \(core) kernels, chosen by mnist-dist: "
                           + KernelChoice.reason(for: core, on: machine))
        }
        var rounds: [[BenchmarkRow]] = []
        for round in 1...max(1, options.rounds) {
            if options.rounds > 1 { console.report("round \(round) of \(options.rounds)") }
            var rows: [BenchmarkRow] = []
            for model in options.models {
                for precision in options.precisions {
                    for reduction in options.reductions {
                        for ranks in options.ranks {
                            let run = OurRun(model: model, ranks: ranks, reduction: reduction, precision: precision)
                            rows.append(try runOurs(run, in: BenchmarkPlace(executable: executable, scratch: scratch, cores: cores),
                                                    options: options, console: console))
                        }
                    }
                }
            }
            if let folder = options.references {
                rows += try references(folder: folder, options: options, console: console)
            }
            rounds.append(rows)
        }
        let rows = medianRows(rounds)
        console.report("")
        console.report(table(rows))
        console.report(comparison(rounds))
        if let output = options.output {
            do { try writeFileAtomically(Array(json(rows, options: options).utf8), to: output) } catch {
                throw RunError(.cannotWrite, "\(output): \(error)")
            }
            console.report("wrote \(output)")
        }
        return rows
    }

    /// The kernels the MLP's runs start themselves with (`KernelChoice`) where they differ from this process's.
    static func mlpKernels(_ machine: MachineDescription) -> String? {
        KernelChoice.better(than: machine, environment: ProcessInfo.processInfo.environment, mlp: true)
    }

    /// One configuration of ours: a run of this executable (under mpirun for several ranks) writing --metrics.
    static func runOurs(_ run: OurRun, in place: BenchmarkPlace, options: BenchmarkOptions, console: Console) throws -> BenchmarkRow {
        let (model, ranks, reduction, precision) = (run.model, run.ranks, run.reduction, run.precision)
        let (executable, scratch, cores) = (place.executable, place.scratch, place.cores)
        let threads = max(1, cores / ranks)
        let metrics = scratch.appendingPathComponent("\(model)-\(ranks)-\(reduction)-\(precision).jsonl").path
        try? FileManager.default.removeItem(atPath: metrics)
        var arguments = ["train", "--model", model.rawValue, "--data-dir", options.dataDirectory, "--split", "chapter",
                         "--epochs", "\(options.epochs)", "--metrics", metrics, "--progress", "none", "--quiet",
                         "--allreduce", reduction.rawValue, "--precision", precision.rawValue]
        if model == .mlp { arguments += ["--normalize", "none"] }
        let command: [String]
        if ranks == 1 {
            command = [executable] + arguments
        } else {
            var launcher = ["mpirun", "-np", "\(ranks)"]
            if getuid() == 0 { launcher.append("--allow-run-as-root") }
            if ranks > cores { launcher += ["--oversubscribe", "--bind-to", "none"] }
            command = launcher + [executable] + arguments
        }
        console.info("  running: \(command.joined(separator: " "))")
        let result = try runProcess(command)
        guard result.status == 0 else {
            throw RunError(.software, "benchmark run failed (exit \(result.status)): \(command.joined(separator: " "))\n\(result.output.suffix(2000))")
        }
        let suffix = (options.reductions == [.double] ? "" : ", \(reduction) sum") + (options.precisions == [.float] ? "" : ", \(precision)")
        var row = try readMetrics(metrics, name: "mnist-dist \(model) -np \(ranks) x \(threads) thread\(threads == 1 ? "" : "s")\(suffix)",
                                  model: model, ranks: ranks, threads: threads)
        row.precision = precision
        row.reduction = reduction
        console.report(format(row))
        return row
    }

    /// Each configuration's row from the round with its median seconds per epoch, over the rounds that measured it
    /// (the row keeps that run's other figures, so they stay consistent with each other).
    public static func medianRows(_ rounds: [[BenchmarkRow]]) -> [BenchmarkRow] {
        // Every configuration measured in any round, in the order first seen: a reference that failed in the first
        // round but ran in a later one still gets its row.
        var names: [String] = []
        for row in rounds.joined() where !names.contains(row.name) { names.append(row.name) }
        return names.map { name in
            let runs = rounds.compactMap { $0.first { $0.name == name } }.sorted { $0.secondsPerEpoch < $1.secondsPerEpoch }
            return runs[runs.count / 2]  // with an even count, the slower middle run
        }
    }

    /// Reads one run's --metrics file into a row.
    static func readMetrics(_ path: String, name: String, model: ModelKind, ranks: Int, threads: Int) throws -> BenchmarkRow {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RunError(.software, "\(path): the run wrote no metrics")
        }
        let objects = text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        let epochs = objects.filter { $0["type"] as? String == "epoch" }
        guard let run = objects.first(where: { $0["type"] as? String == "run" }), !epochs.isEmpty else {
            throw RunError(.software, "\(path): incomplete metrics")
        }
        func number(_ object: [String: Any], _ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? .nan }
        let measured = afterWarmUp(epochs)
        func median(_ key: String) -> Double { Support.median(measured.map { number($0, key) }) }
        let seconds = median("seconds")
        let phases = [median("forward_seconds"), median("backward_seconds"), median("allreduce_seconds"), median("optimizer_seconds")]
        let total = max(phases.reduce(0, +), 1e-12)
        let peaks = (run["peak_resident_mb_per_rank"] as? [NSNumber])?.map(\.doubleValue) ?? []
        var row = BenchmarkRow(name: name, model: model.rawValue, ranks: ranks, threads: threads, secondsPerEpoch: seconds,
                            samplesPerSecond: trainingSamples / seconds,
                            gflops: flopPerSample[model]! * trainingSamples / seconds / 1e9,
                            shares: (phases[0] / total, phases[1] / total, phases[2] / total, phases[3] / total),
                            peakResidentMegabytes: peaks.max() ?? .nan,
                            residentAfterSecondEpoch: epochs.count > 1 ? number(epochs[1], "resident_mb") : .nan,
                            residentAfterLastEpoch: number(epochs.last!, "resident_mb"),
                            testAccuracy: number(run, "final_test_accuracy"), ours: true)
        if ranks > 1 {
            row.allReduceBytesPerStep = median("allreduce_bytes_per_step")
            row.allReduceMillisecondsPerStep = Support.median(measured.map { 1000 * number($0, "allreduce_seconds") / number($0, "steps") })
        }
        return row
    }

    /// The reference programs: JAX's MLP, PyTorch's CNN with 2 threads, PyTorch DDP with 2 gloo processes; each in
    /// every precision asked for (bf16: JAX's bf16 dots, PyTorch's autocast).
    static func references(folder: String, options: BenchmarkOptions, console: Console) throws -> [BenchmarkRow] {
        var rows: [BenchmarkRow] = []
        // The programs run in their own folder: a relative data directory is made absolute first.
        let data = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        let environment = ["MNIST_DIR": data]
        var programs: [(name: String, model: ModelKind, module: String, command: [String], ranks: Int, threads: Int,
                        precision: ProductPrecision)] = []
        for precision in options.precisions {
            let common = ["--epochs", "\(options.epochs)", "--data-dir", data, "--precision", precision.rawValue]
            let mode = precision == .bf16 ? ", bf16" : ""
            programs += [
                ("JAX jit MLP\(precision == .bf16 ? ", bf16 dots" : "") (reference)", .mlp, "jax",
                 [options.python, "\(folder)/jax_mlp.py"] + common, 1, 0, precision),
                ("PyTorch CNN, 2 threads\(precision == .bf16 ? ", bf16 autocast" : "") (reference)", .cnn, "torch",
                 [options.python, "\(folder)/torch_cnn.py", "--threads", "2"] + common, 1, 2, precision),
                ("PyTorch DDP gloo, 2 x 1 thread\(mode) (reference)", .cnn, "torch",
                 [options.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "\(folder)/torch_ddp.py",
                  "--threads", "1"] + common, 2, 1, precision),
            ]
        }
        for program in programs where options.models.contains(program.model) {
            let script = program.command.first { $0.hasSuffix(".py") }!
            guard FileManager.default.fileExists(atPath: script) else {
                console.report("  skipped \(program.name): there is no \(script)")
                continue
            }
            let probe = try runProcess([options.python, "-c", "import numpy, \(program.module)"])
            guard probe.status == 0 else {
                console.report("  skipped \(program.name): \(options.python) cannot import \(program.module) "
                               + "(scripts/benchmark-env.sh makes an environment that can)")
                continue
            }
            console.info("  running: \(program.command.joined(separator: " "))")
            let result = try runProcess(program.command, environment: environment, directory: folder)
            guard result.status == 0, let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("RESULT") }) else {
                console.report("  \(program.name) failed (exit \(result.status)): \(result.output.suffix(500))")
                continue
            }
            func value(_ key: String) -> Double {
                guard let range = line.range(of: key + " ") else { return .nan }
                return Double(line[range.upperBound...].prefix { "0123456789.".contains($0) }) ?? .nan
            }
            let seconds = value("median_epoch_after_first")
            let accuracy = value("final_test_acc")
            var row = BenchmarkRow(name: program.name, model: program.model.rawValue, ranks: program.ranks, threads: program.threads,
                                   secondsPerEpoch: seconds, samplesPerSecond: trainingSamples / seconds,
                                   gflops: flopPerSample[program.model]! * trainingSamples / seconds / 1e9,
                                   shares: (.nan, .nan, .nan, .nan), peakResidentMegabytes: .nan, residentAfterSecondEpoch: .nan,
                                   residentAfterLastEpoch: .nan, testAccuracy: accuracy, ours: false)
            row.precision = program.precision
            rows.append(row)
            console.report(format(row))
        }
        return rows
    }

    static func format(_ row: BenchmarkRow) -> String {
        String(format: "  %-46@ %6.2f s/epoch %7.0f samples/s %6.1f GFLOP/s  test %.4f", row.name, row.secondsPerEpoch,
               row.samplesPerSecond, row.gflops, row.testAccuracy)
            + (row.allReduceBytesPerStep.isNaN ? "" : String(format: "  all-reduce %.1f MB/step, %.1f ms/step, %.2f GB/s on the bus",
                                                             row.allReduceBytesPerStep / 1e6, row.allReduceMillisecondsPerStep,
                                                             row.busGigabytesPerSecond))
    }

    /// The full table, Markdown, with phase shares and memory.
    public static func table(_ rows: [BenchmarkRow]) -> String {
        var lines = ["| run | s/epoch | samples/s | GFLOP/s | fwd / bwd / all-reduce / opt | all-reduce MB/step, ms/step | peak RSS per rank | RSS epoch 2 -> last | test acc |",
                     "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in rows {
            let shares = row.ours ? String(format: "%.0f / %.0f / %.0f / %.0f %%", 100 * row.shares.forward, 100 * row.shares.backward,
                                           100 * row.shares.allReduce, 100 * row.shares.optimizer) : "-"
            let memory = row.ours ? String(format: "%.0f MB", row.peakResidentMegabytes) : "-"
            let growth = row.ours ? String(format: "%.0f -> %.0f MB", row.residentAfterSecondEpoch, row.residentAfterLastEpoch) : "-"
            let wire = row.allReduceBytesPerStep.isNaN ? "-"
                : String(format: "%.1f MB, %.1f ms", row.allReduceBytesPerStep / 1e6, row.allReduceMillisecondsPerStep)
            lines.append(String(format: "| %@ | %.2f | %.0f | %.1f | %@ | %@ | %@ | %@ | %.4f |", row.name, row.secondsPerEpoch,
                                row.samplesPerSecond, row.gflops, shares, wire, memory, growth, row.testAccuracy))
        }
        return lines.joined(separator: "\n")
    }

    /// The ratios the performance issues set bars on, within each round; with several rounds, the median of those
    /// ratios and every round's ratio:
    /// - our best against each reference in the same precision;
    /// - each of our runs on several ranks against our one-process run with the same sum and precision;
    /// - with several precisions, our best bf16 run against the reference's fastest mode, and against our best
    ///   Float run.
    public static func comparison(_ rounds: [[BenchmarkRow]]) -> String {
        guard let first = rounds.first else { return "" }
        typealias Pick = ([BenchmarkRow]) -> BenchmarkRow?
        func fastest(_ rows: [BenchmarkRow], _ keep: (BenchmarkRow) -> Bool) -> BenchmarkRow? {
            rows.filter(keep).min { $0.secondsPerEpoch < $1.secondsPerEpoch }
        }
        func line(_ model: String, ours: Pick, theirs: Pick, describing: (BenchmarkRow) -> String) -> String? {
            var pairs: [(ratio: Double, ours: BenchmarkRow, reference: BenchmarkRow)] = []
            for rows in rounds {
                guard let mine = ours(rows), let other = theirs(rows) else { continue }
                pairs.append((mine.secondsPerEpoch / other.secondsPerEpoch, mine, other))
            }
            guard !pairs.isEmpty else { return nil }
            let middle = pairs.sorted { $0.ratio < $1.ratio }[pairs.count / 2]  // with an even count, the less flattering middle
            var text = String(format: "%@: %@ takes %.2fx the seconds per epoch of %@ (%.2f s against %.2f s)",
                              model.uppercased(), middle.ours.name, middle.ratio, describing(middle.reference),
                              middle.ours.secondsPerEpoch, middle.reference.secondsPerEpoch)
            if pairs.count > 1 {
                text += "; median of \(pairs.count) rounds: " + pairs.map { String(format: "%.2fx", $0.ratio) }.joined(separator: ", ")
            }
            return text
        }
        let precisions = Set(first.map(\.precision))
        var lines: [String] = []
        for model in ["cnn", "mlp"] {
            for reference in first where !reference.ours && reference.model == model {
                lines += [line(model, ours: { fastest($0) { $0.ours && $0.model == model && $0.precision == reference.precision } },
                               theirs: { $0.first { $0.name == reference.name } }, describing: \.name)].compactMap { $0 }
            }
            for run in first where run.ours && run.model == model && run.ranks > 1 {
                let alone: (BenchmarkRow) -> Bool = {
                    $0.ours && $0.model == model && $0.ranks == 1 && $0.reduction == run.reduction && $0.precision == run.precision
                }
                lines += [line(model, ours: { $0.first { $0.name == run.name } }, theirs: { $0.first(where: alone) },
                               describing: \.name)].compactMap { $0 }
            }
            guard precisions.count > 1 else { continue }
            let oursBF16: Pick = { fastest($0) { $0.ours && $0.model == model && $0.precision == .bf16 } }
            if first.contains(where: { !$0.ours && $0.model == model && $0.ranks == 1 }) {
                lines += [line(model, ours: oursBF16, theirs: { fastest($0) { !$0.ours && $0.model == model && $0.ranks == 1 } },
                               describing: { "the reference's fastest mode, \($0.name)" })].compactMap { $0 }
            }
            lines += [line(model, ours: oursBF16, theirs: { fastest($0) { $0.ours && $0.model == model && $0.precision == .float } },
                           describing: { "our fastest Float run, \($0.name)" })].compactMap { $0 }
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ rows: [BenchmarkRow], options: BenchmarkOptions) -> String {
        let items = rows.map { row in
            jsonObject([("name", Support.json(row.name)), ("model", Support.json(row.model)), ("ours", row.ours ? "true" : "false"),
                        ("ranks", "\(row.ranks)"), ("threads_per_rank", "\(row.threads)"),
                        ("seconds_per_epoch", Support.json(row.secondsPerEpoch)), ("samples_per_second", Support.json(row.samplesPerSecond)),
                        ("gflops", Support.json(row.gflops)), ("forward_share", Support.json(row.shares.forward)),
                        ("backward_share", Support.json(row.shares.backward)), ("allreduce_share", Support.json(row.shares.allReduce)),
                        ("optimizer_share", Support.json(row.shares.optimizer)),
                        ("peak_resident_mb", Support.json(row.peakResidentMegabytes)),
                        ("resident_mb_after_epoch_2", Support.json(row.residentAfterSecondEpoch)),
                        ("resident_mb_after_last_epoch", Support.json(row.residentAfterLastEpoch)),
                        ("allreduce_bytes_per_step", Support.json(row.allReduceBytesPerStep)),
                        ("allreduce_ms_per_step", Support.json(row.allReduceMillisecondsPerStep)),
                        ("allreduce_bus_gb_per_s", Support.json(row.busGigabytesPerSecond)),
                        ("test_accuracy", Support.json(row.testAccuracy)), ("precision", Support.json(row.precision.rawValue))])
        }
        let machine = MachineDescription.current()
        return "{\"epochs\": \(options.epochs), \"rounds\": \(options.rounds), \"cores\": \(ProcessInfo.processInfo.activeProcessorCount), "
            + "\"cpu\": \(Support.json(machine.cpu)), \"vector_isa\": \(Support.json(machine.vectorISA.description)), "
            + "\"blas_kernel\": \(Support.json(machine.blasKernel)), \"blas_isa\": \(Support.json(machine.blasISA.description)), "
            + "\"openblas_coretype\": \(machine.forcedCoreType.map(Support.json) ?? "null"), "
            + "\"blas_kernel_chosen_by_mnist_dist\": \(machine.chosenCoreType.map(Support.json) ?? "null"), "
            + "\"mlp_blas_kernel_chosen_by_mnist_dist\": \(mlpKernels(machine).map(Support.json) ?? "null"), \"runs\": [\n  "
            + items.joined(separator: ",\n  ") + "\n]}\n"
    }

    /// Runs a command (looked up on the PATH) to completion, capturing its output.
    static func runProcess(_ command: [String], environment: [String: String] = [:], directory: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        process.environment = variables
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
