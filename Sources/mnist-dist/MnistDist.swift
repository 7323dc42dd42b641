// The mnist-dist command: parse, validate, and hand over to the Training module. Nothing else happens here.
import ArgumentParser
import Distributed
import Foundation
import Platform
import Support
import Training

@main
struct MnistDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mnist-dist",
        abstract: "Data-parallel MNIST training over MPI, with its own autodiff on OpenBLAS.",
        discussion: """
            With no subcommand, trains the default model (the chapter's CNN, standardised inputs, Adadelta).
            Run it alone for one process, or under mpirun for several ranks that train one model together:
              mnist-dist                                   one process
              mpirun -np 2 mnist-dist --epochs 3           two ranks on this host
              mpirun --hostfile hostfiles/two-hosts mnist-dist
            As root, Open MPI needs --allow-run-as-root; more ranks than cores need --oversubscribe.
            """,
        version: Version.string,
        subcommands: [Train.self, Evaluate.self, Predict.self, Export.self, Serve.self, Reproduce.self, Toy.self, Smooth.self, Show.self, Bench.self],
        defaultSubcommand: Train.self)

    /// Parses, runs, and ends the process with the run's exit code. Under mpirun every rank parses the same
    /// arguments, so only rank 0 prints a usage error; all ranks exit with its code.
    static func main() {
        KernelChoice.restartIfBetter()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as RunError {
            finish(error.code)
        } catch {
            if launcherRank == 0 {
                exit(withError: error)
            }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }

    /// This process's rank as the MPI launcher set it (0 when not launched by one).
    static var launcherRank: Int {
        for name in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"] {
            if let value = ProcessInfo.processInfo.environment[name], let rank = Int(value) { return rank }
        }
        return 0
    }
}

/// Ends the process with a run's exit code (its message was printed where it arose).
func finish(_ code: Support.ExitCode) -> Never {
    fflush(nil)
    Foundation.exit(code.rawValue)
}
