// The machine a run is on, as the start block and `bench` describe it: the CPU, the widest vectors it offers, and
// the OpenBLAS kernels in use, with a hint when those kernels are narrower than the CPU could run.
import Autodiff
import Foundation

/// Vector instruction sets, narrowest first.
public enum VectorISA: Int, Comparable, Sendable, CustomStringConvertible {
    case sse, avx, avx2, avx512

    public var description: String {
        switch self {
        case .sse: "SSE"
        case .avx: "AVX"
        case .avx2: "AVX2"
        case .avx512: "AVX-512"
        }
    }

    public static func < (a: VectorISA, b: VectorISA) -> Bool { a.rawValue < b.rawValue }

    /// The widest set in /proc/cpuinfo's flags.
    package static func widest(flags: Set<Substring>) -> VectorISA {
        if flags.contains("avx512f") { return .avx512 }
        if flags.contains("avx2") && flags.contains("fma") { return .avx2 }
        if flags.contains("avx") { return .avx }
        return .sse
    }

    /// The vectors an OpenBLAS kernel family ("Haswell", "SkylakeX", "Prescott", ...) uses.
    package static func of(openBLASCore core: String) -> VectorISA {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": .avx512
        case "haswell", "zen", "excavator": .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": .avx
        default: .sse
        }
    }
}

public struct MachineDescription: Sendable {
    public let cpu: String
    public let vectorISA: VectorISA
    /// OpenBLAS's kernel family in use, and the vectors it uses.
    public let blasKernel: String
    public let blasISA: VectorISA
    /// OPENBLAS_CORETYPE, when the user (or the machine's environment) set it.
    public let forcedCoreType: String?
    /// The kernels mnist-dist chose (`KernelChoice`), if it did.
    public let chosenCoreType: String?
    /// Whether the CPU runs an AVX-512 instruction as two 256-bit halves (AMD Zen 4: family 25 with AVX-512), so
    /// that AVX-512 kernels do no more work per cycle than AVX2 ones.
    public let halvesAVX512: Bool

    package init(cpu: String, vectorISA: VectorISA, blasKernel: String, blasISA: VectorISA, forcedCoreType: String?,
                 chosenCoreType: String? = nil, halvesAVX512: Bool = false) {
        self.cpu = cpu
        self.vectorISA = vectorISA
        self.blasKernel = blasKernel
        self.blasISA = blasISA
        self.chosenCoreType = chosenCoreType
        self.forcedCoreType = chosenCoreType == nil ? forcedCoreType : nil
        self.halvesAVX512 = halvesAVX512
    }

    /// This process's machine, from /proc/cpuinfo, OpenBLAS and the environment.
    public static func current() -> MachineDescription {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let flags = Set((cpuinfoField("flags", in: info) ?? "").split(separator: " "))
        let core = BLAS.coreName
        let environment = ProcessInfo.processInfo.environment
        let vectorISA = VectorISA.widest(flags: flags)
        return MachineDescription(cpu: cpuName(cpuinfo: info), vectorISA: vectorISA, blasKernel: core,
                                  blasISA: VectorISA.of(openBLASCore: core), forcedCoreType: environment["OPENBLAS_CORETYPE"],
                                  chosenCoreType: environment[KernelChoice.marker],
                                  halvesAVX512: vectorISA == .avx512 && halvesAVX512(cpuinfo: info))
    }

