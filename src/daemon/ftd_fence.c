/*
 * fence / unfence requests from atca-ftctl. The answer is sent only when the
 * shelf manager confirmed the new state (or the operation failed), so a
 * script that gets exit status 0 from "atca-ftctl fence" knows the blade is
 * off.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "ftd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smc.h"

struct ftd_fence_req {
	struct ftd_ctx *ctx;
	ftd_reply_fn reply;
	void *opaque;
	struct ftd_fence_req *next;
};

static json_object *result_json(const struct smc_fence_result *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "blade", json_object_new_int(r->slot));
	json_object_object_add(o, "action",
	                       json_object_new_string(r->unfence ? "unfence" : "fence"));
	json_object_object_add(o, "ok", json_object_new_boolean(r->result == 0));
	json_object_object_add(o, "code", json_object_new_int(r->result));
	json_object_object_add(o, "message", json_object_new_string(r->message));
	json_object_object_add(o, "method", json_object_new_string(r->method));
	json_object_object_add(o, "state_before",
	                       r->mstate_before >= 0
	                               ? json_object_new_string(smc_mstate_name(r->mstate_before))
	                               : NULL);
	json_object_object_add(o, "state_after",
	                       r->mstate_after >= 0
	                               ? json_object_new_string(smc_mstate_name(r->mstate_after))
	                               : NULL);
	json_object_object_add(o, "elapsed_ms",
	                       json_object_new_double((double)r->elapsed_ns / 1e6));
	json_object_object_add(o, "commands", json_object_new_int((int)r->commands));
	return o;
}

static void unlink_req(struct ftd_ctx *ctx, struct ftd_fence_req *fr)
{
	for (struct ftd_fence_req **p = &ctx->fence_reqs; *p != NULL; p = &(*p)->next) {
		if (*p == fr) {
			*p = fr->next;
			return;
		}
	}
}

static void done(void *opaque, const struct smc_fence_result *r)
{
	struct ftd_fence_req *fr = opaque;
	json_object *doc = result_json(r);

	unlink_req(fr->ctx, fr);
	/* a failed operation is -EIO for the protocol; the document says why */
	fr->reply(fr->opaque, r->result == 0 ? 0 : -EIO, doc);
	json_object_put(doc);
	free(fr);
}

void ftd_fence_request(struct ftd_ctx *ctx, const struct af_ipc_request *req, ftd_reply_fn reply,
                       void *opaque)
{
	bool unfence = req->op == AF_OP_UNFENCE;
	struct ftd_fence_req *fr;
	json_object *doc;
	uint32_t slot = 0;
	char err[200];
	int rc;

	rc = ftd_blade_arg(ctx, req->blade, &slot, err, sizeof(err));
	if (rc < 0)
		goto refuse;
	fr = calloc(1, sizeof(*fr));
	if (fr == NULL) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto refuse;
	}
	fr->ctx = ctx;
	fr->reply = reply;
	fr->opaque = opaque;
	af_notice("%s of blade %u requested over IPC", unfence ? "unfence" : "fence", slot);
	rc = smc_fence(ctx->smc, (int)slot, unfence, done, fr);
	if (rc < 0) {
		free(fr);
		switch (rc) {
		case -ENOTCONN:
			snprintf(
			        err, sizeof(err),
			        "no shelf-manager session (see 'atca-ftctl status'): blade %u cannot "
			        "be %s",
			        slot, unfence ? "unfenced" : "fenced");
			break;
		case -EBUSY:
			snprintf(err, sizeof(err), "blade %u: an %s is in progress", slot,
			         unfence ? "fence" : "unfence");
			break;
		default:
			snprintf(err, sizeof(err), "blade %u: %s", slot, strerror(-rc));
			break;
		}
		goto refuse;
	}
	fr->next = ctx->fence_reqs;
	ctx->fence_reqs = fr;
	return;

refuse:
	af_warn("%s refused: %s", unfence ? "unfence" : "fence", err);
	doc = ftd_error_json(err, rc);
	reply(opaque, rc, doc);
	json_object_put(doc);
}

void ftd_fence_forget(struct ftd_ctx *ctx, void *opaque)
{
	struct ftd_fence_req **p = &ctx->fence_reqs;

	while (*p != NULL) {
		struct ftd_fence_req *fr = *p;

		if (fr->opaque != opaque) {
			p = &fr->next;
			continue;
		}
		*p = fr->next;
		smc_fence_forget(ctx->smc, fr);
		free(fr);
	}
}

/* ---- fencing for the recovery module ---------------------------------------------------- */

struct ftd_fence_hook {
	struct ftd_ctx *ctx;
	void (*done)(void *cookie, int rc, const char *msg);
	void *cookie;
	struct ftd_fence_hook *next;
};

static void hook_unlink(struct ftd_ctx *ctx, struct ftd_fence_hook *h)
{
	for (struct ftd_fence_hook **p = &ctx->fence_hooks; *p != NULL; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			return;
		}
	}
}

static void hook_done(void *opaque, const struct smc_fence_result *r)
{
	struct ftd_fence_hook *h = opaque;
	char msg[200];

	hook_unlink(h->ctx, h);
	snprintf(msg, sizeof(msg), "%s %s→%s by %s in %.1f ms", r->message,
	         r->mstate_before >= 0 ? smc_mstate_name(r->mstate_before) : "M?",
	         r->mstate_after >= 0 ? smc_mstate_name(r->mstate_after) : "M?", r->method,
	         (double)r->elapsed_ns / 1e6);
	h->done(h->cookie, r->result, msg);
	free(h);
}

int ftd_fence_hook(void *opaque, int blade, void (*done_fn)(void *cookie, int rc, const char *msg),
                   void *cookie)
{
	struct ftd_ctx *ctx = opaque;
	struct ftd_fence_hook *h;
	int rc;

	if (ctx->smc == NULL)
		return -ENOTCONN;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->ctx = ctx;
	h->done = done_fn;
	h->cookie = cookie;
	af_notice("fence of blade %d requested by recovery", blade);
	rc = smc_fence(ctx->smc, blade, false, hook_done, h);
	if (rc < 0) {
		af_err("fence of blade %d cannot start: %s", blade,
		       rc == -ENOTCONN ? "no shelf-manager session" : strerror(-rc));
		free(h);
		return rc;
	}
	h->next = ctx->fence_hooks;
	ctx->fence_hooks = h;
	return 0;
}

void ftd_fence_hook_forget(void *opaque, void *cookie)
{
	struct ftd_ctx *ctx = opaque;
	struct ftd_fence_hook **p = &ctx->fence_hooks;

	while (*p != NULL) {
		struct ftd_fence_hook *h = *p;

		if (h->cookie != cookie) {
			p = &h->next;
			continue;
		}
		*p = h->next;
		if (ctx->smc != NULL)
			smc_fence_forget(ctx->smc, h);
		free(h);
	}
}

void ftd_fence_hooks_drop(struct ftd_ctx *ctx)
{
	while (ctx->fence_hooks != NULL) {
		struct ftd_fence_hook *h = ctx->fence_hooks;

		ctx->fence_hooks = h->next;
		if (ctx->smc != NULL)
			smc_fence_forget(ctx->smc, h);
		free(h);
	}
}
