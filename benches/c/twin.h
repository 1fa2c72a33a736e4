/*
 * The C twin's shared definitions: the layouts the Rust harness shares with it
 * (`benches/src/vs_liburcu/twin.rs` declares the same structs), the timing loops, and
 * the operations table each flavor exports.
 *
 * Flavor-independent: nothing here includes a liburcu header.
 */
#ifndef BENCHES_TWIN_H
#define BENCHES_TWIN_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

/* The RCU-protected value: 32 bytes, like `TwinPayload` in Rust. */
struct twin_payload {
	uint64_t value;
	uint64_t pad[3];
};

/* What one kernel reports, like `Counts` in Rust. */
struct twin_counts {
	uint64_t ops;      /* reads, synchronizes, updates or callbacks done */
	uint64_t ns;       /* time they took, measured by the kernel itself */
	uint64_t poisoned; /* reads that saw the updater's poison (too-short grace periods) */
	uint64_t check;    /* the read loop's sum, or the callbacks that ran */
};

/* The start/stop protocol of the multi-threaded rows, like `Control` in Rust. */
struct twin_control {
	uint32_t ready; /* threads registered and waiting for `go` */
	uint32_t go;    /* set once by the harness: start the timed loop */
	uint32_t stop;  /* set once by the harness: leave the timed loop */
};

/* Written by the updater into a value after its grace period, just before freeing it. */
#define TWIN_POISON UINT64_C(0xdeaddeaddeaddead)
/* Reads per batch; QSBR readers announce a quiescent state after each batch. */
#define TWIN_BATCH 1024
/* Synchronizes per batch of the synchronize loop (the clock is read once per batch). */
#define TWIN_SYNC_BATCH 64

/* Every flavor's kernels (one table per flavor, in `twin_<flavor>.c`). */
struct twin_ops {
	void (*read_loop)(struct twin_payload **cell, uint64_t budget_ns, struct twin_counts *out);
	void (*busy_reader)(struct twin_payload **cell, struct twin_control *ctl,
			    struct twin_counts *out);
	void (*updater)(struct twin_payload **cell, struct twin_control *ctl,
			struct twin_counts *out);
	void (*idle_register)(void);
	void (*idle_unregister)(void);
	void (*sync_loop)(uint64_t budget_ns, struct twin_counts *out);
	void (*call_barrier)(uint64_t n, struct twin_counts *out);
};

/* CLOCK_MONOTONIC through the vDSO, as Rust's `Instant::now`. */
static inline uint64_t twin_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Say we are ready, then wait (yielding) until the harness says go. */
static inline void twin_arrive_and_wait_go(struct twin_control *ctl)
{
	__atomic_fetch_add(&ctl->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&ctl->go, __ATOMIC_ACQUIRE))
		sched_yield();
}

static inline int twin_stopped(struct twin_control *ctl)
{
	return __atomic_load_n(&ctl->stop, __ATOMIC_RELAXED) != 0;
}

/*
 * Run the statements (one batch, worth `per_batch` operations) until `budget_ns` has
 * passed, reading the clock once per batch. Fills out->ops and out->ns. Rust's
 * `for_budget` has the same shape.
 */
#define TWIN_FOR_BUDGET(budget_ns, out, per_batch, ...)                           \
	do {                                                                      \
		uint64_t t0_ = twin_now_ns(), n_ = 0, e_;                         \
		do {                                                              \
			__VA_ARGS__;                                              \
			n_ += (per_batch);                                        \
			e_ = twin_now_ns() - t0_;                                 \
		} while (e_ < (budget_ns));                                       \
		(out)->ops = n_;                                                  \
		(out)->ns = e_;                                                   \
	} while (0)

/*
 * The same until the harness sets `stop` (checked after each batch, so every worker does
 * at least one however late it is scheduled). Rust's `until_stop` has the same shape.
 */
#define TWIN_UNTIL_STOP(ctl, out, per_batch, ...)                                 \
	do {                                                                      \
		uint64_t t0_ = twin_now_ns(), n_ = 0;                             \
		do {                                                              \
			__VA_ARGS__;                                              \
			n_ += (per_batch);                                        \
		} while (!twin_stopped(ctl));                                     \
		(out)->ops = n_;                                                  \
		(out)->ns = twin_now_ns() - t0_;                                  \
	} while (0)

#endif /* BENCHES_TWIN_H */
