/* ringfence audit: tree heads, proofs, verification, export, search. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"

static const char audit_help[] =
    "usage: ringfence audit sth\n"
    "       ringfence audit prove --leaf N [--size S]\n"
    "       ringfence audit consistency OLD NEW\n"
    "       ringfence audit verify [--checkpoint FILE] [--audit-key-id ID]\n"
    "       ringfence audit watch URL --checkpoint FILE [--audit-key-id ID]\n"
    "                             [--cacert FILE]\n"
    "       ringfence audit checkpoint FILE\n"
    "       ringfence audit export [--out FILE]\n"
    "       ringfence audit search [--key KEYID] [--tenant T] [--type TYPE]\n"
    "                              [--since TIME] [--until TIME] [--limit N]\n"
    "                              [--json]\n"
    "       ringfence audit reconcile --signins FILE [--json]\n"
    "\n"
    "The audit record is an append-only Merkle log (RFC 9162 hashing) of\n"
    "every key generation, signature, issuance, revocation and admin action\n"
    "(docs/audit-format.md).\n"
    "  sth          sign a tree head of the current record with the audit key\n"
    "  prove        inclusion proof of leaf N in the tree of size S (default:\n"
    "               the current size), checked before it is printed\n"
    "  consistency  consistency proof from tree size OLD to NEW\n"
    "  verify       recompute every leaf hash, every tree head root and\n"
    "               signature, offline (no token needed); with --checkpoint,\n"
    "               also check that the record extends the size and root kept\n"
    "               in FILE, writing FILE first if it does not exist; with\n"
    "               --audit-key-id, every tree head must be signed by that\n"
    "               key (the id `ringfence init` printed), whatever the\n"
    "               store says\n"
    "  watch        from another machine: fetch the tree head served at URL\n"
    "               and a consistency proof from the checkpoint in FILE,\n"
    "               verify both offline (pinned key id, signature, size,\n"
    "               consistency) and advance FILE; the first run pins the\n"
    "               key id given or served. Exit 1 naming what broke.\n"
    "  checkpoint   verify, then write the current size and root to FILE\n"
    "               (keep it outside the state folder)\n"
    "  export       leaves and tree heads as JSON lines, for an independent\n"
    "               verifier (to FILE or standard output)\n"
    "  search       leaves by key, tenant, type (sign, keygen, refused, ...)\n"
    "               and time (seconds since the epoch or\n"
    "               YYYY-MM-DDTHH:MM:SSZ); --type refused lists what the\n"
    "               custody process refused, and to whom\n"
    "  reconcile    list the sign-ins of an Entra sign-in export (FILE) that\n"
    "               no assertion of ours explains, and exit 1 if there is one\n"
    "               ('ringfence audit reconcile --help': the fields it reads)\n"
    "Exit status: 0 ok, 1 failure (verification names the first leaf or tree\n"
    "head that does not check), 2 usage.\n";

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v = x;
	return 0;
}

/* An audit key id: 64 hex digits, kept in lower case. */
static int
parse_key_id(const char *s, char out[65])
{
	size_t i;

	if (strlen(s) != 64)
		return -1;
	for (i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f') ||
			(s[i] >= 'A' && s[i] <= 'F')))
			return -1;
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a'
							   : s[i]);
	}
	out[64] = '\0';
	return 0;
}

static void
print_hash_line(const char *label, const uint8_t h[RF_HASH_LEN])
{
	char hex[2 * RF_HASH_LEN + 1];

	rf_hex(h, RF_HASH_LEN, hex);
	printf("%s %s\n", label, hex);
}

static json_t *
hex_json(const uint8_t *h, size_t len)
{
	char hex[2 * RF_STH_SIG_MAX + 1];

	rf_hex(h, len, hex);
	return json_string(hex);
}

static json_t *
proof_json(uint8_t (*proof)[RF_HASH_LEN], size_t plen)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < plen; i++)
		json_array_append_new(a, hex_json(proof[i], RF_HASH_LEN));
	return a;
}

static int
do_sth(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_audit_sth_head h;
	char hex[2 * RF_HASH_LEN + 1];
	int r;

	if (argc != 1)
		return cli_usage("audit", "sth takes no arguments");
	(void)argv;
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT | CLI_KEYS)) != 0 ||
	    (r = rf_audit_sth(cli->audit, cli->keys, &cli->who, &h)) != 0)
		return cli_fail(r);
	if (cli->json)
		return cli_json_print(json_pack("{s:I, s:I, s:o, s:s, s:o}",
		    "size", (json_int_t)h.size, "time", (json_int_t)h.time,
		    "root", hex_json(h.root, RF_HASH_LEN), "key_id", h.key_id,
		    "sig", hex_json(h.sig, h.siglen)));
	rf_hex(h.root, RF_HASH_LEN, hex);
	printf("tree head: size %" PRIu64 ", time %" PRId64 ", root %s\n",
	    h.size, h.time, hex);
	return EXIT_OK;
}

