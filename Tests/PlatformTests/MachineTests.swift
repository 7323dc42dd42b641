// What the start block and bench say about the machine: the CPU's widest vectors, the OpenBLAS kernels' vectors,
// and the hint when the kernels are narrower.
import Foundation
import Testing
import TestSupport
import Platform

@Suite("Knowing the machine", .limit(minutes: 5))
struct MachineTests {
    @Test("the widest vector set from /proc/cpuinfo's flags, and an OpenBLAS kernel family's")
    func vectorSets() {
        #expect(VectorISA.widest(flags: ["sse2", "avx", "avx2", "fma", "avx512f"]) == .avx512)
        #expect(VectorISA.widest(flags: ["sse2", "avx", "avx2", "fma"]) == .avx2)
        #expect(VectorISA.widest(flags: ["sse2", "avx", "avx2"]) == .avx)  // AVX2 without FMA: no Haswell kernels
        #expect(VectorISA.widest(flags: ["sse2", "sse4_2"]) == .sse)
        #expect(VectorISA.of(openBLASCore: "SkylakeX") == .avx512 && VectorISA.of(openBLASCore: "COOPERLAKE") == .avx512)
        #expect(VectorISA.of(openBLASCore: "Haswell") == .avx2 && VectorISA.of(openBLASCore: "Zen") == .avx2)
        #expect(VectorISA.of(openBLASCore: "Prescott") == .sse)
    }

