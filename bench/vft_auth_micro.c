/*
 * The replication link's authentication on this CPU (bench/vmft_auth_bench.py
 * builds and runs it; bench/results/vmft-auth.md): candidate frame MACs on
 * the frame sizes the engine sends (a 1-page and a full 256-page PAGES
 * frame), then the engine's own code (vft_auth.c): the handshake's crypto
 * and the checksum + MAC of a PAGES frame, sealed and verified.
 *
 *   cc -O2 -I BUILD -I src/vmft-bridge bench/vft_auth_micro.c \
 *      src/vmft-bridge/vft_auth.c src/vmft-bridge/vft_proto.c -lcrypto -lxxhash
 */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "vft_auth.h"
#include "vft_proto.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

/* One MAC of buf with an EVP_MAC ("HMAC" + SHA256, "BLAKE2BMAC", "KMAC128",
 * "POLY1305": Poly1305 needs a one-time key per message, so its number is
 * the speed of the primitive only, not a usable construction as measured) */
static void one_mac(EVP_MAC_CTX *c, const char *digest, const uint8_t *buf, size_t len)
{
	OSSL_PARAM p[2] = {OSSL_PARAM_END, OSSL_PARAM_END};
	uint8_t tag[64];
	size_t ol;

	if (digest)
		p[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)digest, 0);
	EVP_MAC_init(c, key, 32, digest ? p : NULL);
	EVP_MAC_update(c, buf, len);
	EVP_MAC_final(c, tag, &ol, sizeof(tag));
}

/* AEAD with an empty plaintext: the tag is a MAC of the AAD (GMAC for GCM) */
static void one_aead(EVP_CIPHER_CTX *c, const uint8_t *buf, size_t len, uint64_t n)
{
	uint8_t iv[12] = {0}, tag[16];
	int ol;

	memcpy(iv + 4, &n, 8);
	EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv);
	EVP_EncryptUpdate(c, NULL, &ol, buf, (int)len);
	EVP_EncryptFinal_ex(c, tag, &ol);
	EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag);
}

static void candidates(void)
{
	static const char *const names[] = {"XXH3-64 (the frame checksum, not a MAC)",
	                                    "HMAC-SHA256",
	                                    "BLAKE2b-MAC",
	                                    "KMAC128",
	                                    "Poly1305 (primitive only)",
	                                    "AES-256-GCM, AAD only (GMAC)",
	                                    "ChaCha20-Poly1305, AAD only"};
	const size_t sizes[] = {VFT_HDR_SIZE + 8 + 8 + 4096, VFT_HDR_SIZE + 8 + 256 * (8 + 4096)};

	printf("| MAC | frame | MB/s | us/frame |\n|---|---:|---:|---:|\n");
	for (int si = 0; si < 2; si++) {
		size_t len = sizes[si], iters = ((size_t)1 << 31) / len;
		uint8_t *buf = malloc(len);

		memset(buf, 0x5a, len);
		for (int a = 0; a < 7; a++) {
			EVP_MAC *m = NULL;
			EVP_MAC_CTX *mc = NULL;
			EVP_CIPHER_CTX *cc = NULL;
			volatile uint64_t sink = 0;
			double t0, dt;

			if (a >= 1 && a <= 4) {
				m = EVP_MAC_fetch(NULL,
				                  a == 1   ? "HMAC"
				                  : a == 2 ? "BLAKE2BMAC"
				                  : a == 3 ? "KMAC128"
				                           : "POLY1305",
				                  NULL);
				mc = EVP_MAC_CTX_new(m);
			}
			if (a >= 5) {
				cc = EVP_CIPHER_CTX_new();
				EVP_EncryptInit_ex(
				        cc, a == 5 ? EVP_aes_256_gcm() : EVP_chacha20_poly1305(),
				        NULL, key, NULL);
			}
			t0 = now();
			for (size_t i = 0; i < iters; i++) {
				if (a == 0)
					sink += XXH3_64bits(buf, len);
				else if (a <= 4)
					one_mac(mc, a == 1 ? "SHA256" : NULL, buf, len);
				else
					one_aead(cc, buf, len, i);
			}
			dt = now() - t0;
			printf("| %s | %zu B | %.0f | %.2f |\n", names[a], len,
			       (double)(iters * len) / dt / 1e6, dt / (double)iters * 1e6);
			EVP_MAC_CTX_free(mc);
			EVP_MAC_free(m);
			EVP_CIPHER_CTX_free(cc);
		}
		free(buf);
	}
}

