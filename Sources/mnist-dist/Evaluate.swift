import ArgumentParser

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(not yet)")
    func run() throws { throw ValidationError("not yet implemented") }
}