    @Test("the CPU's name carries its family and model numbers, read from /proc/cpuinfo's own keys")
    func cpuName() {
        let zen4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
            + "stepping\t: 1\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n"
        #expect(MachineDescription.cpuName(cpuinfo: zen4) == "AMD EPYC, family 25 model 17")
        let xeon = "cpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        #expect(MachineDescription.cpuName(cpuinfo: xeon) == "Intel(R) Xeon(R) Processor, family 6 model 207",
                "'model' is not taken from the 'model name' line")
        #expect(MachineDescription.cpuName(cpuinfo: "model name\t: Some ARM core\n") == "Some ARM core", "no numbers")
        #expect(MachineDescription.cpuName(cpuinfo: "cpu family\t: x\nmodel\t: 3\nmodel name\t: Odd\n") == "Odd")
        #expect(MachineDescription.cpuName(cpuinfo: "") == "unknown CPU")
    }

    @Test("a hint only when OpenBLAS runs narrower than the CPU, saying whether the environment forced it")
    func hints() {
        let forced = MachineDescription(cpu: "AMD EPYC", vectorISA: .avx512, blasKernel: "Haswell", blasISA: .avx2,
                                        forcedCoreType: "Haswell")
        #expect(forced.hint?.hasPrefix("OPENBLAS_CORETYPE=Haswell makes OpenBLAS use AVX2 kernels on this AVX-512 CPU") == true)
        #expect(forced.summary == "AMD EPYC (AVX-512); OpenBLAS Haswell kernels (AVX2, forced by OPENBLAS_CORETYPE=Haswell)")
        let unrecognised = MachineDescription(cpu: "Intel Xeon", vectorISA: .avx512, blasKernel: "Prescott", blasISA: .sse,
                                              forcedCoreType: nil)
        #expect(unrecognised.hint?.contains("OPENBLAS_CORETYPE=SkylakeX lets it use AVX-512") == true)
        let matched = MachineDescription(cpu: "AMD EPYC", vectorISA: .avx2, blasKernel: "Zen", blasISA: .avx2, forcedCoreType: nil)
        #expect(matched.hint == nil)
    }

    @Test("kernels are chosen only when OpenBLAS fell back to Prescott on a wider CPU and nobody set OPENBLAS_CORETYPE")
    func kernelChoice() {
        func machine(_ isa: VectorISA, _ kernel: String, _ kernelISA: VectorISA) -> MachineDescription {
            MachineDescription(cpu: "CPU", vectorISA: isa, blasKernel: kernel, blasISA: kernelISA, forcedCoreType: nil)
        }
        #expect(KernelChoice.better(than: machine(.avx512, "Prescott", .sse), environment: [:]) == "SkylakeX")
        #expect(KernelChoice.better(than: machine(.avx2, "Prescott", .sse), environment: [:]) == "Haswell")
        #expect(KernelChoice.better(than: machine(.avx512, "Prescott", .sse), environment: ["OPENBLAS_CORETYPE": "Prescott"]) == nil,
                "the user's setting stands")
        #expect(KernelChoice.better(than: machine(.avx512, "Prescott", .sse), environment: [KernelChoice.marker: "SkylakeX"]) == nil,
                "started again once at most")
        #expect(KernelChoice.better(than: machine(.avx512, "Haswell", .avx2), environment: [:]) == nil, "a recognised CPU")
        #expect(KernelChoice.better(than: machine(.avx512, "SkylakeX", .avx512), environment: [:]) == nil)
        #expect(KernelChoice.better(than: machine(.sse, "Prescott", .sse), environment: [:]) == nil)
        let chosen = MachineDescription(cpu: "Intel Xeon", vectorISA: .avx512, blasKernel: "SkylakeX", blasISA: .avx512,
                                        forcedCoreType: "SkylakeX", chosenCoreType: "SkylakeX")
        #expect(chosen.forcedCoreType == nil && chosen.hint == nil)
        #expect(chosen.summary.hasSuffix("(AVX-512, chosen by mnist-dist: OpenBLAS does not recognise this CPU)"))
    }

    @Test("on a CPU that halves AVX-512 (Zen 4) the MLP gets OpenBLAS's Haswell kernels, the CNN keeps AVX-512 ones")
    func kernelChoicePerModel() {
        let zen4Info = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: avx2 fma avx512f\n"
        #expect(MachineDescription.halvesAVX512(cpuinfo: zen4Info))
        #expect(!MachineDescription.halvesAVX512(cpuinfo: zen4Info.replacingOccurrences(of: ": 25", with: ": 26")), "Zen 5")
        #expect(!MachineDescription.halvesAVX512(cpuinfo: "vendor_id\t: GenuineIntel\ncpu family\t: 25\n"))
        #expect(!MachineDescription.halvesAVX512(cpuinfo: ""))

        func machine(_ kernel: String, halves: Bool, chosen: String? = nil) -> MachineDescription {
            MachineDescription(cpu: "AMD EPYC", vectorISA: .avx512, blasKernel: kernel, blasISA: VectorISA.of(openBLASCore: kernel),
                               forcedCoreType: chosen, chosenCoreType: chosen, halvesAVX512: halves)
        }
        let zen4 = machine("Cooperlake", halves: true)
        #expect(KernelChoice.better(than: zen4, environment: [:], mlp: true) == "Haswell")
        #expect(KernelChoice.better(than: zen4, environment: [:], mlp: false) == nil)
        #expect(KernelChoice.better(than: zen4, environment: [:]) == nil, "a command without a model")
        #expect(KernelChoice.better(than: zen4, environment: ["OPENBLAS_CORETYPE": "SkylakeX"], mlp: true) == nil,
                "the user's setting stands")
        #expect(KernelChoice.better(than: zen4, environment: [KernelChoice.marker: "Haswell"], mlp: true) == nil,
                "started again once at most")
        #expect(KernelChoice.better(than: machine("Cooperlake", halves: false), environment: [:], mlp: true) == nil,
                "full-width AVX-512 (Zen 5, Xeon)")
        #expect(KernelChoice.better(than: machine("Prescott", halves: true), environment: [:], mlp: true) == "SkylakeX",
                "an unrecognised CPU gets its widest kernels first")

        let chosen = machine("Haswell", halves: true, chosen: "Haswell")
        #expect(chosen.hint == nil, "no hint about narrower kernels that mnist-dist chose")
        #expect(chosen.summary.hasSuffix("(AVX2, chosen by mnist-dist: faster for the MLP's products on this CPU, which runs "
                                         + "AVX-512 as two 256-bit halves)"))

        let forced = MachineDescription(cpu: "AMD EPYC", vectorISA: .avx512, blasKernel: "Haswell", blasISA: .avx2,
                                        forcedCoreType: "Haswell", halvesAVX512: true)
        #expect(forced.hint?.contains("costs the CNN about 5 % and speeds up the MLP") == true,
                "on Zen 4 the hint says what forcing AVX2 costs there, not that products run narrower than they could")

        #expect(KernelChoice.namesMLP(["train", "--model", "mlp", "--epochs", "2"]))
        #expect(KernelChoice.namesMLP(["--model=mlp"]))
        #expect(!KernelChoice.namesMLP(["--model", "cnn"]))
        #expect(!KernelChoice.namesMLP(["bench", "--models", "mlp"]))
        #expect(!KernelChoice.namesMLP(["train", "--model"]))
    }
}
