/*
 * The C twin's flavor-independent kernels: publishing and freeing the payload, the
 * plain-load baseline, and the layout check. Same work as `twin.rs`/`ours.rs` in Rust.
 */
#include <stdlib.h>

#include "twin.h"

void twin_publish(struct twin_payload **cell, uint64_t value)
{
	struct twin_payload *p = malloc(sizeof(*p));

	if (!p)
		abort();
	*p = (struct twin_payload){ .value = value };
	__atomic_store_n(cell, p, __ATOMIC_RELEASE);
}

/* Free the published payload; every thread that could read it has been joined. */
void twin_reclaim(struct twin_payload **cell)
{
	free(__atomic_exchange_n(cell, NULL, __ATOMIC_ACQUIRE));
}

/*
 * The plain-load baseline: the read loop without RCU (an acquire load of the pointer,
 * the field read, 0 for null, per read; batches of TWIN_BATCH).
 */
void twin_plain_loop(struct twin_payload **cell, uint64_t budget_ns, struct twin_counts *out)
{
	uint64_t sum = 0;

	TWIN_FOR_BUDGET(budget_ns, out, TWIN_BATCH, {
		for (int i = 0; i < TWIN_BATCH; i++) {
			struct twin_payload *p = __atomic_load_n(cell, __ATOMIC_ACQUIRE);

			sum += p ? p->value : 0;
		}
	});
	out->check = sum;
}

/* Sizes the Rust declarations must match: payload, counts, control. */
void twin_abi(uint64_t sizes[3])
{
	sizes[0] = sizeof(struct twin_payload);
	sizes[1] = sizeof(struct twin_counts);
	sizes[2] = sizeof(struct twin_control);
}