static int
do_prove(struct rf_cli *cli, int argc, char **argv)
{
	uint8_t leaf[RF_HASH_LEN], root[RF_HASH_LEN];
	uint8_t(*proof)[RF_HASH_LEN] = NULL;
	uint64_t index = 0, size = 0;
	size_t plen = 0, i;
	int have_leaf = 0, r, ret;

	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--leaf") == 0 && i + 1 < (size_t)argc) {
			if (parse_u64(argv[++i], &index) != 0)
				return cli_usage(
				    "audit", "--leaf needs a leaf index");
			have_leaf = 1;
		} else if (strcmp(argv[i], "--size") == 0 &&
		    i + 1 < (size_t)argc) {
			if (parse_u64(argv[++i], &size) != 0 || size == 0)
				return cli_usage("audit",
				    "--size needs a tree size above 0");
		} else
			return cli_usage("audit",
			    "unknown or incomplete option '%s'", argv[i]);
	}
	if (!have_leaf)
		return cli_usage("audit", "prove needs --leaf N");
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT)) != 0 ||
	    (r = rf_audit_prove_inclusion(
		 cli->audit, index, size, leaf, root, &proof, &plen)) != 0)
		return cli_fail(r);
	if (size == 0 && (r = rf_audit_size(cli->audit, &size)) != 0) {
		free(proof);
		return cli_fail(r);
	}
	/* Never print a proof that does not check. */
	if ((r = rf_merkle_verify_inclusion(index, size, leaf,
		 (const uint8_t(*)[RF_HASH_LEN])proof, plen, root)) != 0) {
		free(proof);
		return cli_fail(rf_err_set(
		    r, "generated proof does not verify (internal error)"));
	}
	if (cli->json) {
		ret = cli_json_print(json_pack("{s:I, s:I, s:o, s:o, s:o}",
		    "index", (json_int_t)index, "size", (json_int_t)size,
		    "leaf_hash", hex_json(leaf, RF_HASH_LEN), "root",
		    hex_json(root, RF_HASH_LEN), "proof",
		    proof_json(proof, plen)));
		free(proof);
		return ret;
	}
	printf("leaf %" PRIu64 "\nsize %" PRIu64 "\n", index, size);
	print_hash_line("leaf_hash", leaf);
	print_hash_line("root", root);
	for (i = 0; i < plen; i++)
		print_hash_line("proof", proof[i]);
	free(proof);
	return EXIT_OK;
}

static int
do_consistency(struct rf_cli *cli, int argc, char **argv)
{
	uint8_t r1[RF_HASH_LEN], r2[RF_HASH_LEN];
	uint8_t(*proof)[RF_HASH_LEN] = NULL;
	uint64_t s1, s2;
	size_t plen = 0, i;
	int r, ret;

	if (argc != 3 || parse_u64(argv[1], &s1) != 0 ||
	    parse_u64(argv[2], &s2) != 0)
		return cli_usage(
		    "audit", "consistency needs OLD and NEW sizes");
	if (s1 == 0 || s2 < s1)
		return cli_usage("audit", "consistency needs 0 < OLD <= NEW");
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT)) != 0 ||
	    (r = rf_audit_prove_consistency(
		 cli->audit, s1, s2, r1, r2, &proof, &plen)) != 0)
		return cli_fail(r);
	if ((r = rf_merkle_verify_consistency(s1, s2, r1, r2,
		 (const uint8_t(*)[RF_HASH_LEN])proof, plen)) != 0) {
		free(proof);
		return cli_fail(rf_err_set(
		    r, "generated proof does not verify (internal error)"));
	}
	if (cli->json) {
		ret = cli_json_print(json_pack("{s:I, s:I, s:o, s:o, s:o}",
		    "size1", (json_int_t)s1, "size2", (json_int_t)s2, "root1",
		    hex_json(r1, RF_HASH_LEN), "root2",
		    hex_json(r2, RF_HASH_LEN), "proof",
		    proof_json(proof, plen)));
		free(proof);
		return ret;
	}
	printf("size1 %" PRIu64 "\nsize2 %" PRIu64 "\n", s1, s2);
	print_hash_line("root1", r1);
	print_hash_line("root2", r2);
	for (i = 0; i < plen; i++)
		print_hash_line("proof", proof[i]);
	free(proof);
	return EXIT_OK;
}

