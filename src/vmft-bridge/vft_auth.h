/*
 * vmft replication link authentication (protocol v4): a key shared by the
 * two blades of a pair (vmft.key_file, at least 32 bytes), a mutual
 * challenge-response in the handshake and a MAC on every later frame.
 *
 *   P -> B  HELLO  (untagged) ... flags VFT_HELLO_AUTH, nonce_p (32 random bytes)
 *   B -> P  AUTH   (untagged) nonce_b, proof_b = HMAC-SHA256(K, "atca-vmft v4 backup" ||
 *                                                 u16 version || HELLO payload || nonce_b)
 *   P -> B  AUTH   (tagged)   nonce_p, proof_p = HMAC-SHA256(K, "atca-vmft v4 primary" || ...)
 *   B -> P  WELCOME (tagged), then everything else, tagged both ways
 *
 * The HELLO payload carries the primary's nonce, its session, the VM's name,
 * RAM and disk sizes and the machine's config hash, so a proof is bound to
 * both nonces, the role, the protocol version and the machine. Two session
 * keys (one per direction) are derived from the same transcript with
 * HMAC-SHA256 and key AES-256-GCM with an empty plaintext (GMAC, NIST SP
 * 800-38D) over header bytes 0..31 and the payload of every frame; its
 * 96-bit IV is the direction and a 64-bit count of the frames tagged in that
 * direction, so a frame replayed, reordered, reflected or moved to another
 * connection fails its tag.
 *
 * Pure code apart from vft_auth_nonce (getrandom): unit-tested and fuzzed.
 */
#ifndef VFT_AUTH_H
#define VFT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vft_proto.h"

#define VFT_KEY_MIN 32    /* bytes of key material, at least */
#define VFT_KEY_MAX 1024  /* bytes, at most */
#define VFT_PROOF_SIZE 32 /* HMAC-SHA256 */

struct vft_key {
	uint8_t k[VFT_KEY_MAX];
	size_t len;
};

/* loaded by af_cred_load_key (af_config.h) */
void vft_key_wipe(struct vft_key *key);

/* 32 random bytes (getrandom): 0 or -errno. */
int vft_auth_nonce(uint8_t out[VFT_NONCE_SIZE]);

/* One direction's frame MAC (AES-256-GCM, empty plaintext). */
struct vft_mac {
	void *ctx;    /* EVP_CIPHER_CTX, NULL = not keyed: frames are not tagged */
	uint32_t dir; /* 0: primary to backup, 1: backup to primary */
	uint64_t n;   /* frames tagged (or verified) in this direction so far */
};
void vft_mac_fini(struct vft_mac *m);
static inline bool vft_mac_on(const struct vft_mac *m)
{
	return m != NULL && m->ctx != NULL;
}
/* Writes the tag of the frame (header bytes 0..31 + the iovecs' payload) into
 * hdr[32..47]; a NULL or unkeyed m leaves the tag zero. 0 or -EIO. */
int vft_mac_seal(struct vft_mac *m, uint8_t hdr[VFT_HDR_SIZE], const struct iovec *iov, int iovcnt);
/* Checks the tag of a received frame: 0, or -EBADMSG (the count does not
 * advance: the connection is to be dropped anyway). */
int vft_mac_verify(struct vft_mac *m, const uint8_t hdr[VFT_HDR_SIZE], const void *payload,
                   size_t len);

/* The handshake of one connection, either side. */
enum vft_role { VFT_ROLE_PRIMARY = 0, VFT_ROLE_BACKUP = 1 };
struct vft_auth {
	const struct vft_key *key;
	enum vft_role role;
	uint8_t hello[VFT_HELLO_SIZE]; /* the HELLO payload as on the wire */
	uint8_t nonce_b[VFT_NONCE_SIZE];
	bool have_hello, have_nonce_b, done;
	struct vft_mac tx, rx;
};
void vft_auth_init(struct vft_auth *a, const struct vft_key *key, enum vft_role role);
void vft_auth_fini(struct vft_auth *a); /* wipes the session keys */
/* The HELLO payload sent (primary) or received (backup). */
void vft_auth_set_hello(struct vft_auth *a, const uint8_t hello[VFT_HELLO_SIZE]);
/* The proof of `role` over the transcript (HELLO + nonce_b): 0 or -EIO. */
int vft_auth_proof(const struct vft_auth *a, enum vft_role role,
                   const uint8_t nonce_b[VFT_NONCE_SIZE], uint8_t out[VFT_PROOF_SIZE]);
/* Backup, after HELLO: its nonce, its AUTH payload, and the session keys
 * (its WELCOME and every later frame are tagged; the primary's AUTH is the
 * first frame it verifies). 0 or -EIO. */
int vft_auth_backup_challenge(struct vft_auth *a, const uint8_t nonce_b[VFT_NONCE_SIZE],
                              uint8_t out[VFT_AUTH_SIZE]);
/* Primary: checks the backup's AUTH payload against its HELLO, derives the
 * session keys and writes its own AUTH payload. 0, -EACCES (a wrong proof:
 * the peer does not hold the key), -EBADMSG (malformed) or -EIO. */
int vft_auth_primary_answer(struct vft_auth *a, const uint8_t *msg, size_t len,
                            uint8_t out[VFT_AUTH_SIZE], char *err, size_t errlen);
/* Backup: checks the primary's AUTH payload: 0, -EACCES or -EBADMSG. */
int vft_auth_backup_check(struct vft_auth *a, const uint8_t *msg, size_t len, char *err,
                          size_t errlen);

#endif
