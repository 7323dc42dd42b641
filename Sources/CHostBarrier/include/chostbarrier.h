// A barrier for the processes (or threads) of one host that map the same memory: 64 bytes of that memory hold it.
// A waiter spins for a while, then sleeps in the kernel (futex) until the last one to arrive wakes it, so that a
// waiting rank leaves its core to a rank that still computes. And a counter one party publishes and the others
// read, with the same ordering of the writes before it.
#ifndef CHOSTBARRIER_H
#define CHOSTBARRIER_H

#include <stdint.h>

/// The bytes a barrier takes; they start as zeros, before any party arrives.
#define HOST_BARRIER_BYTES 64

/// Arrives at the barrier at `barrier` (HOST_BARRIER_BYTES, 4-byte aligned) of `parties`. Every write this caller made
/// before it is visible to every party after its wait. Returns -1 when this arrival completes the barrier (every
/// party may go on, and the sleeping ones are woken), or else the generation to pass to `host_barrier_wait`.
int64_t host_barrier_arrive(void *barrier, uint32_t parties);

/// Waits until the barrier opens past generation `generation`: spins `spins` times, then sleeps up to `timeout_us`
/// microseconds. Returns 1 once it has opened, 0 if it has not yet (call again to keep waiting).
int host_barrier_wait(void *barrier, int64_t generation, uint32_t spins, uint32_t timeout_us);

/// Publishes `value` at `counter` (8-byte aligned) for the other parties: every write this caller made before it is
/// visible to a party that reads the value with `host_counter_read`.
void host_counter_publish(void *counter, uint64_t value);

/// The value last published at `counter`.
uint64_t host_counter_read(const void *counter);

#endif
