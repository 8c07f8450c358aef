/*
 * atca-ftctl: the operator's command line to atca-ftd.
 */
#include "config.h"

#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "af_config.h"
#include "af_ipc.h"
#include "af_util.h"

#define DEFAULT_IPC "atca-ft"
#define DEFAULT_TIMEOUT_MS 10000

#ifndef AF_CONFIG_FILE
#define AF_CONFIG_FILE "/etc/atca-ft/atca-ftd.conf"
#endif
#define FENCE_TIMEOUT_MS (11 * 60 * 1000) /* above the longest fence_timeout */

struct ctl_opts {
	const char *ipc_name;
	bool json;
	bool yes;
	bool timeout_given;
	int timeout_ms;
	uint32_t count;
	const char *rules;
	const char *config;
	bool print_rules;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: atca-ftctl [OPTIONS] COMMAND [ARGS]\n"
	           "Control and inspect atca-ftd, the ATCA shelf high-availability daemon.\n\n"
	           "Commands:\n"
	           "  status               daemon, shelf, blades, pairs, VMs and modules\n"
	           "  version              versions of atca-ftctl and of the running daemon\n"
	           "  config check [FILE]  validate FILE locally, or without FILE ask the daemon\n"
	           "                       to validate the file it would load on reload\n"
	           "  reload               make the daemon reload its configuration (applied\n"
	           "                       only if valid)\n"
	           "  blades               every blade: IPMC, hot-swap state, health\n"
	           "  sensors [BLADE]      sensor readings (BLADE: slot, host name or shelf)\n"
	           "  sel [BLADE]          SEL records seen since the daemon started\n"
	           "  events [BLADE]       the daemon's recent events\n"
	           "  fence BLADE          power the blade's payload off through the shelf\n"
	           "                       manager; returns once M1 (or power off) is confirmed\n"
	           "  unfence BLADE        activate it again (M4 confirmed)\n"
	           "  pairs                the pairs, their protection state and the cluster's\n"
	           "                       quorum, nodes and daemons\n"
	           "  vms                  configured VMs: home blade, where they run, state\n"
	           "  faults               open faults and the recent fault reports\n"
	           "  plans                recovery plans in progress, recent ones, and those\n"
	           "                       other blades carry out, step by step\n"
	           "  failover VM|BLADE    switch a VM, or every VM of a blade, over to the\n"
	           "                       partner blade; returns once the plan has started\n"
	           "  maintenance BLADE on|off\n"
	           "                       on: evacuate the blade and keep VMs off it;\n"
	           "                       off: let it run VMs again\n"
	           "  vm status|protect|unprotect|release NAME\n"
	           "  vm promote NAME [force]\n"
	           "  vm start NAME primary|backup\n"
	           "  vm quit NAME         stop the VM's engine on this blade (and its guest)\n"
	           "  log [SUBSYSTEM]      the daemon's log levels and where each comes from\n"
	           "  log level LEVEL [SUBSYSTEM]\n"
	           "                       set a log level now (err, warning, notice, info,\n"
	           "                       debug), until reset or restart\n"
	           "  log reset [SUBSYSTEM] back to the configuration's levels\n"
	           "  template list [VM]   the VM templates kept on this blade (-c: whose\n"
	           "                       vmft.template_dir; default " AF_CONFIG_FILE ")\n"
	           "  template create VM   have the VM's engine here make a template now\n"
	           "  template verify VM   check the VM's template files against their hashes\n"
	           "  template delete VM   remove the VM's templates here (with --yes)\n"
	           "  simulate FILE        replay an events file through the failure model\n"
	           "                       offline (no daemon); prints one JSON line per\n"
	           "                       fault raised, updated or cleared\n"
	           "  help                 this text\n\n"
	           "Options:\n"
	           "  -j, --json           machine-readable JSON on standard output\n"
	           "  -s, --ipc NAME       IPC service of the daemon (default $ATCA_FT_IPC or\n"
	           "                       \"" DEFAULT_IPC "\")\n"
	           "  -t, --timeout SEC    how long to wait for an answer (default 10; fence and\n"
	           "                       unfence wait for the daemon's fence_timeout)\n"
	           "  -n, --count N        at most N records (sel, events, faults, plans)\n"
	           "  -y, --yes            fence, unfence, failover, maintenance on, vm\n"
	           "                       promote, vm quit, template delete without asking\n"
	           "                       for confirmation\n"
	           "  -r, --rules FILE     simulate with these failure-model rules (default:\n"
	           "                       the built-in ones)\n"
	           "      --print-rules    simulate: print the rules in effect and stop\n"
	           "  -c, --config FILE    simulate: the shelf's configuration (blades, pairs,\n"
	           "                       VMs); with it, the recovery plan of every fault\n"
	           "                       is printed too; template: where the templates are\n"
	           "  -V, --version        same as the version command\n"
	           "  -h, --help           this text\n\n"
	           "Exit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 permission\n"
	           "denied, 5 protocol mismatch, 6 configuration invalid.\n");
}

