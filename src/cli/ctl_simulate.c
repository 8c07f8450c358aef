/*
 * atca-ftctl simulate: the failure model offline. No daemon is involved:
 * the events file is replayed through the same model code atca-ftd runs.
 */
#include "config.h"

#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "af_config.h"
#include "fm.h"
#include "fm_rules.h"
#include "fm_sim.h"
#include "rcv_plan.h"

#define MAX_EVENTS_FILE (64 * 1024 * 1024)

static char *read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	size_t cap = 65536, n = 0;
	char *buf;

	if (f == NULL)
		return NULL;
	buf = malloc(cap);
	while (buf != NULL) {
		size_t got;

		if (n == cap) {
			char *nb = cap >= MAX_EVENTS_FILE ? NULL : realloc(buf, cap * 2);

			if (nb == NULL) {
				free(buf);
				buf = NULL;
				errno = cap >= MAX_EVENTS_FILE ? EFBIG : ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				free(buf);
				buf = NULL;
				errno = EIO;
			}
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

/* ---- the planner beside the model (simulate --config) ---------------------------------- */

#define RESTARTS_KEPT 16

/* The cluster as the plans so far left it: each plan is assumed to
 * succeed, so the next fault is planned against the blades and VMs as they
 * would then be (a VM moved, a blade fenced, restarts counted). */
struct planner {
	const struct af_config *cfg;
	struct rcv_cluster c;
	struct rcv_timeouts t;
	uint64_t restarts[RCV_MAX_VMS][RESTARTS_KEPT];
	unsigned n_plans;
};

static int vm_index(const struct planner *p, const char *name)
{
	for (unsigned i = 0; i < p->c.n_vms; i++) {
		if (strcmp(p->c.vms[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static void on_event(void *opaque, const struct af_event *ev)
{
	struct planner *p = opaque;
	struct rcv_blade_state *b = &p->c.blades[ev->blade];
	const char *v;

	switch (ev->kind) {
	case AF_EV_NODE_LEAVE:
		b->member = false;
		break;
	case AF_EV_NODE_JOIN:
		b->member = true;
		break;
	case AF_EV_QUORUM:
		v = af_event_get(ev, "state");
		if (v != NULL)
			p->c.quorate = strcmp(v, "lost") != 0;
		break;
	case AF_EV_HOTSWAP:
		v = af_event_get(ev, "to");
		if (v != NULL && (strcmp(v, "M0") == 0 || strcmp(v, "M1") == 0))
			b->off = true;
		else if (v != NULL && strcmp(v, "M4") == 0)
			b->off = false;
		break;
	default:
		break;
	}
}

static unsigned recent_restarts(const struct planner *p, int vi, uint64_t now)
{
	uint64_t win = p->cfg->vms[vi].restart_window_ms * AF_NS_PER_MS;
	unsigned n = 0;

	for (unsigned k = 0; k < RESTARTS_KEPT; k++)
		n += p->restarts[vi][k] != 0 && p->restarts[vi][k] + win > now;
	return n;
}

static void apply(struct planner *p, const struct rcv_plan *plan, uint64_t now)
{
	for (unsigned i = 0; i < plan->n_steps; i++) {
		const struct rcv_step *st = &plan->steps[i];
		int vi = st->vm[0] ? vm_index(p, st->vm) : -1;

		switch (st->kind) {
		case RCV_STEP_FENCE:
			p->c.blades[st->blade].off = true;
			p->c.blades[st->blade].member = false;
			break;
		case RCV_STEP_RESTART_VM:
			if (vi >= 0) {
				memmove(&p->restarts[vi][1], &p->restarts[vi][0],
				        (RESTARTS_KEPT - 1) * sizeof(uint64_t));
				p->restarts[vi][0] = now ? now : 1;
			}
			break;
		case RCV_STEP_START_VM:
		case RCV_STEP_PROMOTE:
		case RCV_STEP_MIGRATE:
			if (vi >= 0) {
				p->c.vms[vi].blade = st->blade;
				memset(p->restarts[vi], 0, sizeof(p->restarts[vi]));
				/* the backup is rebuilt later: until then, none */
				p->c.vms[vi].backup_in_sync = false;
			}
			break;
		default:
			break;
		}
	}
}

static void print_plan(const struct rcv_plan *plan, uint64_t now, FILE *out)
{
	json_object *o = json_object_new_object(), *steps = json_object_new_array();

	json_object_object_add(o, "t_ms", json_object_new_int64((int64_t)(now / AF_NS_PER_MS)));
	json_object_object_add(o, "op", json_object_new_string("plan"));
	json_object_object_add(o, "fault", json_object_new_int64((int64_t)plan->fault_id));
	json_object_object_add(o, "owner", json_object_new_int(plan->owner));
	json_object_object_add(o, "summary", json_object_new_string(plan->summary));
	for (unsigned i = 0; i < plan->n_steps; i++) {
		const struct rcv_step *st = &plan->steps[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "step", json_object_new_string(rcv_step_names[st->kind]));
		json_object_object_add(j, "blade", json_object_new_int(st->blade));
		if (st->vm[0])
			json_object_object_add(j, "vm", json_object_new_string(st->vm));
		if (st->timeout_ms)
			json_object_object_add(j, "timeout_ms",
			                       json_object_new_int64(st->timeout_ms));
		if (st->on_fail_escalate != RCV_STEP_NOTIFY)
			json_object_object_add(
			        j, "on_failure",
			        json_object_new_string(rcv_step_names[st->on_fail_escalate]));
		json_object_array_add(steps, j);
	}
	json_object_object_add(o, "steps", steps);
	fprintf(out, "%s\n",
	        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void on_report(void *opaque, const struct fm_report *r, FILE *out)
{
	struct planner *p = opaque;
	const struct af_fault *f = r->fault;
	struct rcv_plan plan;
	bool blade_fault = f->scope == AF_SCOPE_BLADE || f->scope == AF_SCOPE_HOST;

	if (r->op == FM_OP_CLEAR) {
		if (blade_fault && r->why != FM_WHY_MERGED && f->severity == AF_SEV_FATAL)
			p->c.blades[f->blade].faulty = false;
		return;
	}
	if (r->op != FM_OP_RAISE)
		return; /* an absorbed symptom: the plan already made covers it */
	/* c.vms was built from cfg->vms in the same order */
	for (unsigned i = 0; i < p->c.n_vms; i++)
		p->c.vms[i].restarts_recent = recent_restarts(p, (int)i, r->now_ns);
	if (rcv_plan_fault(&p->c, f, &p->t, &plan) < 0)
		return;
	print_plan(&plan, r->now_ns, out);
	p->n_plans++;
	apply(p, &plan, r->now_ns);
	if (blade_fault && f->severity == AF_SEV_FATAL && f->blade > 0)
		p->c.blades[f->blade].faulty = true;
}

static void rules_err(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "atca-ftctl: %s\n", msg);
}

int ctl_simulate(const char *rules_path, const char *config_path, bool print_rules, int argc,
                 char **argv)
{
	struct fm_rules *rules = NULL;
	struct af_config *cfg = NULL;
	struct planner *planner = NULL;
	struct fm_sim_hooks hooks = {0};
	size_t len = 0;
	char *text;
	int rc;

	if (argc != 1 && !(print_rules && argc == 0)) {
		fprintf(stderr, "atca-ftctl: usage: simulate [--rules FILE] EVENTS-FILE (- for "
		                "standard input) | simulate [--rules FILE] --print-rules\n");
		return CTL_USAGE;
	}
	rc = rules_path ? fm_rules_load(rules_path, &rules, rules_err, NULL)
	                : fm_rules_default(&rules);
	if (rc < 0) {
		if (rc != -EINVAL)
			fprintf(stderr, "atca-ftctl: %s: %s\n", rules_path, strerror(-rc));
		fprintf(stderr, "atca-ftctl: rules not loaded: nothing simulated\n");
		return CTL_CONFIG_INVALID;
	}
	if (print_rules) {
		char *t = fm_rules_format(rules);

		fm_rules_free(rules);
		if (t == NULL)
			return CTL_FAILED;
		fputs(t, stdout);
		free(t);
		return CTL_OK;
	}
	if (config_path != NULL) {
		struct af_cfg_diag *diag = calloc(1, sizeof(*diag));

		/* the shelf's blades, pairs and VMs; its credentials stay where
		 * they are (a simulation reaches nothing) */
		rc = diag ? af_cfg_load(config_path, AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS,
		                        &cfg, diag)
		          : -ENOMEM;
		for (unsigned i = 0; diag && i < diag->n_errors; i++)
			fprintf(stderr, "atca-ftctl: %s\n", diag->errors[i]);
		free(diag);
		if (rc < 0) {
			fprintf(stderr,
			        "atca-ftctl: %s: configuration invalid: nothing simulated\n",
			        config_path);
			fm_rules_free(rules);
			return CTL_CONFIG_INVALID;
		}
		planner = calloc(1, sizeof(*planner));
		if (planner == NULL) {
			af_cfg_free(cfg);
			fm_rules_free(rules);
			return CTL_FAILED;
		}
		planner->cfg = cfg;
		rcv_cluster_from_config(cfg, &planner->c);
		rcv_timeouts_default(&planner->t);
		planner->t.fence_ms = (uint32_t)cfg->detection.fence_timeout_ms;
		hooks = (struct fm_sim_hooks){
		        .event = on_event, .report = on_report, .opaque = planner};
	}
	text = read_all(argv[0], &len);
	if (text == NULL) {
		fprintf(stderr, "atca-ftctl: %s: %s\n", argv[0], strerror(errno));
		fm_rules_free(rules);
		free(planner);
		af_cfg_free(cfg);
		return CTL_FAILED;
	}
	rc = fm_sim_run_hooks(text, len, strcmp(argv[0], "-") == 0 ? "stdin" : argv[0], rules,
	                      stdout, stderr, planner ? &hooks : NULL);
	free(text);
	free(planner);
	af_cfg_free(cfg);
	if (rc < 0) {
		fprintf(stderr, "atca-ftctl: simulate: %s\n", strerror(-rc));
		return CTL_FAILED;
	}
	return rc ? CTL_FAILED : CTL_OK;
}
