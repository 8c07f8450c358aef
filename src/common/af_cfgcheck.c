/*
 * Checks that need the whole file: cross references between sections,
 * uniqueness, security policy, values derived from others (IPMC addresses,
 * pairs by slot order), and loading the credentials files.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "af_cfg_int.h"
#include "af_config.h"
#include "af_util.h"

const struct af_cfg_blade *af_cfg_blade_by_slot(const struct af_config *cfg, uint32_t slot)
{
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		if (cfg->blades[i].slot == slot)
			return &cfg->blades[i];
	}
	return NULL;
}

const struct af_cfg_blade *af_cfg_blade_by_host(const struct af_config *cfg, const char *host)
{
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		if (strcmp(cfg->blades[i].host, host) == 0)
			return &cfg->blades[i];
	}
	return NULL;
}

uint32_t af_cfg_partner(const struct af_config *cfg, uint32_t slot)
{
	for (unsigned i = 0; i < cfg->n_pairs; i++) {
		if (cfg->pairs[i].blades[0] == slot)
			return cfg->pairs[i].blades[1];
		if (cfg->pairs[i].blades[1] == slot)
			return cfg->pairs[i].blades[0];
	}
	return 0;
}

void af_cfg_log_settings(const struct af_config *cfg, struct af_log_settings *s)
{
	const struct af_cfg_logging *l = &cfg->logging;

	af_log_settings_default(s);
	s->to_stderr = l->to_stderr;
	s->to_syslog = l->to_syslog;
	s->syslog_facility = l->syslog_facility;
	s->to_logfile = l->to_logfile;
	af_strlcpy(s->logfile, l->logfile, sizeof(s->logfile));
	s->level = l->level;
	s->blackbox = l->blackbox;
	s->blackbox_size = l->blackbox_size;
	for (unsigned i = 0; i < l->n_subsys; i++) {
		int ss = af_subsys_parse(l->subsys[i].name);
		if (ss >= 0)
			s->subsys_level[ss] = l->subsys[i].level;
	}
}

static void check_daemon(struct af_cfg_load *ld)
{
	struct af_cfg_daemon *d = &ld->cfg->daemon;

	d->ipc_gid = (gid_t)-1;
	if (d->ipc_group[0] != '\0' && !(ld->flags & AF_CFG_SKIP_NSS)) {
		uint32_t line = af_cfg_line_of("daemon", &d->where, "ipc_group");
		gid_t gid;
		int rc = af_group_lookup(d->ipc_group, &gid);

		if (rc == -ENOENT)
			af_cfg_error(ld, line, "group '%s' does not exist", d->ipc_group);
		else if (rc < 0)
			af_cfg_error(ld, line, "cannot look up group '%s': %s", d->ipc_group,
			             strerror(-rc));
		else
			d->ipc_gid = gid;
	}
	if (d->local_blade != 0 && af_cfg_blade_by_slot(ld->cfg, d->local_blade) == NULL)
		af_cfg_error(ld, af_cfg_line_of("daemon", &d->where, "local_blade"),
		             "local_blade %u is not a blade of this file", d->local_blade);
}

static void check_shelf(struct af_cfg_load *ld)
{
	struct af_cfg_shelf *s = &ld->cfg->shelf;

	if (s->where.line == 0) {
		af_cfg_error(ld, ld->last_line,
		             "no 'shelf' section: atca-ftd needs the shelf manager to watch and "
		             "fence blades");
		return;
	}
	if (s->cipher_suite == 0)
		af_cfg_error(ld, af_cfg_line_of("shelf", &s->where, "cipher_suite"),
		             "cipher suite 0 has no authentication or encryption and is never "
		             "allowed (use 3 or 17)");
	else if (s->cipher_suite != 3 && s->cipher_suite != 17)
		af_cfg_error(ld, af_cfg_line_of("shelf", &s->where, "cipher_suite"),
		             "cipher suite %u is not allowed (use 3 or 17)", s->cipher_suite);
	if (s->n_managers == 0)
		af_cfg_error(ld, s->where.line,
		             "section 'shelf' needs at least one 'manager' section");
	if (s->n_managers == 2 && strcmp(s->managers[0].address, s->managers[1].address) == 0 &&
	    s->managers[0].port == s->managers[1].port)
		af_cfg_error(ld, s->managers[1].where.line,
		             "both shelf managers are %s port %u: the second must differ",
		             s->managers[1].address, s->managers[1].port);
	if (!(ld->flags & AF_CFG_SKIP_CREDENTIALS) && s->credentials[0] != '\0') {
		char err[AF_CFG_ERR_MAX - 64];

		if (af_cred_load_ipmi(s->credentials, &s->cred, err, sizeof(err)) < 0)
			af_cfg_error(ld, af_cfg_line_of("shelf", &s->where, "credentials"),
			             "credentials file %s: %s", s->credentials, err);
		else
			s->cred_loaded = true;
	}
}

static void check_blades(struct af_cfg_load *ld)
{
	struct af_config *cfg = ld->cfg;

	if (cfg->n_blades == 0) {
		af_cfg_error(ld, ld->last_line, "no 'blade' section: describe at least one blade");
		return;
	}
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		struct af_cfg_blade *b = &cfg->blades[i];

		/* ATCA: hardware address 0x40 + slot, IPMB-0 address twice that. */
		if (b->ipmc == 0)
			b->ipmc = 0x80 + 2 * b->slot;
		if (b->ipmc & 1)
			af_cfg_error(ld, af_cfg_line_of("blade", &b->where, "ipmc"),
			             "IPMB address 0x%02x is odd: IPMB addresses are even",
			             b->ipmc);
		else if (b->ipmc == 0x20)
			af_cfg_error(ld, af_cfg_line_of("blade", &b->where, "ipmc"),
			             "IPMB address 0x20 belongs to the shelf manager");
		for (unsigned j = 0; j < i; j++) {
			const struct af_cfg_blade *o = &cfg->blades[j];

			if (o->slot == b->slot)
				af_cfg_error(ld, af_cfg_line_of("blade", &b->where, "slot"),
				             "slot %u is already used by the blade at line %u",
				             b->slot, o->where.line);
			else if (o->ipmc == b->ipmc)
				af_cfg_error(ld, af_cfg_line_of("blade", &b->where, "ipmc"),
				             "IPMC address 0x%02x is already used by slot %u",
				             b->ipmc, o->slot);
			if (strcmp(o->host, b->host) == 0)
				af_cfg_error(ld, af_cfg_line_of("blade", &b->where, "host"),
				             "host '%s' is already used by slot %u", b->host,
				             o->slot);
		}
	}
}