static void print_json(json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Errors go to stderr; with --json a JSON object also goes to stdout so a
 * script always has a document to parse. */
static int fail(const struct ctl_opts *o, int code, const char *msg)
{
	fprintf(stderr, "atca-ftctl: %s\n", msg);
	if (o->json) {
		json_object *doc = json_object_new_object();

		json_object_object_add(doc, "error", json_object_new_string(msg));
		json_object_object_add(doc, "exit_code", json_object_new_int(code));
		print_json(doc);
		json_object_put(doc);
	}
	return code;
}

/* Connects, runs req and returns the document (or an exit code). */
static int call_req(const struct ctl_opts *o, const struct af_ipc_request *req, int timeout_ms,
                    int *status, json_object **doc)
{
	struct ctl_client *cl;
	char msg[320];
	int code;

	cl = ctl_init(o->ipc_name, timeout_ms, &code, msg, sizeof(msg));
	if (cl == NULL)
		return fail(o, code, msg);
	code = ctl_call(cl, req, status, doc, msg, sizeof(msg));
	ctl_fini(cl);
	if (code != CTL_OK) {
		json_object_put(*doc);
		*doc = NULL;
		return fail(o, code, msg);
	}
	return CTL_OK;
}

static int call(const struct ctl_opts *o, unsigned op, int *status, json_object **doc)
{
	struct af_ipc_request req = {.op = (uint16_t)op};

	return call_req(o, &req, o->timeout_ms, status, doc);
}

static int cmd_status(const struct ctl_opts *o)
{
	json_object *doc = NULL;
	int status = 0, rc;

	rc = call(o, AF_OP_STATUS, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	if (status < 0) {
		rc = fail(o, CTL_FAILED, ctl_str(doc, "error", "status failed"));
	} else if (o->json) {
		print_json(doc);
	} else {
		ctl_render_status(doc, stdout);
	}
	json_object_put(doc);
	return rc;
}

static int cmd_version(const struct ctl_opts *o)
{
	struct ctl_client *cl;
	json_object *doc = NULL, *out;
	char msg[320];
	int status = 0, code;

	out = json_object_new_object();
	{
		json_object *c = json_object_new_object();

		json_object_object_add(c, "version", json_object_new_string(PACKAGE_VERSION));
		json_object_object_add(c, "protocol_min", json_object_new_int(AF_IPC_VERSION_MIN));
		json_object_object_add(c, "protocol_max", json_object_new_int(AF_IPC_VERSION));
		json_object_object_add(out, "atca-ftctl", c);
	}
	if (!o->json)
		printf("atca-ftctl %s (IPC protocol %d..%d)\n", PACKAGE_VERSION, AF_IPC_VERSION_MIN,
		       AF_IPC_VERSION);
	cl = ctl_init(o->ipc_name, o->timeout_ms, &code, msg, sizeof(msg));
	if (cl != NULL) {
		struct af_ipc_request req = {.op = AF_OP_HELLO};

		code = ctl_call(cl, &req, &status, &doc, msg, sizeof(msg));
		ctl_fini(cl);
	}
	if (code != CTL_OK) {
		json_object_object_add(out, "atca-ftd", NULL);
		json_object_object_add(out, "error", json_object_new_string(msg));
		json_object_object_add(out, "exit_code", json_object_new_int(code));
		if (o->json)
			print_json(out);
		fprintf(stderr, "atca-ftctl: %s\n", msg);
	} else {
		json_object *p = NULL;

		json_object_object_get_ex(doc, "protocol", &p);
		if (o->json) {
			json_object_object_add(out, "atca-ftd", json_object_get(doc));
			print_json(out);
		} else {
			printf("atca-ftd %s (IPC protocol %lld..%lld), pid %lld, IPC '%s'\n",
			       ctl_str(doc, "version", "?"), (long long)ctl_int(p, "min", 0),
			       (long long)ctl_int(p, "max", 0), (long long)ctl_int(doc, "pid", 0),
			       o->ipc_name);
		}
	}
	json_object_put(doc);
	json_object_put(out);
	return code;
}

static json_object *string_array(const char (*items)[AF_CFG_ERR_MAX], unsigned n)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(items[i]));
	return a;
}