static int
do_verify(struct rf_cli *cli, int argc, char **argv, int checkpoint)
{
	struct rf_audit_report rep;
	const char *cp = NULL;
	char pin[65] = "";
	int i, r;

	if (checkpoint) {
		if (argc != 2)
			return cli_usage("audit", "checkpoint needs FILE");
		cp = argv[1];
	} else
		for (i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--checkpoint") == 0 &&
			    i + 1 < argc)
				cp = argv[++i];
			else if (strcmp(argv[i], "--audit-key-id") == 0 &&
			    i + 1 < argc) {
				if (parse_key_id(argv[++i], pin) != 0)
					return cli_usage("audit",
					    "--audit-key-id needs the 64 hex "
					    "digits `ringfence init` printed");
			} else
				return cli_usage("audit",
				    "unknown or incomplete option '%s'",
				    argv[i]);
		}
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT)) != 0)
		return cli_fail(r);
	r = checkpoint ? rf_audit_checkpoint(cli->audit, cp, &rep)
		       : rf_audit_verify_key(
			     cli->audit, cp, pin[0] != '\0' ? pin : NULL, &rep);
	if (cli->json && (r == 0 || r == RF_ERR_AUDIT_TAMPERED)) {
		cli_json_print(json_pack("{s:b, s:I, s:I, s:s, s:o}", "ok",
		    r == 0, "leaves", (json_int_t)rep.leaves, "sths",
		    (json_int_t)rep.sths, "problem", rep.problem, "index",
		    rep.index == UINT64_MAX
			? json_null()
			: json_integer((json_int_t)rep.index)));
		return r == 0 ? EXIT_OK : EXIT_FAIL;
	}
	if (r != 0)
		return cli_fail(r);
	printf("audit: %" PRIu64 " leaves, %" PRIu64 " tree heads verified\n",
	    rep.leaves, rep.sths);
	if (rep.checkpoint_new)
		printf("audit: checkpoint written to %s\n", cp);
	return EXIT_OK;
}

/* ---- audit watch: the record checked from another machine ---- */

#define WATCH_BODY_MAX 65536

struct watch_http {
	CURL *curl;
	char base[2048]; /* the URL without trailing '/' */
	const char *cacert;
};

struct watch_body {
	uint8_t *p;
	size_t len;
	int too_big;
};