    /// Whether /proc/cpuinfo describes an AMD Zen 4 (family 25; its Zen 3 models have no AVX-512, and Zen 5, with
    /// full-width AVX-512, is family 26).
    package static func halvesAVX512(cpuinfo info: String) -> Bool {
        cpuinfoField("vendor_id", in: info)?.trimmingCharacters(in: .whitespaces) == "AuthenticAMD"
            && cpuinfoField("cpu family", in: info).flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } == 25
    }

    /// The CPU's model name with its family and model numbers: "AMD EPYC, family 25 model 17". Virtual machines
    /// often report a bare "AMD EPYC" or "Intel Xeon Processor", and the numbers are what tell a Zen 3 from a Zen 4
    /// or a Zen 5 (the same name, different vector units).
    package static func cpuName(cpuinfo info: String) -> String {
        let name = cpuinfoField("model name", in: info).map { $0.trimmingCharacters(in: .whitespaces) }
        let family = cpuinfoField("cpu family", in: info).map { $0.trimmingCharacters(in: .whitespaces) }
        let model = cpuinfoField("model", in: info).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let family, let model, Int(family) != nil, Int(model) != nil else { return name ?? "unknown CPU" }
        return "\(name ?? "unknown CPU"), family \(family) model \(model)"
    }

    /// The value of the first /proc/cpuinfo line whose key (before the tabs and colon) is `key`.
    static func cpuinfoField(_ key: String, in info: String) -> Substring? {
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key { return parts[1] }
        }
        return nil
    }

    /// The OpenBLAS kernel family for this CPU's widest vectors.
    var bestCoreType: String {
        switch vectorISA {
        case .avx512: "SkylakeX"
        case .avx2: "Haswell"
        case .avx: "Sandybridge"
        case .sse: "Prescott"
        }
    }

    /// "Intel(R) Xeon(R) Processor (AVX-512); OpenBLAS Prescott kernels (SSE)".
    public var summary: String {
        "\(cpu) (\(vectorISA)); OpenBLAS \(blasKernel) kernels (\(blasISA)"
            + (forcedCoreType.map { ", forced by OPENBLAS_CORETYPE=\($0)" } ?? "")
            + (chosenCoreType.map { ", chosen by mnist-dist: " + KernelChoice.reason(for: $0, on: self) } ?? "") + ")"
    }

    /// What to do when OpenBLAS runs narrower kernels than the CPU has, said once; nil when it does not, or when
    /// mnist-dist chose them.
    public var hint: String? {
        guard blasISA < vectorISA, chosenCoreType == nil else { return nil }
        let better = bestCoreType
        if let forcedCoreType, halvesAVX512 && blasISA == .avx2 {
            return "OPENBLAS_CORETYPE=\(forcedCoreType) makes OpenBLAS use \(blasISA) kernels on this \(vectorISA) CPU; as it "
                + "runs AVX-512 in two halves, that costs the CNN about 5 % and speeds up the MLP (which mnist-dist runs on "
                + "Haswell kernels here anyway)"
        }
        if let forcedCoreType {
            return "OPENBLAS_CORETYPE=\(forcedCoreType) makes OpenBLAS use \(blasISA) kernels on this \(vectorISA) CPU, so "
                + "matrix products run narrower than they could; unset it (or set \(better)) unless it is there for a reason"
        }
        return "OpenBLAS chose its \(blasKernel) (\(blasISA)) kernels on this \(vectorISA) CPU, which it does not recognise; "
            + "OPENBLAS_CORETYPE=\(better) lets it use \(vectorISA), several times faster for both models (docs/performance.md)"
    }
}

/// The OpenBLAS kernels mnist-dist starts itself with when nobody set OPENBLAS_CORETYPE:
/// - when OpenBLAS does not recognise the CPU (Debian's 0.3.21 on recent Xeons falls back to its SSE kernels), the
///   kernels for the CPU's widest vectors;
/// - for the MLP on a CPU that runs AVX-512 as two 256-bit halves (Zen 4), the Haswell (AVX2) kernels in place of
///   the AVX-512 ones OpenBLAS picks: the MLP's products are large single-threaded sgemm calls, which those kernels
///   run faster there. The CNN's small products run faster with the AVX-512 kernels, so it keeps them
///   (docs/performance.md has the figures).
/// OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded, so the process starts itself again with it set, before
/// anything else (MPI included) has begun. A user's own OPENBLAS_CORETYPE is never changed; setting it (to any
/// family) keeps mnist-dist from choosing.
public enum KernelChoice {
    /// Set in the environment of the process started again: the kernels chosen.
    public static let marker = "MNIST_DIST_CHOSEN_CORETYPE"

    /// The kernel family to start again with (`mlp`: the command trains or runs the MLP), or nil to go on as is.
    public static func better(than machine: MachineDescription, environment: [String: String], mlp: Bool = false) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[marker] == nil else { return nil }
        if machine.blasISA < machine.vectorISA && machine.blasKernel.lowercased() == "prescott" { return machine.bestCoreType }
        if mlp && machine.halvesAVX512 && machine.blasISA == .avx512 { return "Haswell" }
        return nil
    }

    /// Why mnist-dist chose `core` on `machine`, for the start block.
    public static func reason(for core: String, on machine: MachineDescription) -> String {
        VectorISA.of(openBLASCore: core) < machine.vectorISA && machine.halvesAVX512
            ? "faster for the MLP's products on this CPU, which runs AVX-512 as two 256-bit halves"
            : "OpenBLAS does not recognise this CPU"
    }

    /// Whether `arguments` name the MLP (`--model mlp` or `--model=mlp`).
    package static func namesMLP(_ arguments: [String]) -> Bool {
        zip(arguments, arguments.dropFirst()).contains { $0 == ("--model", "mlp") } || arguments.contains("--model=mlp")
    }

    /// Starts this process again with better kernels when `better` finds some; returns only when it does not (or
    /// the start fails, which leaves the process as it was).
    public static func restartIfBetter() {
        let environment = ProcessInfo.processInfo.environment
        let mlp = namesMLP(Array(CommandLine.arguments.dropFirst()))
        guard let core = better(than: .current(), environment: environment, mlp: mlp) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(marker, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(marker)
    }
}