static void check_pairs(struct af_cfg_load *ld)
{
	struct af_config *cfg = ld->cfg;

	for (unsigned i = 0; i < cfg->n_pairs; i++) {
		struct af_cfg_pair *p = &cfg->pairs[i];
		uint32_t line = af_cfg_line_of("pair", &p->where, "blades");

		if (p->blades[0] == p->blades[1]) {
			af_cfg_error(ld, line, "a pair needs two different blades");
			continue;
		}
		for (int k = 0; k < 2; k++) {
			if (af_cfg_blade_by_slot(cfg, p->blades[k]) == NULL)
				af_cfg_error(ld, line, "blade %u is not defined", p->blades[k]);
		}
		for (unsigned j = 0; j < i; j++) {
			for (int k = 0; k < 2; k++) {
				const struct af_cfg_pair *o = &cfg->pairs[j];

				if (o->blades[0] == p->blades[k] || o->blades[1] == p->blades[k])
					af_cfg_error(ld, line,
					             "blade %u is already in the pair at line %u",
					             p->blades[k], o->where.line);
			}
		}
	}
	if (cfg->n_pairs == 0 && cfg->n_blades >= 2) {
		/* Symmetric pairs by slot order: the two lowest slots present, the
		 * next two, ... (blade indices sorted by slot; at most 16). */
		const struct af_cfg_blade *b[AF_MAX_BLADES];

		for (unsigned i = 0; i < cfg->n_blades; i++) {
			unsigned j = i;

			for (; j > 0 && b[j - 1]->slot > cfg->blades[i].slot; j--)
				b[j] = b[j - 1];
			b[j] = &cfg->blades[i];
		}
		for (unsigned i = 0; i + 1 < cfg->n_blades; i += 2) {
			struct af_cfg_pair *p = &cfg->pairs[cfg->n_pairs++];

			memset(p, 0, sizeof(*p));
			p->blades[0] = b[i]->slot;
			p->blades[1] = b[i + 1]->slot;
			p->derived = true;
		}
		if (cfg->n_blades % 2)
			af_cfg_warning(ld, b[cfg->n_blades - 1]->where.line,
			               "blade %u has no partner (odd number of blades): its VMs "
			               "can only be restarted in place",
			               b[cfg->n_blades - 1]->slot);
	}
}

