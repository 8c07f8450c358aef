/*
 * vmft replication link authentication: see vft_auth.h.
 */
#include "config.h"

#include "vft_auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static const char LABEL_BACKUP[] = "atca-vmft v4 backup proof";
static const char LABEL_PRIMARY[] = "atca-vmft v4 primary proof";
static const char LABEL_KEY_PB[] = "atca-vmft v4 key primary->backup";
static const char LABEL_KEY_BP[] = "atca-vmft v4 key backup->primary";

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

void vft_key_wipe(struct vft_key *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

int vft_auth_nonce(uint8_t out[VFT_NONCE_SIZE])
{
	size_t got = 0;

	while (got < VFT_NONCE_SIZE) {
		ssize_t r = getrandom(out + got, VFT_NONCE_SIZE - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	return 0;
}

/* ---- frame MAC: AES-256-GCM with an empty plaintext (GMAC) ---------------------------- */

void vft_mac_fini(struct vft_mac *m)
{
	if (m->ctx != NULL)
		EVP_CIPHER_CTX_free(m->ctx); /* cleanses the key schedule */
	m->ctx = NULL;
	m->n = 0;
}

static int mac_key(struct vft_mac *m, uint32_t dir, const uint8_t key[32])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	vft_mac_fini(m);
	if (c == NULL)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
		EVP_CIPHER_CTX_free(c);
		return -EIO;
	}
	m->ctx = c;
	m->dir = dir;
	m->n = 0;
	return 0;
}

/* The tag of header bytes 0..31 and the payload, for frame number n. */
static int mac_tag(struct vft_mac *m, const uint8_t hdr[VFT_HDR_SIZE], const struct iovec *iov,
                   int iovcnt, uint8_t tag[VFT_TAG_SIZE])
{
	EVP_CIPHER_CTX *c = m->ctx;
	uint8_t iv[12];
	int ol;

	for (int i = 0; i < 4; i++)
		iv[i] = (uint8_t)(m->dir >> (8 * i));
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(m->n >> (8 * i));
	if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &ol, hdr, VFT_TAG_OFF) != 1)
		return -EIO;
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left > 0) {
			int chunk = left > (1u << 30) ? 1 << 30 : (int)left;

			if (EVP_EncryptUpdate(c, NULL, &ol, p, chunk) != 1)
				return -EIO;
			p += chunk;
			left -= (size_t)chunk;
		}
	}
	if (EVP_EncryptFinal_ex(c, tag, &ol) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, VFT_TAG_SIZE, tag) != 1)
		return -EIO;
	return 0;
}

int vft_mac_seal(struct vft_mac *m, uint8_t hdr[VFT_HDR_SIZE], const struct iovec *iov, int iovcnt)
{
	int rc;

	memset(hdr + VFT_TAG_OFF, 0, VFT_TAG_SIZE);
	if (!vft_mac_on(m))
		return 0;
	rc = mac_tag(m, hdr, iov, iovcnt, hdr + VFT_TAG_OFF);
	if (rc == 0)
		m->n++;
	return rc;
}

int vft_mac_verify(struct vft_mac *m, const uint8_t hdr[VFT_HDR_SIZE], const void *payload,
                   size_t len)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)payload, .iov_len = len};
	uint8_t tag[VFT_TAG_SIZE];

	if (!vft_mac_on(m))
		return 0;
	if (len > 0 && payload == NULL)
		return -EBADMSG;
	if (mac_tag(m, hdr, &iov, len > 0 ? 1 : 0, tag) < 0 ||
	    CRYPTO_memcmp(tag, hdr + VFT_TAG_OFF, VFT_TAG_SIZE) != 0)
		return -EBADMSG;
	m->n++;
	return 0;
}

/* ---- the handshake ------------------------------------------------------------------- */

void vft_auth_init(struct vft_auth *a, const struct vft_key *key, enum vft_role role)
{
	memset(a, 0, sizeof(*a));
	a->key = key;
	a->role = role;
}

void vft_auth_fini(struct vft_auth *a)
{
	vft_mac_fini(&a->tx);
	vft_mac_fini(&a->rx);
	OPENSSL_cleanse(a, sizeof(*a));
}

void vft_auth_set_hello(struct vft_auth *a, const uint8_t hello[VFT_HELLO_SIZE])
{
	memcpy(a->hello, hello, VFT_HELLO_SIZE);
	a->have_hello = true;
}

/* HMAC-SHA256(K, label || u16 version || HELLO payload || nonce_b) */
static int transcript_mac(const struct vft_auth *a, const char *label,
                          const uint8_t nonce_b[VFT_NONCE_SIZE], uint8_t out[32])
{
	uint8_t ver[2] = {(uint8_t)VFT_PROTO_VERSION, (uint8_t)(VFT_PROTO_VERSION >> 8)};
	EVP_MAC *mac;
	EVP_MAC_CTX *c = NULL;
	OSSL_PARAM p[2] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
	                   OSSL_PARAM_construct_end()};
	size_t olen = 0;
	int rc = -EIO;

	if (a->key == NULL || a->key->len < VFT_KEY_MIN || !a->have_hello)
		return -EINVAL;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac != NULL)
		c = EVP_MAC_CTX_new(mac);
	if (c != NULL && EVP_MAC_init(c, a->key->k, a->key->len, p) == 1 &&
	    EVP_MAC_update(c, (const uint8_t *)label, strlen(label)) == 1 &&
	    EVP_MAC_update(c, ver, sizeof(ver)) == 1 &&
	    EVP_MAC_update(c, a->hello, VFT_HELLO_SIZE) == 1 &&
	    EVP_MAC_update(c, nonce_b, VFT_NONCE_SIZE) == 1 &&
	    EVP_MAC_final(c, out, &olen, 32) == 1 && olen == 32)
		rc = 0;
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(mac);
	return rc;
}

