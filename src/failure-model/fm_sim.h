/*
 * The failure-model simulator behind "atca-ftctl simulate": replays an
 * events file through the real model and prints one JSON object per line
 * for every fault raised, updated or cleared. Pure apart from the two
 * streams it is given; atca-ft-failure-model(7) documents the file format.
 */
#ifndef FM_SIM_H
#define FM_SIM_H

#include <stddef.h>
#include <stdio.h>

#include "af_event.h"

struct fm_rules;

enum fm_sim_line {
	FM_SIM_EVENT = 0, /* *ev holds an event */
	FM_SIM_NOTHING,   /* blank or comment */
	FM_SIM_TICK,      /* "TIME_MS tick": time passes (ev->ts_ns) */
	FM_SIM_UNKNOWN,   /* well-formed but of an unknown source or kind (warning) */
	FM_SIM_MALFORMED  /* error: msg says why */
};

/* One line (without its newline). ev->id is set to lineno. */
enum fm_sim_line fm_sim_parse_line(const char *line, unsigned lineno, struct af_event *ev,
                                   char *msg, size_t msglen);

/* Replays text (name is used in messages). rules: the model's rules (the
 * simulator takes ownership), NULL for the built-in ones. JSON lines go to
 * out, warnings and errors ("name:line: ...") to err. Returns 0, 1 if a line
 * was malformed (every other line was still replayed), or -errno. */
int fm_sim_run(const char *text, size_t len, const char *name, struct fm_rules *rules, FILE *out,
               FILE *err);

/* What a caller can add to a replay (atca-ftctl simulate --config adds the
 * recovery planner): each event before the model sees it, each report
 * after its line was printed. Either may be NULL. */
struct fm_report;
struct fm_sim_hooks {
	void (*event)(void *opaque, const struct af_event *ev);
	void (*report)(void *opaque, const struct fm_report *r, FILE *out);
	void *opaque;
};
int fm_sim_run_hooks(const char *text, size_t len, const char *name, struct fm_rules *rules,
                     FILE *out, FILE *err, const struct fm_sim_hooks *hooks);

#endif
