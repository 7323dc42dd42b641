// Stop requests by signal. The handler only records the signal; the training loop reads the record after each step,
// and the ranks agree (through the step's metrics all-reduce) on stopping after the same step, so no rank leaves a
// collective early. A second SIGINT (Ctrl-C twice) exits at once.
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The last stop signal received (0: none).
private let receivedSignal = Atomic<Int32>(0)

public enum StopSignals {
    /// The signals that ask for a clean stop: SIGINT and SIGTERM (a terminal, a scheduler), and SIGUSR1/SIGUSR2,
    /// which Open MPI's mpirun forwards to every rank.
    public static let handled: [Int32] = [SIGINT, SIGTERM, SIGUSR1, SIGUSR2]

    /// Installs the handlers (idempotent) and unblocks their signals: a process inherits the signal mask of the
    /// thread that started it, and a parent that spawns from a thread with signals blocked (a thread pool, some
    /// supervisors) would otherwise leave the stop signals pending forever. Also ignores SIGXFSZ, so that a file-size
    /// limit (ulimit -f) makes a write fail with a message (and the previous checkpoint survive) instead of killing
    /// the process.
    public static func install() {
        signal(SIGXFSZ, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        for signalNumber in handled { sigaddset(&set, signalNumber) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        for signalNumber in handled {
            signal(signalNumber) { number in
                if number == SIGINT && receivedSignal.load(ordering: .relaxed) == SIGINT { _exit(130) }
                receivedSignal.store(number, ordering: .relaxed)
            }
        }
    }

    /// The signal that asked for a stop, if one did.
    public static var requested: Int32? {
        let value = receivedSignal.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// The signal's name ("SIGTERM").
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGUSR1: return "SIGUSR1"
        case SIGUSR2: return "SIGUSR2"
        default: return "signal \(number)"
        }
    }
}