/* "xx:xx:xx:xx:xx:xx" of a unicast address into mac[6]. */
int af_cfg_parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;

		for (int k = 0; k < 2; k++, s++) {
			char c = *s;

			if (c >= '0' && c <= '9')
				v = v * 16 + (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v = v * 16 + (unsigned)(c - 'A' + 10);
			else
				return -EINVAL;
		}
		if (*s != (i == 5 ? '\0' : ':'))
			return -EINVAL;
		if (i < 5)
			s++;
		mac[i] = (uint8_t)v;
	}
	return mac[0] & 1 ? -EINVAL : 0; /* multicast: no NIC has it */
}

static void check_vm_net(struct af_cfg_load *ld, struct af_cfg_vm *v)
{
	uint8_t mac[6];
	struct in_addr a;

	if (v->nic[0] == '\0') {
		if (v->mac[0] || v->net_interface[0] || v->ip[0])
			af_cfg_error(ld,
			             af_cfg_line_of("vm", &v->where,
			                            v->mac[0]             ? "mac"
			                            : v->net_interface[0] ? "net_interface"
			                                                  : "ip"),
			             "vm '%s' has mac, net_interface or ip but no nic", v->name);
		return;
	}
	if (strpbrk(v->nic, " \t") || strstr(v->nic, "netdev=") || strstr(v->nic, "mac="))
		af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "nic"),
		             "vm '%s': nic '%s' is a QEMU device and its options (e.g. e1000 or "
		             "ne2k_isa,iobase=0x300,irq=9), without spaces, netdev= or mac= (the "
		             "engine sets those)",
		             v->name, v->nic);
	if (!af_cfg_vm_has_engine(v))
		af_cfg_warning(ld, af_cfg_line_of("vm", &v->where, "nic"),
		               "vm '%s': nic is for VMs the checkpoint engine runs (protection ft "
		               "with a disk); ignored",
		               v->name);
	if (v->net_interface[0] == '\0')
		af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "nic"),
		             "vm '%s' has a nic but no net_interface (the blade's interface its "
		             "frames use)",
		             v->name);
	if (v->mac[0] == '\0') {
		/* stable per name: both blades, every restart, the same identity */
		uint32_t h = 2166136261u;

		for (const char *p = v->name; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		snprintf(v->mac, sizeof(v->mac), "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff,
		         (h >> 8) & 0xff, h & 0xff);
	} else if (af_cfg_parse_mac(v->mac, mac) < 0) {
		af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "mac"),
		             "vm '%s': mac '%s' is not a unicast xx:xx:xx:xx:xx:xx address",
		             v->name, v->mac);
	}
	if (v->ip[0] && inet_pton(AF_INET, v->ip, &a) != 1)
		af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "ip"),
		             "vm '%s': ip '%s' must be an IPv4 address (for gratuitous ARP)",
		             v->name, v->ip);
}

static void check_vms(struct af_cfg_load *ld)
{
	struct af_config *cfg = ld->cfg;

	for (unsigned i = 0; i < cfg->n_vms; i++) {
		struct af_cfg_vm *v = &cfg->vms[i];

		if (v->domain[0] == '\0')
			af_strlcpy(v->domain, v->name, sizeof(v->domain));
		if (af_cfg_blade_by_slot(cfg, v->blade) == NULL) {
			af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "blade"),
			             "vm '%s' is placed on blade %u, which is not defined", v->name,
			             v->blade);
		} else if (v->protection == AF_PROT_FT && af_cfg_partner(cfg, v->blade) == 0) {
			af_cfg_error(
			        ld, af_cfg_line_of("vm", &v->where, "protection"),
			        "vm '%s' has protection ft but blade %u has no partner to hold "
			        "its backup (add a pair)",
			        v->name, v->blade);
		}
		if (v->port == 0)
			v->port = cfg->vmft.port + i;
		check_vm_net(ld, v);
		if (v->protection == AF_PROT_FT && v->disk[0] == '\0')
			af_cfg_warning(ld, af_cfg_line_of("vm", &v->where, "protection"),
			               "vm '%s' has protection ft but no disk: the checkpoint "
			               "engine cannot run it (it is recovered from its libvirt "
			               "definition, without a hot backup)",
			               v->name);
		for (unsigned j = 0; j < i; j++) {
			const struct af_cfg_vm *o = &cfg->vms[j];

			if (o->protection == AF_PROT_FT && v->protection == AF_PROT_FT &&
			    o->disk[0] != '\0' && v->disk[0] != '\0' && o->port == v->port)
				af_cfg_error(
				        ld, af_cfg_line_of("vm", &v->where, "port"),
				        "vm '%s': replication port %u is already used by vm '%s'",
				        v->name, v->port, o->name);

			if (strcmp(o->name, v->name) == 0)
				af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "name"),
				             "vm '%s' is already defined at line %u", v->name,
				             o->where.line);
			else if (strcmp(o->domain, v->domain) == 0)
				af_cfg_error(ld, af_cfg_line_of("vm", &v->where, "domain"),
				             "libvirt domain '%s' is already used by vm '%s'",
				             v->domain, o->name);
		}
	}
}

