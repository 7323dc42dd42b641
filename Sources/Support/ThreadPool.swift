// The threads that run a training step's parallel loops: a product split into column ranges, the optimizer's step
// in parts, the workers of a CNN step. The MLP runs about 14 such loops in a step of a few milliseconds, separated
// by serial work on the calling thread (the loss, the sparse input).
// Waking a parked thread for each one costs a futex wake, and on a virtual machine the idle core's exit from its
// halt, which libdispatch's loops paid every time. So the pool's threads spin for a while after each loop before
// they park, and the next loop finds them awake.
//
// One loop at a time holds the pool. A loop started while it is held (two ranks run as threads of one process, or a
// part that starts a loop of its own) runs on libdispatch's threads instead: the same parts, the same results.
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class ThreadPool: @unchecked Sendable {
    // @unchecked Sendable: `body` is written only by the thread that holds the pool, before it publishes the loop
    // (a release store of `state`), and read only by a thread that has claimed one of that loop's parts (an
    // acquiring exchange of `state`); the mutex and condition guard the parking.

    /// The process's pool, shared by every parallel loop.
    public static let shared = ThreadPool()

    /// How long a thread keeps looking for the next loop before it parks: long enough to span the serial work
    /// between a step's loops, short enough that spinning does not take time from the other cores (a virtual
    /// machine may throttle a core for the time it spins; docs/performance.md has the comparison).
    public static let spinNanoseconds: UInt64 = 50_000

    /// The most threads the pool starts beside the caller's.
    static let maximumThreads = 255

    /// Whether a loop holds the pool.
    private let held = Atomic<Bool>(false)
    /// The loop being run: its number (high 32 bits), its part count (next 16) and the next unclaimed part (low 16).
    /// One word, so that a part is claimed with one compare-exchange, and a thread still looking at the previous
    /// loop can never take a part of the next one with the previous one's count.
    private let state = Atomic<UInt64>(0)
    /// Parts of the current loop that have finished.
    private let finished = Atomic<Int>(0)
    /// Threads parked (waiting on `wake`).
    private let parked = Atomic<Int>(0)
    /// The current loop's body.
    private var body: ((Int) -> Void)?
    /// Threads started so far (grown, never shrunk, by the thread holding the pool).
    private var started = 0
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()

    private init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
    }

    /// Runs `body(part)` for every part in 0..<parts, on the calling thread and the pool's, and returns when all
    /// have finished. Which thread runs a part is not fixed; each part must depend only on its index.
    /// - Parameter threads: the threads the loop is meant for, the caller's included (default: one per part). The
    ///   pool grows to the most any loop has asked for, less one; a thread already started may help a loop that
    ///   asked for fewer.
    public func run(parts: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        if parts <= 1 { if parts == 1 { body(0) }; return }
        guard parts < 1 << 16, held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            withoutActuallyEscaping(body) { body in
                let box = UncheckedSendable(body)
                DispatchQueue.concurrentPerform(iterations: parts) { box.value($0) }  // libdispatch's own threads
            }
            return
        }
        withoutActuallyEscaping(body) { body in
            self.body = body
            startThreads(upTo: min(min(parts, threads ?? parts) - 1, Self.maximumThreads))
            finished.store(0, ordering: .relaxed)
            let loop = (state.load(ordering: .relaxed) >> 32) &+ 1
            state.store(loop << 32 | UInt64(parts) << 16, ordering: .sequentiallyConsistent)
            if parked.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            runParts()
            var spins = 0
            while finished.load(ordering: .acquiring) < parts {
                spins += 1
                if spins & 1023 == 0 { sched_yield() }
            }
            self.body = nil
        }
        held.store(false, ordering: .releasing)
    }

    /// Claims and runs parts of the current loop until none is left.
    private func runParts() {
        while let part = claim() {
            runPart(part)
            finished.add(1, ordering: .releasing)
        }
    }

    /// Runs one part; the body's copy is released before the part counts as finished (the caller's closure must not
    /// outlive `run`).
    @inline(never)
    private func runPart(_ part: Int) {
        body!(part)
    }

    /// The next unclaimed part of the loop now published, if any.
    private func claim() -> Int? {
        var current = state.load(ordering: .relaxed)
        while true {
            let next = Int(current & 0xffff), parts = Int(current >> 16 & 0xffff)
            guard next < parts else { return nil }
            let (exchanged, original) = state.compareExchange(expected: current, desired: current + 1, ordering: .acquiring)
            if exchanged { return next }
            current = original
        }
    }

    /// Starts threads until there are `count`.
    private func startThreads(upTo count: Int) {
        while started < count {
            started += 1
            let seen = state.load(ordering: .relaxed) >> 32
            var thread = pthread_t()
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 16 << 20)  // a CNN worker's forward and backward run here
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            let context = Unmanaged.passRetained(Start(pool: self, seen: seen)).toOpaque()
            let status = pthread_create(&thread, &attributes, { context in
                let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
                start.pool.serve(after: start.seen)
                return nil
            }, context)
            pthread_attr_destroy(&attributes)
            require(status == 0, "ThreadPool: cannot start a thread (error \(status))")
        }
    }

    /// What a new thread needs: the pool, and the last loop it need not look at.
    private final class Start {
        let pool: ThreadPool
        let seen: UInt64
        init(pool: ThreadPool, seen: UInt64) { self.pool = pool; self.seen = seen }
    }

    /// A pool thread's life: wait for a loop newer than `seen`, help run it, repeat.
    private func serve(after seen: UInt64) -> Never {
        var seen = seen
        while true {
            seen = awaitLoop(after: seen)
            runParts()
        }
    }

    /// Spins until a loop newer than `seen` is published, then parks until one is; returns its number.
    private func awaitLoop(after seen: UInt64) -> UInt64 {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        var spins = 0
        while true {
            let loop = state.load(ordering: .relaxed) >> 32
            if loop != seen { return loop }
            spins += 1
            if spins & 255 == 0 {
                if DispatchTime.now().uptimeNanoseconds > deadline { break }
                sched_yield()  // a core shared with another rank's thread (more threads than cores) goes to it
            }
        }
        pthread_mutex_lock(&mutex)
        parked.add(1, ordering: .sequentiallyConsistent)
        var loop = state.load(ordering: .sequentiallyConsistent) >> 32
        while loop == seen {
            pthread_cond_wait(&wake, &mutex)
            loop = state.load(ordering: .sequentiallyConsistent) >> 32
        }
        parked.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(&mutex)
        return loop
    }
}
