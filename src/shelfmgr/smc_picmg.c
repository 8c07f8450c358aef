/*
 * PICMG 3.0 (ATCA) and IPMI replies the shelf-manager client reads. Pure
 * functions: every length and identifier is checked, because a reply comes
 * from a device we do not control.
 */
#include "config.h"

#include "smc_int.h"

#include <errno.h>

/* A PICMG reply: completion code, then the PICMG identifier 0x00. */
static int picmg_reply(const uint8_t *rsp, size_t len, size_t need)
{
	if (rsp == NULL || len < 1)
		return -EPROTO;
	if (rsp[0] != 0)
		return rsp[0];
	if (len < need || rsp[1] != SMC_PICMG_ID)
		return -EPROTO;
	return 0;
}

int smc_parse_properties(const uint8_t *rsp, size_t len, struct smc_picmg_props *p)
{
	int rc = picmg_reply(rsp, len, 5);

	if (rc != 0)
		return rc;
	p->ext_major = rsp[2] & 0x0F;
	p->ext_minor = rsp[2] >> 4;
	p->max_fru_id = rsp[3];
	p->ipmc_fru_id = rsp[4];
	return 0;
}

int smc_parse_address_info(const uint8_t *rsp, size_t len, struct smc_addr_info *a)
{
	int rc = picmg_reply(rsp, len, 8);

	if (rc != 0)
		return rc;
	a->hw_addr = rsp[2];
	a->ipmb_addr = rsp[3];
	/* byte 4 is reserved (0xFF) */
	a->fru_id = rsp[5];
	a->site_number = rsp[6];
	a->site_type = rsp[7];
	if (a->ipmb_addr & 1)
		return -EPROTO; /* IPMB addresses are even */
	return 0;
}

int smc_parse_hotswap(const uint8_t *rsp, size_t len, int *mstate)
{
	uint8_t bits;

	if (rsp == NULL || len < 1)
		return -EPROTO;
	if (rsp[0] != 0)
		return rsp[0];
	if (len < 4)
		return -EPROTO;
	if (rsp[2] & 0x20) /* reading unavailable */
		return -EAGAIN;
	bits = rsp[3];
	/* exactly one state is asserted */
	if (bits == 0 || (bits & (bits - 1)) != 0)
		return -EPROTO;
	*mstate = __builtin_ctz(bits);
	return 0;
}

int smc_parse_chassis_power(const uint8_t *rsp, size_t len, bool *on)
{
	if (rsp == NULL || len < 1)
		return -EPROTO;
	if (rsp[0] != 0)
		return rsp[0];
	if (len < 4)
		return -EPROTO;
	*on = rsp[1] & 0x01;
	return 0;
}

const char *smc_mstate_name(int m)
{
	static const char *const names[8] = {"M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7"};

	return m >= 0 && m < 8 ? names[m] : "M?";
}

const char *smc_mstate_text(int m)
{
	static const char *const text[8] = {
	        "not installed",
	        "inactive",
	        "activation request",
	        "activation in progress",
	        "active",
	        "deactivation request",
	        "deactivation in progress",
	        "communication lost",
	};

	return m >= 0 && m < 8 ? text[m] : "unknown";
}

const char *smc_cc_text(uint8_t cc)
{
	switch (cc) {
	case 0x00:
		return "ok";
	case 0x83:
		return "IPMB NAK (the IPMC does not answer)";
	case 0xC0:
		return "node busy";
	case 0xC1:
		return "invalid command";
	case 0xC2:
		return "invalid command for LUN";
	case 0xC3:
		return "timeout";
	case 0xC7:
		return "request length invalid";
	case 0xC9:
		return "parameter out of range";
	case 0xCB:
		return "requested data not present";
	case 0xCC:
		return "invalid data field";
	case 0xCE:
		return "response could not be provided";
	case 0xD3:
		return "destination unavailable";
	case 0xD4:
		return "insufficient privilege";
	case 0xD5:
		return "not supported in present state";
	case 0xFF:
		return "unspecified error";
	default:
		return "completion code";
	}
}