static void session(struct vft_key *k, struct vft_auth *p, struct vft_auth *b)
{
	struct vft_hello m = {.session = 1,
	                      .ram_size = 1 << 26,
	                      .page_size = 4096,
	                      .flags = VFT_HELLO_AUTH,
	                      .disk_size = 1 << 20};
	uint8_t hb[VFT_HELLO_SIZE], nb[32], ab[64], ap[64];
	char err[100];

	strcpy(m.vm, "fg1");
	vft_auth_init(p, k, VFT_ROLE_PRIMARY);
	vft_auth_init(b, k, VFT_ROLE_BACKUP);
	vft_auth_nonce(m.nonce);
	vft_hello_encode(hb, &m);
	vft_auth_set_hello(p, hb);
	vft_auth_set_hello(b, hb);
	vft_auth_nonce(nb);
	if (vft_auth_backup_challenge(b, nb, ab) != 0 ||
	    vft_auth_primary_answer(p, ab, 64, ap, err, sizeof(err)) != 0 ||
	    vft_auth_backup_check(b, ap, 64, err, sizeof(err)) != 0) {
		fprintf(stderr, "handshake failed\n");
		exit(1);
	}
}

static void engine_code(void)
{
	struct vft_key k = {.len = 32};
	struct vft_auth p, b;
	const int n_hs = 20000;
	double t0 = now();

	memset(k.k, 7, 32);
	for (int i = 0; i < n_hs; i++) {
		session(&k, &p, &b);
		vft_auth_fini(&p);
		vft_auth_fini(&b);
	}
	printf("\nhandshake crypto, both sides together (2 nonces, 2 proofs made and checked, "
	       "4 session keys): %.1f us\n\n",
	       (now() - t0) / n_hs * 1e6);
	session(&k, &p, &b);
	printf("| PAGES frame | checksum only | checksum + MAC (seal) | MAC verify |\n"
	       "|---|---:|---:|---:|\n");
	for (uint32_t pages = 1; pages <= 256; pages *= 256) {
		size_t len = 8 + (size_t)pages * (8 + 4096);
		size_t n = ((size_t)1 << 31) / len;
		uint8_t *buf = malloc(len), hdr[VFT_HDR_SIZE];
		struct iovec iov[2] = {{buf, 8 + 8 * (size_t)pages},
		                       {buf + 8 + 8 * (size_t)pages, (size_t)pages * 4096}};
		double a, xx, tx, rx;

		memset(buf, 0x3c, len);
		a = now();
		for (size_t i = 0; i < n; i++)
			vft_hdr_encodev(hdr, VFT_F_PAGES, (uint32_t)i, 1, iov, 2);
		xx = now() - a;
		a = now();
		for (size_t i = 0; i < n; i++) {
			vft_hdr_encodev(hdr, VFT_F_PAGES, (uint32_t)i, 1, iov, 2);
			vft_mac_seal(&p.tx, hdr, iov, 2);
		}
		tx = now() - a;
		a = now();
		for (size_t i = 0; i < n; i++)
			(void)vft_mac_verify(&b.rx, hdr, buf, len);
		rx = now() - a;
		printf("| %u pages (%zu B) | %.2f GB/s, %.1f us | %.2f GB/s, %.1f us | %.2f GB/s, "
		       "%.1f us |\n",
		       pages, len, (double)(n * len) / xx / 1e9, xx / (double)n * 1e6,
		       (double)(n * len) / tx / 1e9, tx / (double)n * 1e6,
		       (double)(n * len) / rx / 1e9, rx / (double)n * 1e6);
		free(buf);
	}
	vft_auth_fini(&p);
	vft_auth_fini(&b);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--engine-only") != 0)
		candidates();
	engine_code();
	return 0;
}
