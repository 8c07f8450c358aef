/*
 * The FreeIPMI transport: one RMCP+ session to a shelf manager (blade IPMCs
 * are reached by IPMB bridging through it), or one in-band device. Each
 * worker thread owns its own context; FreeIPMI contexts are not shared.
 */
#include "config.h"

#include "ipd_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freeipmi/freeipmi.h>

#include "af_util.h"

struct fi_transport {
	struct ipd_transport base;
	ipmi_ctx_t ctx;
	bool bridging; /* LAN to a shelf manager: other addresses are bridged */
};

static int map_error(ipmi_ctx_t ctx)
{
	switch (ipmi_ctx_errnum(ctx)) {
	case IPMI_ERR_SESSION_TIMEOUT:
	case IPMI_ERR_CONNECTION_TIMEOUT:
		return -ETIMEDOUT;
	case IPMI_ERR_MESSAGE_TIMEOUT:
		return -ETIME; /* a bridged request got no answer: the IPMC, not the session */
	case IPMI_ERR_BAD_COMPLETION_CODE:
		return -EREMOTEIO;
	default:
		return -EIO;
	}
}

static int fi_cmd(struct ipd_transport *t, uint8_t addr, uint8_t netfn, uint8_t cmd,
                  const uint8_t *req, size_t req_len, uint8_t *rsp, size_t rsp_max)
{
	struct fi_transport *ft = (struct fi_transport *)t;
	uint8_t rq[64], rs[300];
	int n;

	if (req_len + 1 > sizeof(rq))
		return -EINVAL;
	rq[0] = cmd;
	if (req_len)
		memcpy(rq + 1, req, req_len);
	if (ft->bridging && addr != IPD_SHMC_ADDR)
		n = ipmi_cmd_raw_ipmb(ft->ctx, 0, addr, 0, netfn, rq, (unsigned)req_len + 1, rs,
		                      sizeof(rs));
	else
		n = ipmi_cmd_raw(ft->ctx, 0, netfn, rq, (unsigned)req_len + 1, rs, sizeof(rs));
	if (n < 0)
		return map_error(ft->ctx);
	/* rs = command byte, completion code, data */
	if (n < 2)
		return -EPROTO;
	n -= 1;
	if ((size_t)n > rsp_max)
		n = (int)rsp_max;
	memcpy(rsp, rs + 1, (size_t)n);
	return n;
}

static void fi_close(struct ipd_transport *t)
{
	struct fi_transport *ft = (struct fi_transport *)t;

	if (ft == NULL)
		return;
	ipmi_ctx_close(ft->ctx);
	ipmi_ctx_destroy(ft->ctx);
	free(ft);
}

static const struct ipd_transport_ops fi_ops = {.cmd = fi_cmd, .close = fi_close};

int ipd_freeipmi_open_lan(const struct ipd_lan_params *p, struct ipd_transport **out, char *err,
                          size_t errlen)
{
	struct fi_transport *ft;
	char host[160];
	unsigned timeout = p->timeout_ms ? p->timeout_ms : 1000;
	int rc;

	if (p->cipher_suite == 0) {
		/* never: cipher suite 0 authenticates nothing */
		snprintf(err, errlen, "cipher suite 0 refused");
		return -EPERM;
	}
	ft = calloc(1, sizeof(*ft));
	if (ft == NULL)
		return -ENOMEM;
	ft->ctx = ipmi_ctx_create();
	if (ft->ctx == NULL) {
		free(ft);
		return -ENOMEM;
	}
	if (p->port != 0 && p->port != 623)
		snprintf(host, sizeof(host), "%s:%u", p->host, p->port);
	else
		snprintf(host, sizeof(host), "%s", p->host);
	/* Retransmit at a quarter of the timeout: a lost UDP datagram costs a
	 * quarter second, a dead shelf manager is declared after timeout. */
	if (ipmi_ctx_open_outofband_2_0(ft->ctx, host, p->username, p->password, p->k_g,
	                                p->k_g ? 20 : 0, (uint8_t)p->privilege,
	                                (uint8_t)p->cipher_suite, timeout, timeout / 4,
	                                IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE,
	                                IPMI_FLAGS_DEFAULT) < 0) {
		rc = map_error(ft->ctx);
		snprintf(err, errlen, "RMCP+ session to %s: %s", host, ipmi_ctx_errormsg(ft->ctx));
		ipmi_ctx_destroy(ft->ctx);
		free(ft);
		return rc == -EIO ? -ECONNREFUSED : rc;
	}
	ft->bridging = true;
	ft->base.ops = &fi_ops;
	snprintf(ft->base.desc, sizeof(ft->base.desc), "RMCP+ %s cipher %u", host, p->cipher_suite);
	*out = &ft->base;
	return 0;
}

int ipd_freeipmi_open_inband(const char *device, struct ipd_transport **out, char *err,
                             size_t errlen)
{
	struct fi_transport *ft = calloc(1, sizeof(*ft));

	if (ft == NULL)
		return -ENOMEM;
	ft->ctx = ipmi_ctx_create();
	if (ft->ctx == NULL) {
		free(ft);
		return -ENOMEM;
	}
	if (ipmi_ctx_open_inband(ft->ctx, IPMI_DEVICE_OPENIPMI, 0, 0, 0, device, 0,
	                         IPMI_FLAGS_DEFAULT) < 0) {
		snprintf(err, errlen, "in-band %s: %s", device, ipmi_ctx_errormsg(ft->ctx));
		ipmi_ctx_destroy(ft->ctx);
		free(ft);
		return -ENODEV;
	}
	ft->bridging = false;
	ft->base.ops = &fi_ops;
	snprintf(ft->base.desc, sizeof(ft->base.desc), "in-band %s", device);
	*out = &ft->base;
	return 0;
}