static void check_snmp(struct af_cfg_load *ld)
{
	struct af_cfg_snmp *s = &ld->cfg->snmp;

	/* the notifier-wide bucket caps every key's: a larger key_burst is
	 * never reached */
	if (s->key_burst > s->burst)
		af_cfg_warning(ld,
		               af_cfg_line_of("snmp", &s->where,
		                              af_cfg_given("snmp", &s->where, "key_burst")
		                                      ? "key_burst"
		                                      : "burst"),
		               "snmp.key_burst (%u) is larger than snmp.burst (%u): at most %u "
		               "notifications pass in a burst",
		               s->key_burst, s->burst, s->burst);
	for (unsigned i = 0; i < s->n_targets; i++) {
		struct af_cfg_snmp_target *t = &s->targets[i];

		for (unsigned j = 0; j < i; j++) {
			if (strcmp(s->targets[j].address, t->address) == 0 &&
			    s->targets[j].port == t->port)
				af_cfg_error(ld, t->where.line,
				             "SNMP target %s port %u is already defined at line %u",
				             t->address, t->port, s->targets[j].where.line);
		}
		if (t->version == AF_SNMP_V2C) {
			if (t->community[0] == '\0')
				af_cfg_error(ld, t->where.line,
				             "SNMP v2c target %s needs a 'community'", t->address);
			if (t->user[0] != '\0' || t->credentials[0] != '\0')
				af_cfg_error(ld,
				             af_cfg_line_of("snmp.target", &t->where,
				                            t->user[0] ? "user" : "credentials"),
				             "'user' and 'credentials' are for SNMPv3 targets "
				             "(add 'version: 3')");
			af_cfg_warning(
			        ld, af_cfg_line_of("snmp.target", &t->where, "version"),
			        "SNMP v2c target %s: the community travels in clear text and "
			        "anyone on the path can read or forge notifications (SNMPv3 "
			        "with security_level authPriv is recommended)",
			        t->address);
			continue;
		}
		/* SNMPv3 */
		if (t->community[0] != '\0')
			af_cfg_error(ld, af_cfg_line_of("snmp.target", &t->where, "community"),
			             "'community' is for SNMP v2c targets, not v3");
		if (t->user[0] == '\0') {
			af_cfg_error(ld, t->where.line, "SNMPv3 target %s needs a 'user'",
			             t->address);
			continue;
		}
		if (t->security_level == AF_SNMP_NOAUTHNOPRIV) {
			af_cfg_warning(ld, t->where.line,
			               "SNMPv3 target %s uses noAuthNoPriv: traps are neither "
			               "authenticated nor encrypted",
			               t->address);
			continue;
		}
		if (t->credentials[0] == '\0') {
			af_cfg_error(ld, t->where.line,
			             "SNMPv3 target %s with %s needs a 'credentials' file holding "
			             "its pass phrases",
			             t->address,
			             t->security_level == AF_SNMP_AUTHPRIV ? "authPriv"
			                                                   : "authNoPriv");
			continue;
		}
		if (!(ld->flags & AF_CFG_SKIP_CREDENTIALS)) {
			char err[AF_CFG_ERR_MAX - 64];
			uint32_t line = af_cfg_line_of("snmp.target", &t->where, "credentials");

			if (af_cred_load_snmp(t->credentials, &t->cred, err, sizeof(err)) < 0) {
				af_cfg_error(ld, line, "credentials file %s: %s", t->credentials,
				             err);
			} else if (t->cred.auth_password[0] == '\0') {
				af_cfg_error(ld, line, "credentials file %s has no auth_password",
				             t->credentials);
			} else if (t->security_level == AF_SNMP_AUTHPRIV &&
			           t->cred.priv_password[0] == '\0') {
				af_cfg_error(ld, line,
				             "credentials file %s has no priv_password (needed by "
				             "authPriv)",
				             t->credentials);
			} else {
				t->cred_loaded = true;
			}
			if (t->security_level == AF_SNMP_AUTHNOPRIV)
				af_cfg_warning(
				        ld, t->where.line,
				        "SNMPv3 target %s uses authNoPriv: notifications are "
				        "authenticated but not encrypted (authPriv is "
				        "recommended)",
				        t->address);
		}
	}
}