static size_t
watch_body_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct watch_body *b = arg;
	size_t n = size * nmemb;
	uint8_t *np;

	if (n > WATCH_BODY_MAX - b->len) {
		b->too_big = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if ((np = realloc(b->p, b->len + n + 1)) == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	return n;
}

/*
 * GET base + path (rf_audit_fetch_fn): http or https only, no redirects,
 * bounded in time and size, certificates checked (--cacert for a private
 * CA such as ringfence's own), and only a 200 answer is a body.
 */
static int
watch_fetch(void *arg, const char *path, uint8_t **body, size_t *len)
{
	struct watch_http *h = arg;
	struct watch_body b = {NULL, 0, 0};
	char url[2200], err[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;
	int r = RF_ERR_IO;

	*body = NULL;
	*len = 0;
	snprintf(url, sizeof(url), "%s%s", h->base, path);
	curl_easy_reset(h->curl);
	if (curl_easy_setopt(h->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, 10L) !=
		CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 30L) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_USERAGENT,
		"ringfence-audit-watch") != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, err) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, watch_body_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
	    (h->cacert != NULL &&
		curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->cacert) !=
		    CURLE_OK)) {
		r = rf_err_set(RF_ERR_INTERNAL, "libcurl refused an option");
		goto out;
	}
	rc = curl_easy_perform(h->curl);
	if (b.too_big) {
		r = rf_err_set(RF_ERR_TOO_LARGE,
		    "%s: the answer is over %d bytes", url, WATCH_BODY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		r = rf_err_set(RF_ERR_IO, "cannot fetch %s: %s", url,
		    err[0] != '\0' ? err : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		r = rf_err_set(RF_ERR_IO, "%s answered HTTP %ld%s", url, code,
		    code == 404 ? " (no tree head signed yet, or not a "
				  "ringfence server)"
				: "");
		goto out;
	}
	*body = b.p; /* owned by the caller */
	*len = b.len;
	b.p = NULL;
	r = 0;
out:
	free(b.p);
	return r;
}

static int
do_watch(int argc, char **argv)
{
	struct rf_audit_watch w;
	struct watch_http h;
	struct stat sb;
	const char *url = NULL, *cp = NULL;
	char pin[65] = "", cp_key[65] = "";
	uint8_t *buf = NULL;
	size_t len = 0, ulen;
	int i, r, first, had;

	memset(&h, 0, sizeof(h));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc)
			cp = argv[++i];
		else if (strcmp(argv[i], "--audit-key-id") == 0 &&
		    i + 1 < argc) {
			if (parse_key_id(argv[++i], pin) != 0)
				return cli_usage("audit",
				    "--audit-key-id needs the 64 hex digits "
				    "`ringfence init` printed");
		} else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc)
			h.cacert = argv[++i];
		else if (argv[i][0] != '-' && url == NULL)
			url = argv[i];
		else
			return cli_usage("audit",
			    "unknown or incomplete option '%s'", argv[i]);
	}
	if (url == NULL || cp == NULL)
		return cli_usage(
		    "audit", "watch needs URL and --checkpoint FILE");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return cli_usage("audit",
		    "watch needs an http:// or https:// URL, not '%s'", url);
	if ((ulen = strlen(url)) >= sizeof(h.base))
		return cli_usage("audit", "URL too long");
	memcpy(h.base, url, ulen + 1);
	while (ulen > 0 && h.base[ulen - 1] == '/')
		h.base[--ulen] = '\0';
	memset(&w, 0, sizeof(w));
	/* The checkpoint kept on this machine, if any. */
	if (stat(cp, &sb) == 0) {
		if ((r = rf_read_file(cp, 4096, &buf, &len)) != 0)
			return cli_fail(r);
		r = rf_audit_checkpoint_parse_key(
		    buf, len, &w.size, w.root, cp_key);
		free(buf);
		if (r != 0)
			return cli_fail(rf_err_set(RF_ERR_MALFORMED,
			    "%s is not an audit checkpoint: restore it, or "
			    "remove it to start again",
			    cp));
		w.have = 1;
	} else if (errno != ENOENT)
		return cli_fail(rf_err_set(
		    RF_ERR_IO, "cannot read %s: %s", cp, strerror(errno)));
	/* The key given now wins (a new audit key after rotation); else the
	 * checkpoint's; else the first one served is trusted and pinned. */
	snprintf(w.key_id, sizeof(w.key_id), "%s", pin[0] ? pin : cp_key);
	first = w.key_id[0] == '\0';
	had = w.have;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (h.curl = curl_easy_init()) == NULL)
		return cli_fail(
		    rf_err_set(RF_ERR_INTERNAL, "libcurl cannot start"));
	r = rf_audit_watch_step(&w, watch_fetch, &h);
	curl_easy_cleanup(h.curl);
	curl_global_cleanup();
	if (r != 0)
		return cli_fail(r);
	if ((r = rf_audit_checkpoint_write(cp, w.size, w.root, w.key_id)) != 0)
		return cli_fail(r);
	if (first)
		fprintf(stderr,
		    "audit watch: no key id pinned: trusting audit key %s from "
		    "now on (compare it with the one `ringfence init` "
		    "printed)\n",
		    w.key_id);
	if (had)
		printf("audit watch: tree head at size %" PRIu64
		       " (time %" PRId64 ") verified, %" PRIu64
		       " leaves since the checkpoint at "
		       "size %" PRIu64 "\n",
		    w.size, w.time, w.grew, w.prev_size);
	else
		printf("audit watch: tree head at size %" PRIu64
		       " (time %" PRId64 ") verified, checkpoint %s started\n",
		    w.size, w.time, cp);
	return EXIT_OK;
}

static int
do_export(struct rf_cli *cli, int argc, char **argv)
{
	const char *out = NULL;
	FILE *f = stdout;
	int i, r;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else
			return cli_usage("audit",
			    "unknown or incomplete option '%s'", argv[i]);
	}
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT)) != 0)
		return cli_fail(r);
	if (out != NULL && (f = fopen(out, "w")) == NULL)
		return cli_fail(rf_err_set(
		    RF_ERR_IO, "cannot write %s: %s", out, strerror(errno)));
	r = rf_audit_export(cli->audit, f);
	if (out != NULL && fclose(f) != 0 && r == 0)
		r = rf_err_set(
		    RF_ERR_IO, "cannot write %s: %s", out, strerror(errno));
	if (r != 0)
		return cli_fail(r);
	return EXIT_OK;
}

