#include "config.h"

#include "af_fault.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *const af_layer_names[AF_LAYER_COUNT] = {
        [AF_LAYER_HARDWARE] = "hardware",
        [AF_LAYER_HYPERVISOR] = "hypervisor",
        [AF_LAYER_VM] = "vm",
};

const char *const af_severity_names[AF_SEV_COUNT] = {
        [AF_SEV_PREDICTIVE] = "predictive",
        [AF_SEV_DEGRADED] = "degraded",
        [AF_SEV_FATAL] = "fatal",
};

const char *const af_scope_names[AF_SCOPE_COUNT] = {
        [AF_SCOPE_SHELF] = "shelf",
        [AF_SCOPE_BLADE] = "blade",
        [AF_SCOPE_HOST] = "host",
        [AF_SCOPE_VM] = "vm",
};

const char *const af_rclass_names[AF_RC_COUNT] = {
        [AF_RC_NOTIFY_ONLY] = "notify-only",
        [AF_RC_RESTART_VM] = "restart-vm",
        [AF_RC_MIGRATE_AWAY] = "migrate-away",
        [AF_RC_FAILOVER] = "failover",
        [AF_RC_FENCE_AND_FAILOVER] = "fence-and-failover",
};

void af_fault_add_cause(struct af_fault *f, uint64_t event_id)
{
	unsigned pos = f->n_causes;

	/* ids grow with time: kept sorted, so the oldest come first even when
	 * absorbed faults bring theirs in later; an id is kept once */
	while (pos > 0 && f->causes[pos - 1] > event_id)
		pos--;
	if (pos > 0 && f->causes[pos - 1] == event_id)
		return;
	if (f->n_causes == AF_FAULT_CAUSES_MAX) {
		f->causes_dropped++;
		if (pos == AF_FAULT_CAUSES_MAX)
			return; /* the newest: only counted */
		f->n_causes--;  /* an older one takes the newest's place */
	}
	memmove(f->causes + pos + 1, f->causes + pos, (f->n_causes - pos) * sizeof(f->causes[0]));
	f->causes[pos] = event_id;
	f->n_causes++;
}

static const char *name_or(const char *const *names, size_t n, int v)
{
	const char *s = af_enum_name(names, n, v);
	return s ? s : "?";
}

int af_fault_target(const struct af_fault *f, char *buf, size_t len)
{
	int n;

	switch (f->scope) {
	case AF_SCOPE_SHELF:
		n = snprintf(buf, len, "shelf");
		break;
	case AF_SCOPE_BLADE:
	case AF_SCOPE_HOST:
		n = snprintf(buf, len, "%s %d", af_scope_names[f->scope], f->blade);
		break;
	case AF_SCOPE_VM:
		n = snprintf(buf, len, "vm %s", f->vm);
		break;
	default:
		n = snprintf(buf, len, "?");
		break;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

int af_fault_format(const struct af_fault *f, char *buf, size_t len)
{
	char target[AF_VM_NAME_MAX + 16];
	size_t pos;
	int n;

	af_fault_target(f, target, sizeof(target));
	n = snprintf(buf, len, "fault=%llu layer=%s severity=%s target=\"%s\" class=%s causes=",
	             (unsigned long long)f->id,
	             name_or(af_layer_names, AF_LAYER_COUNT, (int)f->layer),
	             name_or(af_severity_names, AF_SEV_COUNT, (int)f->severity), target,
	             name_or(af_rclass_names, AF_RC_COUNT, (int)f->rclass));
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	pos = (size_t)n;
	for (unsigned i = 0; i < f->n_causes && i < AF_FAULT_CAUSES_MAX; i++) {
		n = snprintf(buf + pos, len - pos, "%s%llu", i ? "," : "",
		             (unsigned long long)f->causes[i]);
		if (n < 0 || (size_t)n >= len - pos)
			return -ENOSPC;
		pos += (size_t)n;
	}
	if (f->causes_dropped) {
		n = snprintf(buf + pos, len - pos, "(+%u)", f->causes_dropped);
		if (n < 0 || (size_t)n >= len - pos)
			return -ENOSPC;
		pos += (size_t)n;
	}
	if (f->cleared_ns != 0) {
		n = snprintf(buf + pos, len - pos, " cleared");
		if (n < 0 || (size_t)n >= len - pos)
			return -ENOSPC;
		pos += (size_t)n;
	}
	return (int)pos;
}
