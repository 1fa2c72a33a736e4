/* The C twin for liburcu's urcu-mb flavor: see twin_body.h. */
#define _LGPL_SOURCE
/* The ordinary API names (rcu_read_lock(), synchronize_rcu(), ...) map to this flavor. */
#define URCU_API_MAP
#include <urcu/urcu-mb.h>

#define TWIN(name) twin_mb_##name
#define TWIN_IS_QSBR 0
#include "twin_body.h"