struct search_out {
	int json;
	size_t n;
	const char *type; /* NULL: every type */
	size_t limit;	  /* with type: leaves of that type; 0: all */
};

static int
search_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct search_out *s = arg;
	json_t *o, *line;
	char *txt;
	size_t i;

	/* The store's index has no type: the type is filtered here, and
	 * the limit counts what matched. */
	if (s->type != NULL &&
	    (l->type == NULL || strcmp(l->type, s->type) != 0))
		return 0;
	if (s->limit != 0 && s->n == s->limit)
		return 1; /* stop */
	s->n++;
	if (!s->json) {
		/* Columns then the event; nothing unprintable reaches the
		 * terminal (leaf data is ASCII unless tampered with). */
		printf("%" PRIu64 " %" PRId64 " ", l->index, l->time);
		for (i = 0; i < l->len; i++)
			putchar(l->data[i] >= 0x20 && l->data[i] < 0x7f
				? l->data[i]
				: '?');
		putchar('\n');
		return 0;
	}
	/* The leaf data is canonical JSON: embed it as an object. */
	o = json_loadb((const char *)l->data, l->len, 0, NULL);
	line = json_pack("{s:I, s:o}", "index", (json_int_t)l->index, "event",
	    o != NULL ? o : json_null());
	txt = line != NULL ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS)
			   : NULL;
	json_decref(line);
	if (txt == NULL)
		return RF_ERR_ALLOC;
	printf("%s\n", txt);
	free(txt);
	return 0;
}

static int
do_search(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_audit_query q;
	struct search_out s = {cli->json, 0, NULL, 0};
	uint64_t v;
	int i, r;

	memset(&q, 0, sizeof(q));
	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			return cli_usage("audit",
			    "unknown or incomplete option '%s'", argv[i]);
		if (strcmp(argv[i], "--key") == 0)
			q.key_id = argv[++i];
		else if (strcmp(argv[i], "--tenant") == 0)
			q.tenant = argv[++i];
		else if (strcmp(argv[i], "--type") == 0)
			s.type = argv[++i];
		else if (strcmp(argv[i], "--since") == 0) {
			if (cli_parse_time(argv[++i], &q.since) != 0)
				return cli_usage("audit", "bad --since time");
		} else if (strcmp(argv[i], "--until") == 0) {
			if (cli_parse_time(argv[++i], &q.until) != 0)
				return cli_usage("audit", "bad --until time");
		} else if (strcmp(argv[i], "--limit") == 0) {
			if (parse_u64(argv[++i], &v) != 0)
				return cli_usage("audit", "bad --limit");
			q.limit = (size_t)v;
		} else
			return cli_usage(
			    "audit", "unknown option '%s'", argv[i]);
	}
	if (s.type != NULL) {
		s.limit = q.limit;
		q.limit = 0;
	}
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT)) != 0)
		return cli_fail(r);
	if ((r = rf_audit_search(cli->audit, &q, search_fn, &s)) < 0)
		return cli_fail(r);
	if (!cli->json)
		fprintf(stderr, "audit: %zu leaves found\n", s.n);
	return EXIT_OK;
}

int
cmd_audit(struct rf_cli *cli, int argc, char **argv)
{
	const char *sub;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(audit_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	/* reconcile has a help of its own: the fields of the export. */
	if (cli_wants_help(argc, argv) && strcmp(argv[1], "reconcile") != 0) {
		fputs(audit_help, stdout);
		return EXIT_OK;
	}
	sub = argv[1];
	argc--;
	argv++;
	if (strcmp(sub, "sth") == 0)
		return do_sth(cli, argc, argv);
	if (strcmp(sub, "prove") == 0)
		return do_prove(cli, argc, argv);
	if (strcmp(sub, "consistency") == 0)
		return do_consistency(cli, argc, argv);
	if (strcmp(sub, "verify") == 0)
		return do_verify(cli, argc, argv, 0);
	if (strcmp(sub, "checkpoint") == 0)
		return do_verify(cli, argc, argv, 1);
	if (strcmp(sub, "watch") == 0)
		return do_watch(argc, argv);
	if (strcmp(sub, "export") == 0)
		return do_export(cli, argc, argv);
	if (strcmp(sub, "search") == 0)
		return do_search(cli, argc, argv);
	if (strcmp(sub, "reconcile") == 0)
		return cmd_audit_reconcile(cli, argc, argv);
	return cli_usage("audit", "unknown subcommand '%s'", sub);
}
