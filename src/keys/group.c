/* group.c: TEMPORARY naive rf_keys_sign_group (one append per set). */
#include <stdio.h>

#include "keys/keys.h"

void
rf_keys_sign_group(struct rf_keys *keys, struct rf_sign_set *sets, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct rf_sign_set *s = &sets[i];

		s->r = s->digest ? rf_keys_sign_digest(keys, s->key, s->reqs,
				       s->n, s->who, s->sigs)
				 : rf_keys_sign(keys, s->key, s->reqs, s->n,
				       s->who, s->sigs);
		if (s->r != 0)
			snprintf(
			    s->msg, sizeof(s->msg), "%s", rf_err_msg(s->r));
	}
}
