// A sense-reversing barrier on a round counter: the last party to arrive resets the count and advances the round;
// the others wait for the round to change, spinning and then in futex(FUTEX_WAIT) on the round's word, which works
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
    _Atomic uint32_t arrived;   // parties arrived in this round
    _Atomic uint32_t round;     // completed rounds (wraps)
    _Atomic uint32_t sleepers;  // parties asleep in the kernel, or about to be
};

_Static_assert(sizeof(struct host_barrier) <= HOST_BARRIER_BYTES, "the barrier fits its bytes");

int64_t host_barrier_arrive(void *memory, uint32_t parties) {
    struct host_barrier *b = memory;
    // Read the round before arriving: it cannot complete before this party's arrival counts.
    uint32_t round = atomic_load(&b->round);
    if (atomic_fetch_add(&b->arrived, 1) + 1 < parties) return round;
    atomic_store(&b->arrived, 0);  // nobody arrives for the next round before the round below changes
    atomic_fetch_add(&b->round, 1);
    if (atomic_load(&b->sleepers) > 0) syscall(SYS_futex, &b->round, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return -1;
}

int host_barrier_wait(void *memory, int64_t round, uint32_t spins, uint32_t timeout_us) {
    struct host_barrier *b = memory;
    uint32_t waiting = (uint32_t)round;
    for (uint32_t i = 0; i < spins; i++) {
        if (atomic_load_explicit(&b->round, memory_order_acquire) != waiting) return 1;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    // Sequentially consistent: either the last arrival sees this sleeper, or this sleeper sees the new round.
    atomic_fetch_add(&b->sleepers, 1);
    struct timespec timeout = { .tv_sec = timeout_us / 1000000, .tv_nsec = (long)(timeout_us % 1000000) * 1000 };
    if (atomic_load(&b->round) == waiting) {
        // Returns at a wake, at the timeout, at a signal, or at once if the round has already changed.
        syscall(SYS_futex, &b->round, FUTEX_WAIT, waiting, &timeout, NULL, 0);
    }
    atomic_fetch_sub(&b->sleepers, 1);
    return atomic_load(&b->round) != waiting;
}

void host_counter_publish(void *counter, uint64_t value) {
    atomic_store_explicit((_Atomic uint64_t *)counter, value, memory_order_release);
}

uint64_t host_counter_read(const void *counter) {
    return atomic_load_explicit((_Atomic uint64_t *)counter, memory_order_acquire);
}
