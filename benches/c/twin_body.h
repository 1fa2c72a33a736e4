/*
 * The C twin of the Rust measurements in `benches/src/vs_liburcu/ours.rs`, for the liburcu
 * flavor whose header the including file pulled in (one flavor per compilation unit, with
 * `_LGPL_SOURCE`, so `rcu_read_lock()` and friends are liburcu's inlined fast paths mapped to
 * that flavor's symbols). The including file defines TWIN(name) (the exported prefix) and
 * TWIN_IS_QSBR.
 *
 * Same work as the Rust twin, kernel for kernel: the same loop structure (batches of
 * TWIN_BATCH reads, the clock read once per batch), the same 32-byte payload, one pointer
 * load and one field read per read, barriers only where each library's API puts them, the
 * same allocation (malloc/free, which Rust's global allocator also uses here). The harness
 * (Rust) creates every thread, for both twins, and times nothing itself: each kernel times
 * its own loop with CLOCK_MONOTONIC.
 *
 * What each row of the `vs-liburcu` table measures here:
 * - read_loop: a registered thread doing rcu_read_lock(); p = rcu_dereference(cell);
 *   read p->value; rcu_read_unlock() (QSBR: rcu_quiescent_state() after every 1024 reads);
 *   ns per read. Used for both read-side rows (liburcu has only the one API).
 * - busy_reader: the same loop until `stop`, counting reads that see TWIN_POISON.
 * - updater: unregistered, swap in a new payload (rcu_xchg_pointer), synchronize_rcu(),
 *   poison the old one's field, free it; updates/s. The poisoned payload is freed one
 *   update later (after one more grace period), so that a reader whose grace period was
 *   too short finds the poison rather than malloc's free-list pointer that free() would
 *   write over it at once.
 * - idle_register/unregister: a registered reader outside any critical section (QSBR:
 *   registered and offline) for the "one idle reader" synchronize row.
 * - sync_loop: synchronize_rcu() in a loop from an unregistered thread; ns per call.
 * - call_barrier: a registered thread (QSBR: online, a quiescent state every 1024 calls)
 *   does n call_rcu() of a callback that increments a counter, then rcu_barrier(); the
 *   rcu_heads are the caller's memory in liburcu's API, allocated and touched before the
 *   clock starts. A private call_rcu worker (create_call_rcu_data) is started and warmed
 *   with one callback before timing and freed after, so that no worker thread of one
 *   measurement stays registered into the next (the Rust twin uses a fresh domain).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin.h"

#if TWIN_IS_QSBR
#define TWIN_QUIESCENT() rcu_quiescent_state()
#else
#define TWIN_QUIESCENT() ((void)0)
#endif

/* One read: lock, load the pointer, read the field (0 for null), unlock. */
static inline uint64_t TWIN(read_one)(struct twin_payload **cell)
{
	struct twin_payload *p;
	uint64_t v;

	rcu_read_lock();
	p = rcu_dereference(*cell);
	v = p ? p->value : 0;
	rcu_read_unlock();
	return v;
}

static void TWIN(read_loop)(struct twin_payload **cell, uint64_t budget_ns,
			    struct twin_counts *out)
{
	uint64_t sum = 0;

	rcu_register_thread();
	TWIN_FOR_BUDGET(budget_ns, out, TWIN_BATCH, {
		for (int i = 0; i < TWIN_BATCH; i++)
			sum += TWIN(read_one)(cell);
		TWIN_QUIESCENT();
	});
	rcu_unregister_thread();
	out->check = sum;
}

static void TWIN(busy_reader)(struct twin_payload **cell, struct twin_control *ctl,
			      struct twin_counts *out)
{
	uint64_t poisoned = 0;

	rcu_register_thread();
	twin_arrive_and_wait_go(ctl);
	TWIN_UNTIL_STOP(ctl, out, TWIN_BATCH, {
		for (int i = 0; i < TWIN_BATCH; i++)
			if (TWIN(read_one)(cell) == TWIN_POISON)
				poisoned++;
		TWIN_QUIESCENT();
	});
	rcu_unregister_thread();
	out->poisoned = poisoned;
}

static void TWIN(updater)(struct twin_payload **cell, struct twin_control *ctl,
			  struct twin_counts *out)
{
	struct twin_payload *poisoned = NULL;
	uint64_t next = 1;

	twin_arrive_and_wait_go(ctl);
	TWIN_UNTIL_STOP(ctl, out, 1, {
		struct twin_payload *fresh = malloc(sizeof(*fresh)), *old;

		if (!fresh)
			abort();
		*fresh = (struct twin_payload){ .value = next++ };
		old = rcu_xchg_pointer(cell, fresh);
		synchronize_rcu();
		CMM_STORE_SHARED(old->value, TWIN_POISON);
		free(poisoned);
		poisoned = old;
	});
	free(poisoned);
}

static void TWIN(idle_register)(void)
{
	rcu_register_thread();
#if TWIN_IS_QSBR
	rcu_thread_offline();
#endif
}

static void TWIN(idle_unregister)(void)
{
#if TWIN_IS_QSBR
	rcu_thread_online();
#endif
	rcu_unregister_thread();
}

static void TWIN(sync_loop)(uint64_t budget_ns, struct twin_counts *out)
{
	TWIN_FOR_BUDGET(budget_ns, out, TWIN_SYNC_BATCH, {
		for (int i = 0; i < TWIN_SYNC_BATCH; i++)
			synchronize_rcu();
	});
}

static uint64_t TWIN(called);

static void TWIN(count_cb)(struct rcu_head *head)
{
	(void)head;
	__atomic_fetch_add(&TWIN(called), 1, __ATOMIC_RELAXED);
}

static void TWIN(noop_cb)(struct rcu_head *head)
{
	(void)head;
}

static void TWIN(call_barrier)(uint64_t n, struct twin_counts *out)
{
	struct rcu_head *heads;
	struct call_rcu_data *crdp;
	uint64_t t0;

	if (n >= SIZE_MAX / sizeof(*heads))
		abort();
	heads = malloc((n + 1) * sizeof(*heads));
	if (!heads)
		abort();
	memset(heads, 1, (n + 1) * sizeof(*heads)); /* fault the pages in before timing */
	rcu_register_thread();
	crdp = create_call_rcu_data(0, -1);
	set_thread_call_rcu_data(crdp);
	call_rcu(&heads[n], TWIN(noop_cb));
	rcu_barrier();
	__atomic_store_n(&TWIN(called), 0, __ATOMIC_RELAXED);

	t0 = twin_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		call_rcu(&heads[i], TWIN(count_cb));
		if ((i + 1) % TWIN_BATCH == 0)
			TWIN_QUIESCENT();
	}
	rcu_barrier();
	out->ns = twin_now_ns() - t0;
	out->ops = n;
	out->check = __atomic_load_n(&TWIN(called), __ATOMIC_RELAXED);

	set_thread_call_rcu_data(NULL);
	call_rcu_data_free(crdp);
	rcu_unregister_thread();
	free(heads);
}

const struct twin_ops TWIN(ops) = {
	.read_loop = TWIN(read_loop),
	.busy_reader = TWIN(busy_reader),
	.updater = TWIN(updater),
	.idle_register = TWIN(idle_register),
	.idle_unregister = TWIN(idle_unregister),
	.sync_loop = TWIN(sync_loop),
	.call_barrier = TWIN(call_barrier),
};
