/*
 * Conformance: every Merkle proof vector under $RF_VECTORS/merkle
 * (transparency-dev/merkle testdata) in one data-driven loop, plus the
 * roots of the trees of size 0..8 listed in its README.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "testutil.h"

#include "audit/audit.h"

#define MAX_PROOF 80

static size_t n_incl, n_cons, n_fail;

/* Strict standard base64 (with padding); -1 if malformed. */
static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int
b64dec(const char *s, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(s), i, o = 0;
	int v[4], k;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		for (k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == n && k >= 2)
				v[k] = -2;
			else if ((v[k] = b64val((unsigned char)s[i + k])) < 0)
				return -1;
		}
		if (v[2] == -2 && v[3] != -2)
			return -1;
		if (o + 3 > max)
			return -1;
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (v[2] != -2)
			out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (v[3] != -2)
			out[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	*len = o;
	return 0;
}

/*
 * A hash from a vector. Our API takes 32-byte hashes, so a value of
 * another length cannot be passed as is: it is mapped to SHA-256 of a
 * role prefix (leaf hash, root or proof value: 0x02, 0x03, 0x04, which no
 * leaf or node hash uses) and the bytes. Equal inputs of one role stay
 * equal (two equal malformed roots still match), and the result cannot
 * equal a real tree hash or a value of another role, so the verifier sees
 * what a length-checking verifier would.
 */
enum { ROLE_LEAF = 2, ROLE_ROOT = 3, ROLE_PROOF = 4 };

static void
vec_hash(json_t *v, int role, uint8_t out[RF_HASH_LEN])
{
	uint8_t buf[512], tmp[513];
	size_t len = 0;

	assert_true(json_is_string(v));
	assert_int_equal(
	    b64dec(json_string_value(v), buf, sizeof(buf), &len), 0);
	if (len == RF_HASH_LEN) {
		memcpy(out, buf, RF_HASH_LEN);
		return;
	}
	tmp[0] = (uint8_t)role;
	memcpy(tmp + 1, buf, len);
	SHA256(tmp, len + 1, out);
}

static size_t
vec_proof(json_t *p, uint8_t proof[MAX_PROOF][RF_HASH_LEN])
{
	size_t i, n;

	if (json_is_null(p) || p == NULL)
		return 0;
	assert_true(json_is_array(p));
	n = json_array_size(p);
	assert_true(n <= MAX_PROOF);
	for (i = 0; i < n; i++)
		vec_hash(json_array_get(p, i), ROLE_PROOF, proof[i]);
	return n;
}

/*
 * jansson holds integers as long long, and the vectors use 2^64-1: parse
 * numbers as doubles. Every value is either small (exact) or 2^64-1,
 * which rounds to 2^64 and is mapped back to UINT64_MAX.
 */
static uint64_t
vec_u64(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	double d;

	assert_true(json_is_number(v));
	d = json_number_value(v);
	assert_true(d >= 0);
	if (d >= 18446744073709551615.0)
		return UINT64_MAX;
	assert_true(d < 9007199254740992.0);
	return (uint64_t)d;
}

static int
run_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	uint8_t proof[MAX_PROOF][RF_HASH_LEN], a[RF_HASH_LEN], b[RF_HASH_LEN];
	json_error_t jerr;
	json_t *o;
	size_t plen, len = strlen(path);
	int want_err, got_err;

	(void)sb;
	(void)ftw;
	if (type != FTW_F || len < 5 || strcmp(path + len - 5, ".json") != 0)
		return 0;
	o = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
	if (o == NULL) {
		fprintf(stderr, "%s: %s\n", path, jerr.text);
		fail();
	}
	want_err = json_is_true(json_object_get(o, "wantErr"));
	plen = vec_proof(json_object_get(o, "proof"), proof);
	if (strstr(path, "/inclusion/") != NULL) {
		vec_hash(json_object_get(o, "leafHash"), ROLE_LEAF, a);
		vec_hash(json_object_get(o, "root"), ROLE_ROOT, b);
		got_err =
		    rf_merkle_verify_inclusion(vec_u64(o, "leafIdx"),
			vec_u64(o, "treeSize"), a,
			(const uint8_t(*)[RF_HASH_LEN])proof, plen, b) != 0;
		n_incl++;
	} else {
		assert_non_null(strstr(path, "/consistency/"));
		vec_hash(json_object_get(o, "root1"), ROLE_ROOT, a);
		vec_hash(json_object_get(o, "root2"), ROLE_ROOT, b);
		got_err = rf_merkle_verify_consistency(vec_u64(o, "size1"),
			      vec_u64(o, "size2"), a, b,
			      (const uint8_t(*)[RF_HASH_LEN])proof, plen) != 0;
		n_cons++;
	}
	if (got_err != want_err) {
		fprintf(stderr, "FAIL %s (%s): want error %d, got %d\n", path,
		    json_string_value(json_object_get(o, "desc")), want_err,
		    got_err);
		n_fail++;
	}
	json_decref(o);
	return 0;
}

static void
test_vectors(void **state)
{
	const char *dir = getenv("RF_VECTORS");
	char path[4096];

	(void)state;
	if (dir == NULL || *dir == '\0') {
		fprintf(stderr, "RF_VECTORS is not set\n");
		fail();
	}
	snprintf(path, sizeof(path), "%s/merkle", dir);
	n_incl = n_cons = n_fail = 0;
	if (nftw(path, run_one, 16, FTW_PHYS) != 0) {
		fprintf(stderr, "cannot read vectors in %s\n", path);
		fail();
	}
	printf("merkle vectors: %zu inclusion, %zu consistency, %zu failed\n",
	    n_incl, n_cons, n_fail);
	assert_true(n_incl >= 98);
	assert_true(n_cons >= 98);
	assert_int_equal(n_fail, 0);
}

static void
test_roots(void **state)
{
	static const char *inputs[] = {"", "00", "10", "2021", "3031",
	    "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"};
	static const char *roots[] = {
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	};
	uint8_t leaves[8][RF_HASH_LEN], data[32], root[RF_HASH_LEN];
	char hex[2 * RF_HASH_LEN + 1];
	struct rf_merkle_acc acc;
	size_t i, len;

	(void)state;
	rf_merkle_acc_init(&acc);
	for (i = 0; i <= 8; i++) {
		if (i > 0) {
			assert_int_equal(
			    rf_unhex(inputs[i - 1], data, sizeof(data), &len),
			    0);
			rf_merkle_leaf_hash(data, len, leaves[i - 1]);
			rf_merkle_acc_add(&acc, leaves[i - 1]);
		}
		assert_int_equal(
		    rf_merkle_root(
			(const uint8_t(*)[RF_HASH_LEN])leaves, i, root),
		    0);
		rf_hex(root, RF_HASH_LEN, hex);
		assert_string_equal(hex, roots[i]);
		rf_merkle_acc_root(&acc, root);
		rf_hex(root, RF_HASH_LEN, hex);
		assert_string_equal(hex, roots[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_roots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
