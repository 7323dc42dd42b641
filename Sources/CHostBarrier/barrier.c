// A sense-reversing barrier on a generation counter: the last party to arrive resets the count and advances the
// generation; the others wait for it to change, spinning and then in futex(FUTEX_WAIT) on its word, which works
// across processes because the memory is a shared mapping (no FUTEX_PRIVATE_FLAG).
#include "chostbarrier.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct host_barrier {
    _Atomic uint32_t arrived;     // parties arrived since the barrier last opened
    _Atomic uint32_t generation;  // how many times it has opened (wraps)
    _Atomic uint32_t sleepers;  // parties asleep in the kernel, or about to be
};

_Static_assert(sizeof(struct host_barrier) <= HOST_BARRIER_BYTES, "the barrier fits its bytes");

int64_t host_barrier_arrive(void *memory, uint32_t parties) {
    struct host_barrier *b = memory;
    // Read the generation before arriving: the barrier cannot open before this party's arrival counts.
    uint32_t generation = atomic_load(&b->generation);
    if (atomic_fetch_add(&b->arrived, 1) + 1 < parties) return generation;
    atomic_store(&b->arrived, 0);  // nobody arrives again before the generation below changes
    atomic_fetch_add(&b->generation, 1);
    if (atomic_load(&b->sleepers) > 0) syscall(SYS_futex, &b->generation, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return -1;
}

int host_barrier_wait(void *memory, int64_t generation, uint32_t spins, uint32_t timeout_us) {
    struct host_barrier *b = memory;
    uint32_t waiting = (uint32_t)generation;
    for (uint32_t i = 0; i < spins; i++) {
        if (atomic_load_explicit(&b->generation, memory_order_acquire) != waiting) return 1;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    // Sequentially consistent: either the last arrival sees this sleeper, or this sleeper sees the new generation.
    atomic_fetch_add(&b->sleepers, 1);
    struct timespec timeout = { .tv_sec = timeout_us / 1000000, .tv_nsec = (long)(timeout_us % 1000000) * 1000 };
    if (atomic_load(&b->generation) == waiting) {
        // Returns at a wake, at the timeout, at a signal, or at once if the generation has already changed.
        syscall(SYS_futex, &b->generation, FUTEX_WAIT, waiting, &timeout, NULL, 0);
    }
    atomic_fetch_sub(&b->sleepers, 1);
    return atomic_load(&b->generation) != waiting;
}

void host_counter_publish(void *counter, uint64_t value) {
    atomic_store_explicit((_Atomic uint64_t *)counter, value, memory_order_release);
}

uint64_t host_counter_read(const void *counter) {
    return atomic_load_explicit((_Atomic uint64_t *)counter, memory_order_acquire);
}