/* Validates a file here, with this user's rights (credentials files
 * included), producing the same document the daemon would. */
static int config_check_local(const struct ctl_opts *o, const char *path)
{
	struct af_cfg_diag *diag = calloc(1, sizeof(*diag));
	struct af_config *cfg = NULL;
	json_object *doc;
	int rc;

	if (diag == NULL)
		return fail(o, CTL_FAILED, "out of memory");
	rc = af_cfg_load(path, 0, &cfg, diag);
	doc = json_object_new_object();
	json_object_object_add(doc, "file", json_object_new_string(path));
	json_object_object_add(doc, "valid", json_object_new_boolean(rc == 0));
	json_object_object_add(doc, "errors", string_array(diag->errors, diag->n_errors));
	json_object_object_add(doc, "errors_dropped",
	                       json_object_new_int((int)diag->n_errors_dropped));
	json_object_object_add(doc, "warnings", string_array(diag->warnings, diag->n_warnings));
	if (cfg != NULL) {
		json_object_object_add(doc, "blades", json_object_new_int((int)cfg->n_blades));
		json_object_object_add(doc, "pairs", json_object_new_int((int)cfg->n_pairs));
		json_object_object_add(doc, "vms", json_object_new_int((int)cfg->n_vms));
	}
	if (o->json)
		print_json(doc);
	else
		ctl_render_config_check(doc, stdout);
	json_object_put(doc);
	af_cfg_free(cfg);
	free(diag);
	return rc == 0 ? CTL_OK : CTL_CONFIG_INVALID;
}