static void check_logging(struct af_cfg_load *ld)
{
	struct af_cfg_logging *l = &ld->cfg->logging;

	for (unsigned i = 0; i < l->n_subsys; i++) {
		const struct af_cfg_subsys *s = &l->subsys[i];

		if (af_subsys_parse(s->name) < 0) {
			char list[200] = "";

			for (int k = 0; k < AF_SS_COUNT; k++) {
				size_t used = strlen(list);
				snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "",
				         af_subsys_names[k]);
			}
			af_cfg_error(ld, af_cfg_line_of("logging.subsys", &s->where, "name"),
			             "unknown subsystem '%s' (one of: %s)", s->name, list);
		}
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(l->subsys[j].name, s->name) == 0)
				af_cfg_error(ld,
				             af_cfg_line_of("logging.subsys", &s->where, "name"),
				             "subsystem '%s' is already configured at line %u",
				             s->name, l->subsys[j].where.line);
		}
	}
	if (!l->to_stderr && !l->to_syslog && !l->to_logfile)
		af_cfg_warning(ld, l->where.line ? l->where.line : 1,
		               "all log targets are off: faults will only be in the blackbox");
}

static void check_local_blade(struct af_cfg_load *ld)
{
	const struct af_config *cfg = ld->cfg;
	char host[256];

	if (cfg->daemon.local_blade != 0 || (ld->flags & AF_CFG_SKIP_NSS))
		return;
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (af_cfg_blade_by_host(cfg, host) == NULL)
			af_cfg_warning(ld, cfg->daemon.where.line ? cfg->daemon.where.line : 1,
			               "this host (%s) is none of the blades: atca-ftd will only "
			               "observe (set daemon.local_blade to choose a blade)",
			               host);
	}
}

/* The replication link's key (atca-vmft): every VM the engine runs needs
 * one it can read, unless the link's authentication is switched off. */
static void check_vmft_auth(struct af_cfg_load *ld)
{
	struct af_config *cfg = ld->cfg;
	struct af_cfg_vmft *vf = &cfg->vmft;
	bool engines = false;

	for (unsigned i = 0; i < cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &cfg->vms[i];
		char err[AF_CFG_ERR_MAX - 128];
		uint8_t key[1024];
		size_t len = 0;
		const char *path;
		uint32_t line;
		int rc;

		if (v->protection != AF_PROT_FT || v->disk[0] == '\0')
			continue;
		engines = true;
		if (!vf->authenticate || (ld->flags & AF_CFG_SKIP_CREDENTIALS))
			continue;
		if (v->key_file[0] != '\0') {
			path = v->key_file;
			line = af_cfg_line_of("vm", &v->where, "key_file");
		} else {
			path = vf->key_file;
			line = af_cfg_given("vmft", &vf->where, "key_file")
			               ? af_cfg_line_of("vmft", &vf->where, "key_file")
			               : af_cfg_line_of("vm", &v->where, "protection");
		}
		rc = af_cred_load_key(path, key, sizeof(key), &len, err, sizeof(err));
		if (rc == -ENOENT)
			af_cfg_error(ld, line,
			             "vm '%s': replication key file %s: %s (make one: head -c 32 "
			             "/dev/urandom > FILE; chmod 600 FILE)",
			             v->name, path, err);
		else if (rc < 0)
			af_cfg_error(ld, line, "vm '%s': replication key file %s: %s", v->name,
			             path, err);
		af_wipe(key, sizeof(key));
	}
	if (engines && !vf->authenticate)
		af_cfg_warning(ld, af_cfg_line_of("vmft", &vf->where, "authenticate"),
		               "vmft.authenticate is off: anyone who reaches a backup engine's "
		               "replication port can feed it epochs, and anyone who answers on "
		               "it receives the guest's memory");
}

void af_cfg_check(struct af_cfg_load *ld)
{
	bool topology_ok;

	/* Blades and pairs first: VMs refer to them, and checking VMs against
	 * a broken blade list would only repeat its errors. Every other check
	 * runs regardless, so one pass reports all independent errors. */
	check_blades(ld);
	if (ld->diag->n_errors == 0)
		check_pairs(ld);
	topology_ok = ld->diag->n_errors == 0;
	check_daemon(ld);
	check_shelf(ld);
	if (topology_ok) {
		check_vms(ld);
		check_vmft_auth(ld);
	}
	check_snmp(ld);
	check_logging(ld);
	if (ld->diag->n_errors == 0)
		check_local_blade(ld);
}
