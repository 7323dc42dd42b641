// Old spellings of options and arguments. Each is still accepted, hidden from --help, and announced in one line on
// stderr (by rank 0 only, under mpirun) that names the spelling to use instead. The README lists them.
import ArgumentParser
import Foundation

enum OldSpelling {
    /// The value given under either spelling; announces the old one, and refuses both at once.
    static func resolve<T>(_ current: T?, _ old: T?, now newName: String, was oldName: String) throws -> T? {
        guard let old else { return current }
        if current != nil { throw ValidationError("\(oldName) is the old spelling of \(newName); give one of them") }
        announce(oldName, now: newName)
        return old
    }

    /// Prints the notice for an old spelling once per process.
    static func announce(_ oldName: String, now newName: String) {
        guard MnistDist.launcherRank == 0, announced.insert(oldName).inserted else { return }
        FileHandle.standardError.write(Data("note: \(oldName) is an old spelling, still accepted; now: \(newName)\n".utf8))
    }

    nonisolated(unsafe) private static var announced = Set<String>()
}

/// The model a command reads: `COMMAND MODEL`, or the old `--model MODEL` (`--checkpoint MODEL` for serve).
struct ModelArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("A model written by train --save (or any checkpoint), or a safetensors file of one (see export).",
                                 valueName: "model"))
    var path: String?

    @Option(name: .customLong("model"), help: .hidden)
    var oldModelOption: String?

    @Option(name: .customLong("checkpoint"), help: .hidden)
    var oldCheckpointOption: String?

    /// The model's file, announcing an old spelling.
    func resolved() throws -> String {
        var path = try OldSpelling.resolve(self.path, oldModelOption, now: "the model as the first argument", was: "--model FILE")
        path = try OldSpelling.resolve(path, oldCheckpointOption, now: "the model as the first argument", was: "--checkpoint FILE")
        guard let path else { throw ValidationError("Missing expected argument '<model>'") }
        return path
    }
}
