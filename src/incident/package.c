/*
 * package.c: the re-establishment package of each tenant (docs/incident.md,
 * "package").
 *
 * Files are written under directory descriptors: the output folder is
 * opened once, each tenant and connection folder is made and opened
 * relative to it with O_NOFOLLOW, names made only of dots or starting with
 * a dot are refused, and each file is an O_EXCL|O_NOFOLLOW temporary,
 * fsync'd, renamed into place, and its folder fsync'd. A tenant or
 * connection name cannot leave the output folder, and a symbolic link
 * planted there is not followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "store/store.h"
#include "store/store_connector.h"
#include "store/store_incident.h"

/* A folder or file name from the store: one path component, not hidden. */
static int
name_check(const char *what, const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL ||
	    strlen(name) > 128)
		return rf_err_set(RF_ERR_ARG,
		    "%s name \"%.80s\" cannot be a folder name (empty, "
		    "starting with '.', or with '/'): rename it",
		    what, name);
	return 0;
}

/* The output folder (made if missing, parents too), opened. */
static int
open_out(const char *dir, int *fd)
{
	char buf[2048], *p;

	*fd = -1;
	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return rf_err_set(RF_ERR_ARG, "path too long: %s", dir);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return rf_err_set(RF_ERR_IO, "cannot create %s: %s",
			    buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
	if ((*fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return rf_err_set(
		    RF_ERR_IO, "cannot open %s: %s", buf, strerror(errno));
	return 0;
}

/* Folder name inside dirfd, made if missing, opened without following. */
static int
subdir_at(int dirfd, const char *what, const char *name, int *fd)
{
	int r;

	*fd = -1;
	if ((r = name_check(what, name)) != 0)
		return r;
	if (mkdirat(dirfd, name, 0755) == 0) {
		if (fsync(dirfd) != 0)
			return rf_err_set(RF_ERR_IO,
			    "cannot sync the folder of %s: %s", name,
			    strerror(errno));
	} else if (errno != EEXIST) {
		return rf_err_set(RF_ERR_IO, "cannot create folder %s: %s",
		    name, strerror(errno));
	}
	if ((*fd = openat(dirfd, name,
		 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return rf_err_set(RF_ERR_IO,
		    "cannot open folder %s (%s): a link or a file is in the "
		    "way",
		    name, strerror(errno));
	return 0;
}

/* One file in dirfd: an exclusive temporary, fsync, rename. */
static int
put_at(int dirfd, const char *name, const void *data, size_t len)
{
	char tmp[160];
	uint8_t rnd[8];
	char hex[17];
	const uint8_t *p = data;
	size_t off = 0;
	ssize_t w;
	int fd, r = 0;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return rf_err_set(RF_ERR_INTERNAL, "no random bytes");
	rf_hex(rnd, sizeof(rnd), hex);
	snprintf(tmp, sizeof(tmp), ".%s.%s.tmp", name, hex);
	if ((fd = openat(dirfd, tmp,
		 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) <
	    0)
		return rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
	while (off < len) {
		if ((w = write(fd, p + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			r = rf_err_set(RF_ERR_IO, "cannot write %s: %s", name,
			    strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (r == 0 && fsync(fd) != 0)
		r = rf_err_set(
		    RF_ERR_IO, "cannot sync %s: %s", name, strerror(errno));
	if (close(fd) != 0 && r == 0)
		r = rf_err_set(
		    RF_ERR_IO, "cannot write %s: %s", name, strerror(errno));
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
		r = rf_err_set(RF_ERR_IO, "cannot put %s in place: %s", name,
		    strerror(errno));
	if (r != 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

static int
put_str(int dirfd, const char *name, const char *s)
{
	return put_at(dirfd, name, s, strlen(s));
}

/* Upper-case hex SHA-1 of the DER: the thumbprint people compare. */
static void
sha1_hex_upper(const uint8_t *der, size_t len, char out[41])
{
	uint8_t md[20];
	size_t i;

	EVP_Digest(der, len, md, NULL, EVP_sha1(), NULL);
	rf_hex(md, sizeof(md), out);
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] >= 'a' && out[i] <= 'f')
			out[i] = (char)(out[i] - 32);
}

/* PEM of a certificate, malloc'd. */
static char *
pem_of(const uint8_t *der, size_t len)
{
	char *pem;

	if ((pem = malloc(rf_ca_pem_len(len) + 1)) == NULL)
		return NULL;
	pem[rf_ca_pem_write(der, len, pem)] = '\0';
	return pem;
}

/* The chain above a certificate: its issuing CA, then the root. */
static char *
chain_pem(const struct rf_incident_ctx *c, const char *issuer)
{
	const char *names[2] = {issuer, "root"};
	char *out = NULL, *pem, *n;
	uint8_t *der = NULL;
	size_t have = 0, l;
	int i, dl;
	X509 *x;

	if ((out = calloc(1, 1)) == NULL)
		return NULL;
	for (i = 0; i < 2; i++) {
		if (i == 1 && strcmp(issuer, "root") == 0)
			break;
		if ((x = rf_ca_cert(c->ca, names[i])) == NULL ||
		    (dl = i2d_X509(x, &der)) <= 0)
			continue;
		pem = pem_of(der, (size_t)dl);
		OPENSSL_free(der);
		der = NULL;
		if (pem == NULL)
			goto fail;
		l = strlen(pem);
		if ((n = realloc(out, have + l + 1)) == NULL) {
			free(pem);
			goto fail;
		}
		out = n;
		memcpy(out + have, pem, l + 1);
		have += l;
		free(pem);
	}
	return out;
fail:
	free(out);
	return NULL;
}

/* One keyCredential of a Microsoft Graph application (new certificate). */
static json_t *
key_credential(const struct rf_item_rec *it, const struct rf_cert_rec *nc)
{
	char b64[8192 * 2], tpb64[40], start[32], end[32], name[256];
	uint8_t md[20];

	if (nc->derlen > 12000) /* base64 fits b64 */
		return NULL;
	EVP_EncodeBlock((unsigned char *)b64, nc->der, (int)nc->derlen);
	EVP_Digest(nc->der, nc->derlen, md, NULL, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)tpb64, md, sizeof(md));
	/* RFC 3339 UTC, as Graph's DateTimeOffset takes it. */
	rf_iso_time(nc->not_before, start);
	rf_iso_time(nc->not_after, end);
	snprintf(name, sizeof(name), "ringfence %s/%s serial %s", it->tenant,
	    it->name, nc->serial);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type",
	    "AsymmetricX509Cert", "usage", "Verify", "key", b64, "displayName",
	    name, "customKeyIdentifier", tpb64, "startDateTime", start,
	    "endDateTime", end);
}

static int
write_json(int dirfd, const char *name, json_t *j)
{
	char *s;
	int r;

	if ((s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return RF_ERR_ALLOC;
	r = put_str(dirfd, name, s);
	free(s);
	return r;
}

/*
 * The body that merges a tenant's pinned connections of one application:
 * an entra registration's client id (a GUID) names it; the connections
 * whose application ringfence does not know share the tenant's.
 */
static void
merged_name(const char *client_id, char out[80])
{
	if (client_id != NULL && client_id[0] != '\0')
		snprintf(
		    out, 80, "graph-keyCredentials-app-%.36s.json", client_id);
	else
		snprintf(out, 80, "graph-keyCredentials-tenant.json");
}

/*
 * The steps of a pinned relying party. An entra connection's application
 * is named by its client id (Graph's alternate key appId), on the app
 * registration or on the vendor application's service principal in the
 * customer's directory; another's by its object id, which the admin looks
 * up (its client id in applications/{id} fails).
 */
static int
pinned_steps(const char *client_id, char **out)
{
	char where[512], merged[80];

	merged_name(client_id, merged);
	if (client_id != NULL && client_id[0] != '\0')
		snprintf(where, sizeof(where),
		    "https://graph.microsoft.com/v1.0/"
		    "applications(appId='%s')\n"
		    "     (the app registration in your directory) or, where "
		    "the credential is\n"
		    "     on the vendor application's service principal in "
		    "your directory,\n"
		    "     PATCH https://graph.microsoft.com/v1.0/"
		    "servicePrincipals(appId='%s')\n",
		    client_id, client_id);
	else
		snprintf(where, sizeof(where),
		    "https://graph.microsoft.com/v1.0/applications/{id}\n"
		    "     ({id} is the application's object id, not its "
		    "application (client) id)\n");
	if (asprintf(out,
		"What to do (pinned relying party, e.g. Microsoft Entra ID):\n"
		"  1. Register the new certificate with the application and "
		"remove\n"
		"     the old one. For Entra ID: PATCH %s"
		"     with graph-keyCredentials.json as the body.\n"
		"     WARNING: this PATCH REPLACES THE WHOLE keyCredentials "
		"collection\n"
		"     of the application. Any credential not in the body is "
		"removed.\n"
		"     If other connections of this tenant use the same "
		"application,\n"
		"     use ../%s instead: it holds the\n"
		"     new certificates of every pinned connection of the "
		"tenant%s.\n"
		"     Add any other certificate the application must keep.\n"
		"  2. Remove the old thumbprint wherever else it is "
		"registered.\n"
		"  3. Trust ca-chain.pem if your side checks the issuer.\n"
		"  4. Tell your vendor contact the connection works again.\n",
		where, merged,
		client_id != NULL && client_id[0] != '\0'
		    ? "\n     registered with this application (client id)"
		    : "\n     whose application ringfence does not know") < 0) {
		*out = NULL;
		return RF_ERR_ALLOC;
	}
	return 0;
}

static const char ocsp_steps[] =
    "What to do (relying party that checks revocation):\n"
    "  1. Nothing to remove: the old certificate is revoked and your\n"
    "     relying party already rejects it (OCSP/CRL).\n";

/* Step 2 of ocsp_steps: the old key was in the token, or the connector's. */
static const char ocsp_install[] =
    "  2. Install the new certificate in the connector; trust\n"
    "     ca-chain.pem if the issuing CA changed.\n";
static const char ocsp_chain[] =
    "  2. Trust ca-chain.pem if the issuing CA changed.\n";

/* After the steps, when the old key is the connector's own (a CSR). */
static const char connector_key_steps[] =
    "\nThe old key is your connector's own (the old certificate was issued\n"
    "from its certificate request, CSR):\n"
    "  - The connector must stop using the old key: delete it on the\n"
    "    connector host. ringfence never held it, so it could not disable\n"
    "    or destroy it; a relying party that checks no revocation accepts\n"
    "    it until the old certificate is removed there.\n"
    "  - The new key is not in this package and not on the connector: it\n"
    "    was made in ringfence's token and never leaves it; ringfence\n"
    "    signs with it where the connection goes through ringfence (an\n"
    "    Entra connection's client assertions, for the connector bound to\n"
    "    it). There is no key file to install.\n";

/* After those, when no assertion of ringfence's uses the new key (the
 * connection is not entra): what uses the certificate may need a key of
 * its own again. */
static const char own_key_steps[] =
    "  - If what uses this certificate must hold its key itself (a TLS\n"
    "    server, a client that signs without ringfence), make a new key\n"
    "    there and send its certificate request (CSR) to your vendor,\n"
    "    who issues its certificate from it ('ringfence issue --csr'),\n"
    "    replacing the one in this package.\n";

/*
 * What became of the old credential's key, for the README; *connector is
 * 1 when the connector holds it (a CSR credential: no key of ours, which
 * contain could neither disable nor destroy).
 */
static int
old_key_text(const struct rf_incident_ctx *c, const struct rf_cert_rec *oc,
    char out[256], int *connector)
{
	struct rf_key_rec kr;
	int r;

	*connector = 0;
	if ((r = rf_store_key_get(c->st, oc->key_id, &kr)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		*connector = 1;
		snprintf(out, 256,
		    "Its key is your connector's own, not in ringfence's "
		    "token: it is\nnot destroyed, and the connector must stop "
		    "using it (see below).");
		return 0;
	}
	if (r != 0)
		return r;
	if (strcmp(kr.state, "destroyed") == 0)
		snprintf(out, 256,
		    "Its key, held in ringfence's token, is destroyed.");
	else if (strcmp(kr.state, "disabled") == 0 ||
	    strcmp(kr.state, "destroying") == 0)
		snprintf(out, 256,
		    "Its key, held in ringfence's token, is disabled (it signs "
		    "nothing)\nand is being destroyed there.");
	else
		snprintf(out, 256,
		    "Its key, held in ringfence's token, is being taken out "
		    "of service\n(disabled, then destroyed).");
	return 0;
}

/* cred into the tenant's array of application app ("": unknown). */
static int
merge_cred(json_t *tenant_creds, const char *app, json_t *cred)
{
	json_t *a = json_object_get(tenant_creds, app);

	if (a == NULL) {
		if ((a = json_array()) == NULL ||
		    json_object_set_new(tenant_creds, app, a) != 0)
			return -1;
	}
	return json_array_append(a, cred);
}

static int
package_one(const struct rf_incident_ctx *c, const struct rf_item_rec *it,
    int tfd, json_t *tenant_creds)
{
	struct rf_cert_rec nc, oc;
	struct rf_entra_rec reg;
	char old_tp[41], new_tp[41], nb[32], na[32], ids[192] = "", key[256];
	char *pem = NULL, *chain = NULL, *readme = NULL, *tp = NULL;
	char *steps = NULL;
	json_t *body = NULL, *cred = NULL;
	const char *step2 = "";
	int cfd = -1, r, pinned = strcmp(it->rp, "pinned") == 0, theirs = 0;

	memset(&nc, 0, sizeof(nc));
	memset(&oc, 0, sizeof(oc));
	/* Its new credential is there (rf_incident_package checked). */
	if ((r = rf_store_cert_get(c->st, it->new_serial, &nc)) != 0 ||
	    (r = rf_store_cert_get(c->st, it->old_serial, &oc)) != 0 ||
	    (r = old_key_text(c, &oc, key, &theirs)) != 0 ||
	    (r = subdir_at(tfd, "connection", it->name, &cfd)) != 0)
		goto out;
	if ((pem = pem_of(nc.der, nc.derlen)) == NULL ||
	    (chain = chain_pem(c, nc.issuer)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/*
	 * An entra connection: the admin finds the application by the
	 * customer's directory (tenant) id and the application (client) id,
	 * not by ringfence's tenant name.
	 */
	r = rf_store_entra_get(c->st, it->tenant, it->name, &reg);
	if (r == 0)
		snprintf(ids, sizeof(ids),
		    "Entra tenant id:         %s (the customer's directory)\n"
		    "application (client) id: %s\n",
		    reg.tenant_id, reg.client_id);
	else if (r == RF_ERR_NOT_FOUND)
		rf_err_clear();
	else
		goto out;
	if (!pinned)
		step2 = theirs ? ocsp_chain : ocsp_install;
	else if ((r = pinned_steps(
		      ids[0] != '\0' ? reg.client_id : NULL, &steps)) != 0)
		goto out;
	sha1_hex_upper(oc.der, oc.derlen, old_tp);
	sha1_hex_upper(nc.der, nc.derlen, new_tp);
	rf_iso_time(nc.not_before, nb);
	rf_iso_time(nc.not_after, na);
	if (asprintf(&readme,
		"ringfence re-establishment package\n"
		"tenant:        %s\nconnection:    %s\nrelying party: %s\n"
		"%s\n"
		"Your connection's credential was replaced because of "
		"incident %lld.\n"
		"The old certificate (serial %s) is revoked "
		"(keyCompromise).\n%s\n\n"
		"new certificate: certificate.pem / certificate.der\n"
		"  serial:    %s\n  issuer:    %s (ca-chain.pem: issuing CA "
		"and root)\n"
		"  valid:     %s to %s\n"
		"  x5t:       %s\n  x5t#S256:  %s\n"
		"  SHA-1 thumbprint: %s\n\n"
		"old certificate to remove:\n"
		"  x5t:       %s\n  SHA-1 thumbprint: %s\n\n%s%s%s%s",
		it->tenant, it->name, it->rp, ids, (long long)it->incident,
		oc.serial, key, nc.serial, nc.issuer, nb, na, nc.x5t, nc.x5t256,
		new_tp, oc.x5t, old_tp, pinned ? steps : ocsp_steps, step2,
		theirs ? connector_key_steps : "",
		theirs && ids[0] == '\0' ? own_key_steps : "") < 0) {
		readme = NULL;
		r = RF_ERR_ALLOC;
		goto out;
	}
	if (asprintf(&tp, "x5t: %s\nx5t#S256: %s\nold x5t: %s\n", nc.x5t,
		nc.x5t256, oc.x5t) < 0) {
		tp = NULL;
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = put_str(cfd, "certificate.pem", pem)) != 0 ||
	    (r = put_at(cfd, "certificate.der", nc.der, nc.derlen)) != 0 ||
	    (r = put_str(cfd, "ca-chain.pem", chain)) != 0 ||
	    (r = put_str(cfd, "thumbprints.txt", tp)) != 0 ||
	    (r = put_str(cfd, "README.txt", readme)) != 0)
		goto out;
	if (pinned) {
		/*
		 * Microsoft Graph: PATCH /applications/{id} with
		 * keyCredentials replaces the whole collection, so the body
		 * lists the new certificate only (the old one goes).
		 */
		if ((cred = key_credential(it, &nc)) == NULL ||
		    (body = json_pack("{s:[O]}", "keyCredentials", cred)) ==
			NULL ||
		    merge_cred(tenant_creds,
			ids[0] != '\0' ? reg.client_id : "", cred) != 0) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		if ((r = write_json(cfd, "graph-keyCredentials.json", body)) !=
		    0)
			goto out;
	}
	if (fsync(cfd) != 0) {
		r = rf_err_set(RF_ERR_IO, "cannot sync the folder of %s/%s: %s",
		    it->tenant, it->name, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (cfd >= 0)
		close(cfd);
	json_decref(cred);
	json_decref(body);
	free(tp);
	free(steps);
	free(readme);
	free(chain);
	free(pem);
	rf_cert_rec_clear(&nc);
	rf_cert_rec_clear(&oc);
	return r;
}

/* The pinned connections of one tenant, merged by application. */
static int
tenant_finish(int tfd, json_t *apps)
{
	const char *app;
	json_t *creds, *body;
	char name[80];
	int r = 0;

	if (json_object_size(apps) == 0)
		return 0;
	json_object_foreach(apps, app, creds)
	{
		if ((body = json_pack("{s:O}", "keyCredentials", creds)) ==
		    NULL)
			return RF_ERR_ALLOC;
		merged_name(app, name);
		r = write_json(tfd, name, body);
		json_decref(body);
		if (r != 0)
			return r;
	}
	if (fsync(tfd) != 0)
		r = rf_err_set(RF_ERR_IO, "cannot sync a tenant folder: %s",
		    strerror(errno));
	return r;
}

int
rf_incident_package(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *dir, size_t *written)
{
	struct rf_incident_rec inc;
	struct item_vec iv = {0};
	json_t *creds = NULL;
	const char *cur = NULL;
	size_t i;
	int r, dfd = -1, tfd = -1;

	*written = 0;
	if ((r = rf_incident_load(c, id, &inc)) != 0 ||
	    (r = rf_incident_load_items(c, id, tenant, NULL, &iv)) != 0)
		goto out;
	if (iv.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "tenant %s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", (long long)id);
		goto out;
	}
	/* Refused before anything is written: no folder is left behind. */
	for (i = 0; i < iv.n; i++)
		if (strcmp(iv.v[i].state, "waived") != 0 &&
		    iv.v[i].new_serial[0] == '\0') {
			r = rf_err_set(RF_ERR_STATE,
			    "tenant %s has no new credential yet: run "
			    "'ringfence incident contain %lld' first",
			    iv.v[i].tenant, (long long)id);
			goto out;
		}
	if ((r = open_out(dir, &dfd)) != 0)
		goto out;
	/* Items come in tenant order: one tenant folder at a time. */
	for (i = 0; i < iv.n; i++) {
		const struct rf_item_rec *it = &iv.v[i];

		if (strcmp(it->state, "waived") == 0)
			continue;
		if (cur == NULL || strcmp(cur, it->tenant) != 0) {
			if (tfd >= 0) {
				r = tenant_finish(tfd, creds);
				close(tfd);
				tfd = -1;
				if (r != 0)
					goto out;
			}
			json_decref(creds);
			if ((creds = json_object()) == NULL) {
				r = RF_ERR_ALLOC;
				goto out;
			}
			if ((r = subdir_at(dfd, "tenant", it->tenant, &tfd)) !=
			    0)
				goto out;
			cur = it->tenant;
		}
		if ((r = package_one(c, it, tfd, creds)) != 0)
			goto out;
		(*written)++;
	}
	if (tfd >= 0 && (r = tenant_finish(tfd, creds)) != 0)
		goto out;
	if (fsync(dfd) != 0) {
		r = rf_err_set(
		    RF_ERR_IO, "cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (tfd >= 0)
		close(tfd);
	if (dfd >= 0)
		close(dfd);
	json_decref(creds);
	free(iv.v);
	return r;
}
