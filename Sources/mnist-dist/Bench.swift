// mnist-dist bench: the performance figures, and the ratios against PyTorch and JAX.
import ArgumentParser
import Autodiff
import Checkpoints
import Distributed
import Foundation
import MNISTData
import Reporting
import Support
import Training
import Benchmarking

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark the CNN and MLP at several rank counts; with --compare, against PyTorch and JAX.",
        discussion: """
            Trains each model for --epochs epochs on the chapter split at each rank
            count, and prints and writes (--output) the median seconds per epoch
            after the first, samples/s, effective GFLOP/s (71.6 MFLOP per CNN
            sample, 9.6 per MLP sample), the step's shares in forward, backward,
            all-reduce and optimizer, and memory per rank. Each run on several ranks
            is set against the one-process run with the same sum and precision, as
            a ratio of seconds per epoch within each round.
            --compare runs the reference programs (the checkout's benchmarks folder)
            right after, with the Python of .venv-bench (scripts/benchmark-env.sh
            makes it: numpy, torch, jax) or --python; a program whose module is
            missing is skipped with a line saying how to install it. --rounds N repeats
            ours-then-references N times and reports medians (of the rounds' ratios,
            for the ratios), for machines whose speed drifts within a session.
            Examples:
              mnist-dist bench
              scripts/benchmark-env.sh && mnist-dist bench --epochs 6 --ranks 1,2 --compare
              mnist-dist bench --epochs 10 --ranks 1,2 --rounds 3 --compare
              mnist-dist bench --ranks 1 --precision float,bf16 --compare
            """)

    @Option(help: "Epochs per run (the median leaves out the first).")
    var epochs: Int = 4

    @Option(help: "Rounds of our runs followed by the references; figures are medians over rounds.")
    var rounds: Int = 1

    @Option(help: "Rank counts, comma-separated.")
    var ranks: String = "1,2,4"

    @Option(help: "Models, comma-separated: cnn, mlp.")
    var models: String = "cnn,mlp"

    @Option(help: ArgumentHelp("Gradient sums to run each configuration with, comma-separated: double, float, exact.", valueName: "sums"))
    var allreduce: String = "double"

    @Option(help: ArgumentHelp("Precisions of the products to run ours and the references in, comma-separated: float, bf16 (needs AVX512_BF16; the references run PyTorch's autocast and JAX's bf16 dots).", valueName: "precisions"))
    var precision: String = "float"

    @OptionGroup var directory: DataDirectoryOption

    @Flag(help: "Also run the reference PyTorch and JAX programs and print the ratios.")
    var compare = false

    @Option(help: ArgumentHelp("The folder of reference programs. Default: the checkout's benchmarks folder.", valueName: "dir"))
    var references: String?

    @Option(help: "The Python for the reference programs. Default: the checkout's .venv-bench (made by scripts/benchmark-env.sh), else python3.")
    var python: String?

    @Option(help: "Write the figures as JSON to this file.")
    var output: String?

    func validate() throws {
        if epochs < 2 { throw ValidationError("--epochs \(epochs): at least 2 (the first is left out of the median)") }
        if rounds < 1 { throw ValidationError("--rounds \(rounds): at least 1") }
        if rankCounts() == nil { throw ValidationError("--ranks \(ranks): expected positive numbers separated by commas") }
        if modelKinds() == nil { throw ValidationError("--models \(models): expected cnn and/or mlp separated by commas") }
        if reductions() == nil { throw ValidationError("--allreduce \(allreduce): expected double, float and/or exact separated by commas") }
        guard let precisions = precisions() else {
            throw ValidationError("--precision \(precision): expected float and/or bf16 separated by commas")
        }
        if precisions.contains(.bf16) && !BFloat16.supported {
            throw ValidationError("--precision bf16: this CPU has no AVX512_BF16, which bfloat16 products need")
        }
    }

    func rankCounts() -> [Int]? {
        let values = ranks.split(separator: ",").map { Int($0) }
        return values.isEmpty || values.contains { ($0 ?? 0) < 1 } ? nil : values.map { $0! }
    }

    func reductions() -> [ReductionPrecision]? {
        let values = allreduce.split(separator: ",").map { ReductionPrecision(rawValue: String($0)) }
        return values.isEmpty || values.contains(nil) ? nil : values.map { $0! }
    }

    func precisions() -> [ProductPrecision]? {
        let values = precision.split(separator: ",").map { ProductPrecision(rawValue: String($0)) }
        return values.isEmpty || values.contains(nil) ? nil : values.map { $0! }
    }

    func modelKinds() -> [ModelKind]? {
        let values = models.split(separator: ",").map { ModelKind(rawValue: String($0)) }
        return values.isEmpty || values.contains(nil) ? nil : values.map { $0! }
    }

    func run() throws {
        let console = Console(rank: 0, ranks: 1)
        try reportingErrors(console) {
            var options = BenchmarkOptions(dataDirectory: try DataLocation.resolve(dataset: .mnist, explicit: directory.path))
            options.epochs = epochs
            options.rounds = rounds
            options.ranks = rankCounts()!
            options.models = modelKinds()!
            options.reductions = reductions()!
            options.precisions = precisions()!
            let checkout = DataLocation.checkoutDirectory()
            let environment = checkout.map { "\($0)/.venv-bench/bin/python" }
            // The reference programs run in their own folder: relative paths are made absolute here.
            func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
            options.python = python.map { $0.contains("/") ? absolute($0) : $0 } ?? environment.flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil } ?? "python3"
            options.output = output
            if compare {
                let candidate = references ?? checkout.map { "\($0)/benchmarks" }
                guard let candidate, FileManager.default.fileExists(atPath: "\(candidate)/mnist_split.py") else {
                    throw RunError(.missingInput, "no reference programs found\(references.map { " in \($0)" } ?? ""); name their "
                                   + "folder (the checkout's benchmarks) with --references")
                }
                options.references = absolute(candidate)
            }
            _ = try Benchmark.run(options, console: console)
        }
    }
}
