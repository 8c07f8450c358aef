/*
 * "atca-ftctl faults": the failure model's open faults and the recent
 * raise / update / clear reports, and the recovery views.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "ftd.h"

#include <stdio.h>
#include <string.h>

#include "fm.h"
#include "rcv.h"

void ftd_faults_add(struct ftd_ctx *ctx, int op, const struct af_fault *f)
{
	struct ftd_fault_rec *r = &ctx->faults[(ctx->fault_head + ctx->fault_len) % FTD_FAULT_RING];

	if (ctx->fault_len < FTD_FAULT_RING)
		ctx->fault_len++;
	else
		ctx->fault_head = (ctx->fault_head + 1) % FTD_FAULT_RING;
	r->op = op;
	r->ns = af_mono_ns();
	r->fault = *f;
}

static json_object *fault_json(const struct af_fault *f)
{
	json_object *o = json_object_new_object(), *c = json_object_new_array();
	char target[96];
	uint64_t now = af_mono_ns();

	af_fault_target(f, target, sizeof(target));
	json_object_object_add(o, "id", json_object_new_int64((int64_t)f->id));
	json_object_object_add(o, "rule", json_object_new_string(f->rule));
	json_object_object_add(o, "layer", json_object_new_string(af_layer_names[f->layer]));
	json_object_object_add(o, "severity",
	                       json_object_new_string(af_severity_names[f->severity]));
	json_object_object_add(o, "scope", json_object_new_string(af_scope_names[f->scope]));
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "blade", json_object_new_int(f->blade));
	json_object_object_add(o, "vm", f->vm[0] ? json_object_new_string(f->vm) : NULL);
	json_object_object_add(o, "entity",
	                       f->entity[0] ? json_object_new_string(f->entity) : NULL);
	json_object_object_add(o, "recovery", json_object_new_string(af_rclass_names[f->rclass]));
	json_object_object_add(o, "age_s",
	                       json_object_new_double(now > f->raised_ns
	                                                      ? (double)(now - f->raised_ns) / 1e9
	                                                      : 0.0));
	json_object_object_add(o, "open", json_object_new_boolean(f->cleared_ns == 0));
	for (unsigned i = 0; i < f->n_causes; i++)
		json_object_array_add(c, json_object_new_int64((int64_t)f->causes[i]));
	json_object_object_add(o, "causes", c);
	return o;
}

static void add_open(void *arg, const struct af_fault *f)
{
	json_object_array_add(arg, fault_json(f));
}

/* The daemon's own fault, beside the model's: a recovery journal that
 * cannot be written (new plans are refused). Same fields, id 0. */
static json_object *journal_fault_json(struct ftd_ctx *ctx)
{
	json_object *o;
	const char *path = "";
	uint64_t since, refused, now = af_mono_ns();
	char target[32], text[640];
	int rc;

	if (!rcv_journal_outage(ctx->rcv, &rc, &since, &refused, &path))
		return NULL;
	o = json_object_new_object();
	snprintf(target, sizeof(target), "blade %u", ctx->local_blade);
	snprintf(text, sizeof(text),
	         "recovery journal %s cannot be written (%s): new plans refused (%llu so far)",
	         path, strerror(-rc), (unsigned long long)refused);
	json_object_object_add(o, "id", json_object_new_int64(0));
	json_object_object_add(o, "rule", json_object_new_string("recovery-journal"));
	json_object_object_add(o, "layer", json_object_new_string("cluster"));
	json_object_object_add(o, "severity", json_object_new_string("degraded"));
	json_object_object_add(o, "scope", json_object_new_string("host"));
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "blade", json_object_new_int((int)ctx->local_blade));
	json_object_object_add(o, "vm", NULL);
	json_object_object_add(o, "entity", json_object_new_string(path));
	json_object_object_add(o, "recovery", json_object_new_string("notify-only"));
	json_object_object_add(
	        o, "age_s",
	        json_object_new_double(now > since ? (double)(now - since) / 1e9 : 0.0));
	json_object_object_add(o, "open", json_object_new_boolean(1));
	json_object_object_add(o, "causes", json_object_new_array());
	json_object_object_add(o, "detail", json_object_new_string(text));
	return o;
}

json_object *ftd_faults_json(struct ftd_ctx *ctx, unsigned count)
{
	json_object *o = json_object_new_object(), *open = json_object_new_array(),
	            *hist = json_object_new_array(), *jf;
	unsigned first;

	if (ctx->fm != NULL)
		fm_foreach_open(ctx->fm, add_open, open);
	if ((jf = journal_fault_json(ctx)) != NULL)
		json_object_array_add(open, jf);
	if (count == 0 || count > FTD_FAULT_RING)
		count = 20;
	first = ctx->fault_len > count ? ctx->fault_len - count : 0;
	for (unsigned i = first; i < ctx->fault_len; i++) {
		const struct ftd_fault_rec *r =
		        &ctx->faults[(ctx->fault_head + i) % FTD_FAULT_RING];
		json_object *j = fault_json(&r->fault);

		json_object_object_add(j, "op", json_object_new_string(fm_fault_op_names[r->op]));
		json_object_object_add(
		        j, "report_age_s",
		        json_object_new_double((double)(af_mono_ns() - r->ns) / 1e9));
		json_object_array_add(hist, j);
	}
	json_object_object_add(o, "open", open);
	json_object_object_add(o, "history", hist);
	return o;
}
