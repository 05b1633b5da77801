/*
 * keyd_key.c: the keys the custody process (keyd.c) keeps loaded
 * (keyd_int.h): each is loaded from the token once, and its copies then
 * sign without a token search. The handlers (keyd_handlers.c) take their
 * keys here and forget the ones they disable or destroy; keyd.c gives the
 * audit its tree heads' keys from here and frees them all at exit.
 */

#include <strings.h>

#include "keys/keyd_int.h"
#include "keys/keys_int.h"

/*
 * A copy of key id (rf_key_free it), loaded from the token once and then
 * kept: keyd alone opens the token, so a kept key changes only through
 * keyd, and disabling or destroying keys empties the cache (keyd_key_flush).
 * The store's state of the key is still read at each signature.
 */
int
keyd_key_get(struct keyd *kd, const char *id, struct rf_key **out)
{
	struct rf_key *k = NULL;
	size_t i;
	int r;

	*out = NULL;
	for (i = 0; i < KEY_CACHE && kd->kcache[i] != NULL; i++)
		if (strcasecmp(rf_key_id(kd->kcache[i]), id) == 0)
			return rf_key_dup(kd->kcache[i], out);
	if ((r = rf_keys_load(kd->keys, id, &k)) != 0)
		return r;
	/* Its copies then sign without searching the token. A key that
	 * may not sign is kept too: signing with it fails as it should. */
	if (rf_keys_check(kd->keys, k) != 0)
		rf_err_clear();
	if ((r = rf_key_dup(k, out)) != 0) {
		rf_key_free(k);
		return r;
	}
	rf_key_free(kd->kcache[kd->knext]);
	kd->kcache[kd->knext] = k;
	kd->knext = (kd->knext + 1) % KEY_CACHE;
	return 0;
}

/* rf_audit_key_source's getter: tree heads sign with a kept audit key. */
int
keyd_key_get_audit(void *arg, const char *id, struct rf_key **out)
{
	return keyd_key_get(arg, id, out);
}

/*
 * Keys ids[0..n) were disabled or destroyed: they are loaded again if
 * asked for. The others are kept: a load searches a token, which costs a
 * SoftHSM file store of thousands of keys a quarter of a second.
 */
void
keyd_key_forget(struct keyd *kd, const char *const *ids, size_t n)
{
	size_t i, j, k = 0;

	for (i = 0; i < KEY_CACHE && kd->kcache[i] != NULL; i++) {
		for (j = 0; j < n; j++)
			if (strcasecmp(rf_key_id(kd->kcache[i]), ids[j]) == 0)
				break;
		if (j < n)
			rf_key_free(kd->kcache[i]);
		else
			kd->kcache[k++] = kd->kcache[i];
	}
	if (k == i)
		return; /* none forgotten */
	for (j = k; j < i; j++)
		kd->kcache[j] = NULL;
	kd->knext = k; /* the first free place */
}

void
keyd_key_flush(struct keyd *kd)
{
	size_t i;

	for (i = 0; i < KEY_CACHE; i++) {
		rf_key_free(kd->kcache[i]);
		kd->kcache[i] = NULL;
	}
	kd->knext = 0;
}
