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
    /// OPENBLAS_CORETYPE, when set.
    public let forcedCoreType: String?

    package init(cpu: String, vectorISA: VectorISA, blasKernel: String, blasISA: VectorISA, forcedCoreType: String?) {
        self.cpu = cpu
        self.vectorISA = vectorISA
        self.blasKernel = blasKernel
        self.blasISA = blasISA
        self.forcedCoreType = forcedCoreType
    }

    /// This process's machine, from /proc/cpuinfo, OpenBLAS and the environment.
    public static func current() -> MachineDescription {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Substring? {
            info.split(separator: "\n").first { $0.hasPrefix(name) }?.split(separator: ":", maxSplits: 1).last
        }
        let cpu = field("model name").map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let flags = Set((field("flags") ?? "").split(separator: " "))
        let core = BLAS.coreName
        return MachineDescription(cpu: cpu, vectorISA: VectorISA.widest(flags: flags), blasKernel: core,
                                  blasISA: VectorISA.of(openBLASCore: core),
                                  forcedCoreType: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
    }

    /// "Intel(R) Xeon(R) Processor (AVX-512); OpenBLAS Prescott kernels (SSE)".
    public var summary: String {
        "\(cpu) (\(vectorISA)); OpenBLAS \(blasKernel) kernels (\(blasISA)"
            + (forcedCoreType.map { ", forced by OPENBLAS_CORETYPE=\($0)" } ?? "") + ")"
    }

    /// What to do when OpenBLAS runs narrower kernels than the CPU has, said once; nil when it does not.
    public var hint: String? {
        guard blasISA < vectorISA else { return nil }
        let better = vectorISA == .avx512 ? "SkylakeX" : (vectorISA == .avx2 ? "Haswell" : "Sandybridge")
        if let forcedCoreType {
            return "OPENBLAS_CORETYPE=\(forcedCoreType) makes OpenBLAS use \(blasISA) kernels on this \(vectorISA) CPU, so "
                + "matrix products run narrower than they could; unset it (or set \(better)) unless it is there for a reason"
        }
        // Measured on a 2-core Xeon (family 6, model 207) where OpenBLAS 0.3.21 falls back to Prescott: bench epochs
        // 7.4 -> 3.4 s (CNN) and 1.0 -> 0.41 s (MLP) with OPENBLAS_CORETYPE=SkylakeX.
        return "OpenBLAS chose its \(blasKernel) (\(blasISA)) kernels on this \(vectorISA) CPU, which it does not recognise; "
            + "OPENBLAS_CORETYPE=\(better) lets it use \(vectorISA) (measured on such a Xeon: epochs 2.2x faster for the CNN, "
            + "2.5x for the MLP)"
    }
}