static int cmd_config(const struct ctl_opts *o, int argc, char **argv)
{
	json_object *doc = NULL;
	int status = 0, rc;

	if (argc < 1 || strcmp(argv[0], "check") != 0) {
		fprintf(stderr, "atca-ftctl: usage: config check [FILE]\n");
		return CTL_USAGE;
	}
	if (argc > 2) {
		fprintf(stderr, "atca-ftctl: config check takes at most one FILE\n");
		return CTL_USAGE;
	}
	if (argc == 2)
		return config_check_local(o, argv[1]);
	rc = call(o, AF_OP_CONFIG_CHECK, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	if (status < 0)
		rc = fail(o, CTL_FAILED, ctl_str(doc, "error", "config check failed"));
	else if (o->json)
		print_json(doc);
	else
		ctl_render_config_check(doc, stdout);
	if (rc == CTL_OK && !ctl_bool(doc, "valid", false))
		rc = CTL_CONFIG_INVALID;
	json_object_put(doc);
	return rc;
}

static int cmd_reload(const struct ctl_opts *o)
{
	json_object *doc = NULL;
	int status = 0, rc;

	rc = call(o, AF_OP_RELOAD, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	if (o->json)
		print_json(doc);
	else
		ctl_render_reload(doc, status < 0 ? stderr : stdout);
	json_object_put(doc);
	if (status == -EINVAL)
		return CTL_CONFIG_INVALID;
	return status < 0 ? CTL_FAILED : CTL_OK;
}

/* The BLADE argument: a blade or, for failover, a VM (what says which). */
static int set_target(struct af_ipc_request *req, const char *arg, const char *what)
{
	if (strlen(arg) >= sizeof(req->blade) || arg[0] == '\0') {
		fprintf(stderr, "atca-ftctl: '%s' is not %s\n", arg, what);
		return CTL_USAGE;
	}
	af_strlcpy(req->blade, arg, sizeof(req->blade));
	req->has_blade = true;
	return CTL_OK;
}

static int set_blade(struct af_ipc_request *req, const char *blade)
{
	return set_target(req, blade, "a blade (slot number or host name)");
}

static bool takes_blade(unsigned op)
{
	return op == AF_OP_SENSORS || op == AF_OP_SEL || op == AF_OP_EVENTS;
}

static bool takes_count(unsigned op)
{
	return op == AF_OP_SEL || op == AF_OP_EVENTS || op == AF_OP_FAULTS || op == AF_OP_PLANS;
}

/* blades, sensors, sel, events, pairs, vms, faults, plans: a listing,
 * optionally of one blade. */
static int cmd_list(const struct ctl_opts *o, unsigned op, int argc, char **argv,
                    void (*render)(json_object *, FILE *))
{
	struct af_ipc_request req = {.op = (uint16_t)op};
	json_object *doc = NULL;
	int status = 0, rc;

	if (argc > (takes_blade(op) ? 1 : 0)) {
		fprintf(stderr, "atca-ftctl: %s takes %s\n", af_ipc_op_name(op),
		        takes_blade(op) ? "at most one BLADE" : "no arguments");
		return CTL_USAGE;
	}
	if (argc == 1 && set_blade(&req, argv[0]) != CTL_OK)
		return CTL_USAGE;
	if (o->count > 0 && takes_count(op)) {
		req.has_count = true;
		req.count = o->count;
	}
	rc = call_req(o, &req, o->timeout_ms, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	if (status < 0)
		rc = fail(o, status == -ENOENT ? CTL_USAGE : CTL_FAILED,
		          ctl_str(doc, "error", "failed"));
	else if (o->json)
		print_json(doc);
	else
		render(doc, stdout);
	json_object_put(doc);
	return rc;
}

/* Fencing, switching over and evacuating change what runs where: ask first,
 * unless told not to. Without a terminal to ask on, only --yes will do.
 * action completes "refusing to ..."; question is asked as is. */
static bool confirmed(const struct ctl_opts *o, const char *action, const char *question)
{
	char line[16];

	if (o->yes)
		return true;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr,
		        "atca-ftctl: refusing to %s without --yes (standard input is not a "
		        "terminal to ask on)\n",
		        action);
		return false;
	}
	fprintf(stderr, "%s [y/N] ", question);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

/* The answer to an operator action: the document as is with --json, else
 * rendered (on stderr when the daemon refused). An unknown blade or VM is a
 * usage error. */
static int answer(const struct ctl_opts *o, json_object *doc, int status,
                  void (*render)(json_object *, FILE *))
{
	if (o->json)
		print_json(doc);
	else
		render(doc, status < 0 ? stderr : stdout);
	json_object_put(doc);
	if (status == -ENOENT)
		return CTL_USAGE;
	return status < 0 ? CTL_FAILED : CTL_OK;
}

static int cmd_fence(const struct ctl_opts *o, unsigned op, int argc, char **argv)
{
	struct af_ipc_request req = {.op = (uint16_t)op};
	bool unfence = op == AF_OP_UNFENCE;
	char action[96], question[256];
	json_object *doc = NULL;
	int status = 0, rc;

	if (argc != 1) {
		fprintf(stderr, "atca-ftctl: usage: %s BLADE [--yes]\n", af_ipc_op_name(op));
		return CTL_USAGE;
	}
	if (set_blade(&req, argv[0]) != CTL_OK)
		return CTL_USAGE;
	snprintf(action, sizeof(action), "%s blade %s", af_ipc_op_name(op), argv[0]);
	snprintf(question, sizeof(question),
	         unfence ? "Unfence blade %s: activate its payload again through the shelf "
	                   "manager?"
	                 : "Fence blade %s: power its payload off through the shelf manager? "
	                   "Every VM on it stops.",
	         argv[0]);
	if (!confirmed(o, action, question))
		return fail(o, CTL_USAGE, "not confirmed: nothing done");
	rc = call_req(o, &req, o->timeout_given ? o->timeout_ms : FENCE_TIMEOUT_MS, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	return answer(o, doc, status, ctl_render_fence);
}

/* failover VM|BLADE: answered once the switchover plan has started. */
static int cmd_failover(const struct ctl_opts *o, int argc, char **argv)
{
	struct af_ipc_request req = {.op = AF_OP_FAILOVER};
	char action[96], question[256];
	json_object *doc = NULL;
	int status = 0, rc;

	if (argc != 1) {
		fprintf(stderr, "atca-ftctl: usage: failover VM|BLADE [--yes]\n");
		return CTL_USAGE;
	}
	if (set_target(&req, argv[0], "a VM name or a blade") != CTL_OK)
		return CTL_USAGE;
	snprintf(action, sizeof(action), "switch %s over", argv[0]);
	snprintf(question, sizeof(question),
	         "Switch %s over: move the VM, or every VM of the blade, to the partner blade "
	         "(running VMs migrate live, the others are stopped and started there)?",
	         argv[0]);
	if (!confirmed(o, action, question))
		return fail(o, CTL_USAGE, "not confirmed: nothing done");
	rc = call_req(o, &req, o->timeout_ms, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	return answer(o, doc, status, ctl_render_failover);
}

/* maintenance BLADE on|off: on evacuates the blade and keeps VMs off it. */
static int cmd_maintenance(const struct ctl_opts *o, int argc, char **argv)
{
	struct af_ipc_request req = {.op = AF_OP_MAINTENANCE, .has_count = true};
	char action[96], question[256];
	json_object *doc = NULL;
	int status = 0, rc;

	if (argc != 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0)) {
		fprintf(stderr, "atca-ftctl: usage: maintenance BLADE on|off [--yes]\n");
		return CTL_USAGE;
	}
	if (set_blade(&req, argv[0]) != CTL_OK)
		return CTL_USAGE;
	req.count = strcmp(argv[1], "on") == 0;
	snprintf(action, sizeof(action), "put blade %s into maintenance", argv[0]);
	snprintf(question, sizeof(question),
	         "Put blade %s into maintenance: move every VM off it to its partner blade and "
	         "keep it free of VMs until 'maintenance %s off'?",
	         argv[0], argv[0]);
	if (req.count == 1 && !confirmed(o, action, question))
		return fail(o, CTL_USAGE, "not confirmed: nothing done");
	rc = call_req(o, &req, o->timeout_ms, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	return answer(o, doc, status, ctl_render_maintenance);
}

/* log [SUBSYSTEM] | log level LEVEL [SUBSYSTEM] | log reset [SUBSYSTEM]:
 * the daemon's log levels, set at run time (kept over a reload, dropped by
 * a restart or reset). */
static int cmd_log(const struct ctl_opts *o, int argc, char **argv)
{
	struct af_ipc_request req = {.op = AF_OP_LOG};
	json_object *doc = NULL;
	int status = 0, rc, level = -1, first = 0;
	bool usage_ok;

	if (argc >= 1 && strcmp(argv[0], "level") == 0) {
		usage_ok = argc == 2 || argc == 3;
		if (usage_ok) {
			level = af_level_parse(argv[1]);
			if (level < LOG_ERR) {
				fprintf(stderr,
				        "atca-ftctl: '%s' is not a log level (err, warning, notice, "
				        "info, debug)\n",
				        argv[1]);
				return CTL_USAGE;
			}
			req.has_count = true;
			req.count = (uint32_t)level;
		}
		first = 2;
	} else if (argc >= 1 && strcmp(argv[0], "reset") == 0) {
		usage_ok = argc <= 2;
		req.has_count = true;
		req.count = AF_LOG_RESET;
		first = 1;
	} else {
		usage_ok = argc <= 1;
	}
	if (!usage_ok) {
		fprintf(stderr, "atca-ftctl: usage: log [SUBSYSTEM]\n"
		                "       atca-ftctl log level err|warning|notice|info|debug "
		                "[SUBSYSTEM]\n"
		                "       atca-ftctl log reset [SUBSYSTEM]\n");
		return CTL_USAGE;
	}
	if (first < argc) {
		if (af_subsys_parse(argv[first]) < 0) {
			fprintf(stderr, "atca-ftctl: '%s' is not a subsystem (", argv[first]);
			for (unsigned i = 0; i < AF_SS_COUNT; i++)
				fprintf(stderr, "%s%s", i ? ", " : "", af_subsys_names[i]);
			fprintf(stderr, ")\n");
			return CTL_USAGE;
		}
		if (set_target(&req, argv[first], "a subsystem") != CTL_OK)
			return CTL_USAGE;
	}
	rc = call_req(o, &req, o->timeout_ms, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	if (status < 0)
		rc = fail(o, status == -ENOENT || status == -EINVAL ? CTL_USAGE : CTL_FAILED,
		          ctl_str(doc, "error", "failed"));
	else if (o->json)
		print_json(doc);
	else
		ctl_render_log(doc, first < argc ? argv[first] : NULL, stdout);
	json_object_put(doc);
	return rc;
}

/* vm status|promote|protect|unprotect|release|start NAME ...: a protected
 * VM's checkpoint/replay engine on the blade this daemon runs on. */
static int cmd_vm(const struct ctl_opts *o, int argc, char **argv)
{
	static const struct {
		const char *name;
		int cmd;
	} subs[] = {
	        {"status", AF_VMFT_STATUS},     {"promote", AF_VMFT_PROMOTE},
	        {"protect", AF_VMFT_PROTECT},   {"unprotect", AF_VMFT_UNPROTECT},
	        {"release", AF_VMFT_RELEASE},   {"start", AF_VMFT_START_PRIMARY},
	        {"template", AF_VMFT_TEMPLATE}, {"quit", AF_VMFT_QUIT},
	};
	struct af_ipc_request req = {.op = AF_OP_VMFT, .has_count = true};
	char action[96], question[320];
	json_object *doc = NULL;
	int status = 0, rc, cmd = -1;

	for (size_t i = 0; argc >= 2 && i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[0], subs[i].name) == 0)
			cmd = subs[i].cmd;
	if (cmd < 0 || (cmd == AF_VMFT_START_PRIMARY && argc != 3) ||
	    (cmd == AF_VMFT_PROMOTE && argc > 3) ||
	    (cmd != AF_VMFT_START_PRIMARY && cmd != AF_VMFT_PROMOTE && argc != 2) ||
	    (cmd == AF_VMFT_PROMOTE && argc == 3 && strcmp(argv[2], "force") != 0) ||
	    (cmd == AF_VMFT_START_PRIMARY && strcmp(argv[2], "primary") != 0 &&
	     strcmp(argv[2], "backup") != 0)) {
		fprintf(stderr, "atca-ftctl: usage: vm status|protect|unprotect|release NAME\n"
		                "       atca-ftctl vm promote NAME [force] [--yes]\n"
		                "       atca-ftctl vm start NAME primary|backup\n"
		                "       atca-ftctl vm quit NAME [--yes]\n");
		return CTL_USAGE;
	}
	if (set_target(&req, argv[1], "a VM name") != CTL_OK)
		return CTL_USAGE;
	if (cmd == AF_VMFT_PROMOTE && argc == 3)
		cmd = AF_VMFT_PROMOTE_FORCE;
	if (cmd == AF_VMFT_START_PRIMARY && strcmp(argv[2], "backup") == 0)
		cmd = AF_VMFT_START_BACKUP;
	req.count = (uint32_t)cmd;
	if (cmd == AF_VMFT_PROMOTE || cmd == AF_VMFT_PROMOTE_FORCE) {
		snprintf(action, sizeof(action), "promote the backup of %s", argv[1]);
		snprintf(
		        question, sizeof(question),
		        "Promote the backup of %s on this blade: the guest continues here from its "
		        "last committed checkpoint. Only do this when the primary is dead or "
		        "fenced%s?",
		        argv[1],
		        cmd == AF_VMFT_PROMOTE_FORCE ? " (force: even if it seems connected)" : "");
		if (!confirmed(o, action, question))
			return fail(o, CTL_USAGE, "not confirmed: nothing done");
	}
	if (cmd == AF_VMFT_QUIT) {
		snprintf(action, sizeof(action), "stop the engine of %s", argv[1]);
		snprintf(question, sizeof(question),
		         "Stop the checkpoint engine of %s on this blade: a primary's guest stops "
		         "with it, a backup no longer protects it, and atca-ftd does not start it "
		         "again until told to (vm start)?",
		         argv[1]);
		if (!confirmed(o, action, question))
			return fail(o, CTL_USAGE, "not confirmed: nothing done");
	}
	rc = call_req(o, &req, o->timeout_given ? o->timeout_ms : 10000, &status, &doc);
	if (rc != CTL_OK)
		return rc;
	return answer(o, doc, status,
	              cmd == AF_VMFT_STATUS ? ctl_render_vm_status : ctl_render_vm_order);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"ipc", required_argument, NULL, 's'},
	        {"timeout", required_argument, NULL, 't'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {"yes", no_argument, NULL, 'y'},
	        {"count", required_argument, NULL, 'n'},
	        {"rules", required_argument, NULL, 'r'},
	        {"print-rules", no_argument, NULL, 'P'},
	        {"config", required_argument, NULL, 'c'},
	        {NULL, 0, NULL, 0},
	};
	struct ctl_opts o = {.ipc_name = DEFAULT_IPC, .timeout_ms = DEFAULT_TIMEOUT_MS};
	const char *env = getenv("ATCA_FT_IPC");
	bool want_version = false;
	uint64_t secs;
	const char *cmd;
	int c;

	if (env != NULL && *env != '\0')
		o.ipc_name = env;
	while ((c = getopt_long(argc, argv, "js:t:Vhyn:r:c:", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 's':
			o.ipc_name = optarg;
			break;
		case 't':
			if (af_parse_u64(optarg, 1, 3600, &secs) < 0) {
				fprintf(stderr, "atca-ftctl: --timeout wants 1..3600 seconds\n");
				return CTL_USAGE;
			}
			o.timeout_ms = (int)secs * 1000;
			o.timeout_given = true;
			break;
		case 'y':
			o.yes = true;
			break;
		case 'n':
			if (af_parse_u64(optarg, 1, 100000, &secs) < 0) {
				fprintf(stderr, "atca-ftctl: --count wants 1..100000\n");
				return CTL_USAGE;
			}
			o.count = (uint32_t)secs;
			break;
		case 'r':
			o.rules = optarg;
			break;
		case 'P':
			o.print_rules = true;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'V':
			want_version = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (want_version)
		return cmd_version(&o);
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "status") == 0 && optind == argc)
		return cmd_status(&o);
	if (strcmp(cmd, "version") == 0 && optind == argc)
		return cmd_version(&o);
	if (strcmp(cmd, "reload") == 0 && optind == argc)
		return cmd_reload(&o);
	if (strcmp(cmd, "config") == 0)
		return cmd_config(&o, argc - optind, argv + optind);
	if (strcmp(cmd, "blades") == 0)
		return cmd_list(&o, AF_OP_BLADES, argc - optind, argv + optind, ctl_render_blades);
	if (strcmp(cmd, "sensors") == 0)
		return cmd_list(&o, AF_OP_SENSORS, argc - optind, argv + optind,
		                ctl_render_sensors);
	if (strcmp(cmd, "sel") == 0)
		return cmd_list(&o, AF_OP_SEL, argc - optind, argv + optind, ctl_render_sel);
	if (strcmp(cmd, "events") == 0)
		return cmd_list(&o, AF_OP_EVENTS, argc - optind, argv + optind, ctl_render_events);
	if (strcmp(cmd, "fence") == 0)
		return cmd_fence(&o, AF_OP_FENCE, argc - optind, argv + optind);
	if (strcmp(cmd, "unfence") == 0)
		return cmd_fence(&o, AF_OP_UNFENCE, argc - optind, argv + optind);
	if (strcmp(cmd, "pairs") == 0)
		return cmd_list(&o, AF_OP_PAIRS, argc - optind, argv + optind, ctl_render_pairs);
	if (strcmp(cmd, "vms") == 0)
		return cmd_list(&o, AF_OP_VMS, argc - optind, argv + optind, ctl_render_vms);
	if (strcmp(cmd, "faults") == 0)
		return cmd_list(&o, AF_OP_FAULTS, argc - optind, argv + optind, ctl_render_faults);
	if (strcmp(cmd, "plans") == 0)
		return cmd_list(&o, AF_OP_PLANS, argc - optind, argv + optind, ctl_render_plans);
	if (strcmp(cmd, "failover") == 0)
		return cmd_failover(&o, argc - optind, argv + optind);
	if (strcmp(cmd, "maintenance") == 0)
		return cmd_maintenance(&o, argc - optind, argv + optind);
	if (strcmp(cmd, "vm") == 0)
		return cmd_vm(&o, argc - optind, argv + optind);
	if (strcmp(cmd, "log") == 0)
		return cmd_log(&o, argc - optind, argv + optind);
	if (strcmp(cmd, "template") == 0 && optind + 2 == argc &&
	    strcmp(argv[optind], "create") == 0) {
		char *sub[2] = {"template", argv[optind + 1]};

		return cmd_vm(&o, 2, sub);
	}
	if (strcmp(cmd, "template") == 0)
		return ctl_template_local(o.json, o.yes, o.config ? o.config : AF_CONFIG_FILE,
		                          argc - optind, argv + optind);
	if (strcmp(cmd, "simulate") == 0)
		return ctl_simulate(o.rules, o.config, o.print_rules, argc - optind, argv + optind);
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	fprintf(stderr, "atca-ftctl: unknown command or arguments: '%s'\n", cmd);
	usage(stderr);
	return CTL_USAGE;
}