int vft_auth_proof(const struct vft_auth *a, enum vft_role role,
                   const uint8_t nonce_b[VFT_NONCE_SIZE], uint8_t out[VFT_PROOF_SIZE])
{
	return transcript_mac(a, role == VFT_ROLE_BACKUP ? LABEL_BACKUP : LABEL_PRIMARY, nonce_b,
	                      out);
}

/* Both directions' frame keys from the transcript. */
static int derive(struct vft_auth *a, const uint8_t nonce_b[VFT_NONCE_SIZE])
{
	uint8_t kpb[32], kbp[32];
	int rc = transcript_mac(a, LABEL_KEY_PB, nonce_b, kpb);

	if (rc == 0)
		rc = transcript_mac(a, LABEL_KEY_BP, nonce_b, kbp);
	if (rc == 0 && a->role == VFT_ROLE_PRIMARY) {
		rc = mac_key(&a->tx, 0, kpb);
		if (rc == 0)
			rc = mac_key(&a->rx, 1, kbp);
	} else if (rc == 0) {
		rc = mac_key(&a->tx, 1, kbp);
		if (rc == 0)
			rc = mac_key(&a->rx, 0, kpb);
	}
	OPENSSL_cleanse(kpb, sizeof(kpb));
	OPENSSL_cleanse(kbp, sizeof(kbp));
	if (rc < 0) {
		vft_mac_fini(&a->tx);
		vft_mac_fini(&a->rx);
	}
	return rc;
}

int vft_auth_backup_challenge(struct vft_auth *a, const uint8_t nonce_b[VFT_NONCE_SIZE],
                              uint8_t out[VFT_AUTH_SIZE])
{
	struct vft_auth_msg m;
	int rc;

	if (a->role != VFT_ROLE_BACKUP)
		return -EINVAL;
	memcpy(a->nonce_b, nonce_b, VFT_NONCE_SIZE);
	a->have_nonce_b = true;
	memcpy(m.nonce, nonce_b, VFT_NONCE_SIZE);
	rc = vft_auth_proof(a, VFT_ROLE_BACKUP, nonce_b, m.proof);
	if (rc == 0)
		rc = derive(a, nonce_b);
	if (rc == 0)
		vft_auth_msg_encode(out, &m);
	OPENSSL_cleanse(&m, sizeof(m));
	return rc;
}

static int check_proof(const struct vft_auth *a, enum vft_role role,
                       const uint8_t nonce_b[VFT_NONCE_SIZE], const uint8_t *proof, char *err,
                       size_t errlen)
{
	uint8_t want[VFT_PROOF_SIZE];
	int rc = vft_auth_proof(a, role, nonce_b, want);

	if (rc == 0 && CRYPTO_memcmp(want, proof, VFT_PROOF_SIZE) != 0) {
		set_err(err, errlen,
		        role == VFT_ROLE_BACKUP
		                ? "wrong proof: the backup does not hold this key"
		                : "wrong proof: the primary does not hold this key");
		rc = -EACCES;
	} else if (rc < 0) {
		set_err(err, errlen, "cannot compute the proof");
	}
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}

int vft_auth_primary_answer(struct vft_auth *a, const uint8_t *msg, size_t len,
                            uint8_t out[VFT_AUTH_SIZE], char *err, size_t errlen)
{
	struct vft_auth_msg in, m;
	int rc;

	if (a->role != VFT_ROLE_PRIMARY || !a->have_hello) {
		set_err(err, errlen, "AUTH out of place");
		return -EBADMSG;
	}
	rc = vft_auth_msg_decode(msg, len, &in, err, errlen);
	if (rc < 0)
		return rc;
	/* the backup echoing our own nonce would be a reflection */
	if (memcmp(in.nonce, a->hello + 104, VFT_NONCE_SIZE) == 0) {
		set_err(err, errlen, "AUTH nonce is the primary's own");
		return -EBADMSG;
	}
	rc = check_proof(a, VFT_ROLE_BACKUP, in.nonce, in.proof, err, errlen);
	if (rc < 0)
		return rc;
	memcpy(a->nonce_b, in.nonce, VFT_NONCE_SIZE);
	a->have_nonce_b = true;
	memcpy(m.nonce, a->hello + 104, VFT_NONCE_SIZE);
	rc = vft_auth_proof(a, VFT_ROLE_PRIMARY, a->nonce_b, m.proof);
	if (rc == 0)
		rc = derive(a, a->nonce_b);
	if (rc < 0) {
		set_err(err, errlen, "cannot derive the session keys");
		return -EIO;
	}
	vft_auth_msg_encode(out, &m);
	a->done = true;
	return 0;
}

int vft_auth_backup_check(struct vft_auth *a, const uint8_t *msg, size_t len, char *err,
                          size_t errlen)
{
	struct vft_auth_msg in;
	int rc;

	if (a->role != VFT_ROLE_BACKUP || !a->have_hello || !a->have_nonce_b) {
		set_err(err, errlen, "AUTH out of place");
		return -EBADMSG;
	}
	rc = vft_auth_msg_decode(msg, len, &in, err, errlen);
	if (rc < 0)
		return rc;
	if (memcmp(in.nonce, a->hello + 104, VFT_NONCE_SIZE) != 0) {
		set_err(err, errlen, "AUTH nonce is not the one its HELLO announced");
		return -EBADMSG;
	}
	rc = check_proof(a, VFT_ROLE_PRIMARY, a->nonce_b, in.proof, err, errlen);
	if (rc == 0)
		a->done = true;
	return rc;
}
