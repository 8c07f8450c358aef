/*
 * libFuzzer target: the IPC request decoder the daemon runs on every message
 * a local client sends, and the response decoder of atca-ftctl.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "af_ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct af_ipc_request req;
	struct af_ipc_response rsp;
	char err[160];

	if (af_ipc_req_decode(data, size, &req, err, sizeof(err)) == 0) {
		/* an accepted request survives encode + decode unchanged (bytes
		 * may differ: the libqb header has padding the decoder ignores) */
		uint8_t buf[AF_IPC_REQ_MAX];
		struct af_ipc_request back;
		int n = af_ipc_req_encode(buf, sizeof(buf), &req);

		if (n < 0 || (size_t)n != size ||
		    af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)) != 0 ||
		    back.op != req.op || back.seq != req.seq || back.version != req.version ||
		    back.has_client != req.has_client || strcmp(back.client, req.client) != 0)
			__builtin_trap();
	}
	if (size >= 4) {
		uint32_t seq;

		memcpy(&seq, data, sizeof(seq));
		if (af_ipc_rsp_decode(data, size, seq, &rsp, err, sizeof(err)) == 0 &&
		    rsp.payload + rsp.payload_len > (const char *)data + size)
			__builtin_trap();
	}
	return 0;
}
