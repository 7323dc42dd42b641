import ArgumentParser

struct Smooth: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "(not yet)")
    func run() throws { throw ValidationError("not yet implemented") }
}
