// swift-tools-version:6.0
// mnist-dist: a data-parallel MNIST trainer over MPI, with its own reverse-mode autodiff on OpenBLAS.
//
// Data flows one way through the modules:
//   MNISTData (files, RNG, batches) -> Autodiff (tensors, ops, BLAS) -> NN (models, optimizers)
//   -> Distributed (communicators, gradient reducers) -> Training (the loop, its set-up, workers)
//   -> mnist-dist (command line)
// Deflate is the one module that talks to zlib (gzip streams, CRC-32, compression). Beside the loop: Checkpoints (what a run is and what it saves: configuration, checkpoint files, saved models),
// Platform (where a run lives: CPU and kernels, Slurm, signals, memory), Reporting (what a run shows: console,
// TensorBoard log, trace, pictures). Around them: Support (helpers every module shares, exit codes, errors),
// Pictures (canvas, PNG, charts), TensorBoard (its event files), Interchange (models in other programs' formats:
// safetensors, ONNX), Chapter (the chapter's experiments), Benchmarking (the bench harness), Serving (the HTTP
// server of `mnist-dist serve`, on Hummingbird). scripts/check-imports.py checks that each target's dependencies
// below are exactly the modules its files import.
import Foundation
import PackageDescription

// The numeric modules are compiled for this machine's CPU (AVX2 and FMA on a current x86-64), like -march=native:
// measured 8-10 % faster epochs, and fused multiply-adds inline rather than through libm. Build a binary that must
// also run on older CPUs with MNIST_DIST_TARGET_CPU=x86-64 (or another LLVM CPU name).
// -fno-math-errno: Swift's Float.squareRoot() is a C inline function (__builtin_sqrtf) that the C importer compiles
// with glibc's errno convention, a branch to sqrtf for negative input, so a SIMD16 square root became 16 scalar
// ones with branches; without errno it is one vsqrtps. The results are the same (IEEE square roots are exact);
// Adadelta's step, 6.6 % of a CNN epoch, went from 16 scalar square roots per register to one instruction.
let targetCPU = ProcessInfo.processInfo.environment["MNIST_DIST_TARGET_CPU"] ?? "native"
let numeric: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU, "-Xcc", "-fno-math-errno"])]

let package = Package(
    name: "mnist-dist",
    products: [
        .executable(name: "mnist-dist", targets: ["mnist-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server of `mnist-dist serve`.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // The server's logger type (Hummingbird logs through it).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: C libraries (system packages, our bfloat16 kernels and the host's barrier; each is imported by exactly one
        // Swift file)
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        // bfloat16 matrix products (AVX512_BF16 intrinsics, compiled per function; run only where the CPU has them).
        .target(name: "CBFloat16", cSettings: [.unsafeFlags(["-O3"])]),
        // The barrier of a host's ranks in their shared memory (C11 atomics and futex).
        .target(name: "CHostBarrier"),

        // MARK: Libraries, in the order data flows through them
        .target(name: "Support"),
        .target(name: "Deflate", dependencies: ["CZlib", "Support"]),
        .target(name: "MNISTData", dependencies: ["Deflate", "Support"], swiftSettings: numeric),
        .target(name: "Autodiff", dependencies: ["COpenBLAS", "CBFloat16", "Support"], swiftSettings: numeric),
        .target(name: "NN", dependencies: ["Support", "Autodiff"], swiftSettings: numeric),
        .target(name: "Distributed", dependencies: ["CMPI", "CHostBarrier", "Support"], swiftSettings: numeric),
        .target(name: "Pictures", dependencies: ["Support", "Deflate", "CPNG", "CTurboJPEG"]),
        .target(name: "TensorBoard", dependencies: ["Support"]),
        .target(name: "Interchange", dependencies: ["Support", "MNISTData", "Autodiff", "NN"]),
        .target(name: "Platform", dependencies: ["Autodiff"]),
        .target(name: "Checkpoints", dependencies: ["Support", "Deflate", "MNISTData", "Autodiff", "NN", "Distributed", "Interchange"]),
        .target(name: "Reporting", dependencies: ["Support", "MNISTData", "Autodiff", "NN", "Distributed", "Pictures",
                                          "TensorBoard", "Checkpoints", "Platform"]),
        .target(name: "Training", dependencies: ["Support", "Deflate", "MNISTData", "Autodiff", "NN", "Distributed", "Checkpoints",
                                         "Platform", "Reporting"],
                swiftSettings: numeric),

        // MARK: Around training: the chapter's experiments and the benchmark harness
        .target(name: "Chapter", dependencies: ["Support", "MNISTData", "Autodiff", "Checkpoints", "Training"]),
        .target(name: "Serving", dependencies: ["Support", "Pictures", "Checkpoints", "Training",
                                        .product(name: "Hummingbird", package: "hummingbird"),
                                        .product(name: "Logging", package: "swift-log")]),
        .target(name: "Benchmarking", dependencies: ["Support", "Autodiff", "Distributed", "Checkpoints", "Platform", "Reporting",
                                             "Training"]),

        // MARK: The command
        .executableTarget(name: "mnist-dist", dependencies: [
            "Support", "MNISTData", "Autodiff", "NN", "Distributed", "Pictures", "Checkpoints", "Platform", "Reporting",
            "Training", "Chapter", "Serving", "Benchmarking",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // MARK: Tests: one target per module (EndToEndTests drives the built executable)
        .target(name: "TestSupport", dependencies: ["Deflate", "MNISTData"], path: "Tests/TestSupport"),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"]),
        .testTarget(name: "SupportTests", dependencies: ["Support", "TestSupport"]),
        .testTarget(name: "MNISTDataTests", dependencies: ["MNISTData", "Deflate", "Support", "TestSupport"]),
        .testTarget(name: "AutodiffTests", dependencies: ["Autodiff", "Support", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Autodiff", "MNISTData", "Support", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport"]),
        .testTarget(name: "PicturesTests", dependencies: ["Pictures", "Support", "TestSupport"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "TestSupport"]),
        .testTarget(name: "InterchangeTests", dependencies: ["Interchange", "NN", "Autodiff", "MNISTData", "Support", "TestSupport"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Deflate", "MNISTData", "Support", "TestSupport"]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "Checkpoints", "NN", "Autodiff", "MNISTData", "Support",
                                                      "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Checkpoints", "Reporting", "Distributed", "MNISTData",
                                                     "Support", "TestSupport"]),
        .testTarget(name: "ChapterTests", dependencies: ["Chapter", "Support", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Checkpoints", "Support", "TestSupport"]),
        .testTarget(name: "BenchmarkingTests", dependencies: ["Benchmarking", "Training", "Autodiff", "Distributed", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Support", "MNISTData", "Autodiff", "Pictures", "Interchange", "Checkpoints",
                                                     "Platform", "Training", "TestSupport"],
                    exclude: ["Fixtures"]),
    ]
)
