/*
 * libFuzzer target: cluster messages as they arrive from corosync CPG
 * (rcv_msg_decode). Whatever decodes must encode again to bytes that decode
 * to the same message.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rcv_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rcv_msg m, back;
	static char buf[RCV_MSG_MAX];
	char why[160];
	int n;

	if (rcv_msg_decode(data, size, 0, &m, why, sizeof(why)) != 0)
		return 0;
	n = rcv_msg_encode(&m, buf, sizeof(buf));
	if (n < 0 || rcv_msg_decode(buf, (size_t)n, m.sender, &back, why, sizeof(why)) != 0 ||
	    back.type != m.type || back.seq != m.seq)
		__builtin_trap();
	return 0;
}
