/*
 * Internal to the configuration loader: the syntax tree of a brace-syntax
 * file. The reader knows nothing about atca-ft's sections; the schema in
 * af_config.c gives the tree its meaning. Credentials files use the same
 * reader with a flat schema.
 */
#ifndef AF_CFG_INT_H
#define AF_CFG_INT_H

#include <stddef.h>
#include <stdint.h>

#define AF_CFG_MAX_DEPTH 4
#define AF_CFG_MAX_LINE 1024
#define AF_CFG_MAX_NODES 20000

enum af_cfg_node_type { AF_CFG_SECTION, AF_CFG_KV };

struct af_cfg_node {
	enum af_cfg_node_type type;
	const char *name;  /* section name or key */
	const char *value; /* KV only, unquoted */
	uint32_t line;
	struct af_cfg_node *child; /* SECTION only: first child */
	struct af_cfg_node *next;  /* next sibling */
};

struct af_cfg_tree {
	struct af_cfg_node root; /* an unnamed section holding the top level */
	char *text;              /* private copy of the input; names point in */
	size_t text_len;
	struct af_cfg_node *nodes;
	size_t n_nodes;
};

/* Parses buf into tree. On a syntax error returns -EINVAL with *err_line
 * and err describing the first problem (syntax errors stop the reader since
 * everything after a missing brace is ambiguous). */
int af_cfg_tree_parse(const char *buf, size_t len, struct af_cfg_tree *tree, uint32_t *err_line,
                      char *err, size_t errlen);
void af_cfg_tree_free(struct af_cfg_tree *tree);

/* Reads a whole file of at most max bytes; *buf is NUL-terminated. */
int af_read_file(int fd, size_t max, char **buf, size_t *len);

/* Opens path for reading only if it is a regular file, without opening
 * anything else first. Returns 0 and the descriptor, or -errno and err. */
int af_open_regular(const char *path, int *fd, char *err, size_t errlen);

#endif

/* ---- schema (af_cfgschema.c), shared with the checks (af_cfgcheck.c) --- */

#include <stdbool.h>

#include "af_config.h"

enum af_ktype {
	AF_KT_STRING,   /* printable text */
	AF_KT_NAME,     /* identifier: [A-Za-z0-9][A-Za-z0-9_.-]* */
	AF_KT_PATH,     /* absolute path */
	AF_KT_HOST,     /* host name or IPv4/IPv6 literal */
	AF_KT_UINT,     /* uint32_t in [min, max] */
	AF_KT_BOOL,     /* bool */
	AF_KT_ENUM,     /* int index into names */
	AF_KT_DURATION, /* uint64_t milliseconds in [min, max] */
	AF_KT_SIZE,     /* uint64_t bytes in [min, max] */
	AF_KT_SLOTPAIR, /* uint32_t[2], "1 2" */
	AF_KT_LEVEL,    /* int syslog priority */
	AF_KT_FACILITY, /* int syslog facility */
};

enum af_kflags {
	AF_K_REQUIRED = 1u << 0,
	AF_K_HEX = 1u << 1,   /* printed as 0x.. */
	AF_K_AUTO0 = 1u << 2, /* "auto" reads as 0 and 0 prints as "auto" */
};

struct af_kspec {
	const char *name;
	enum af_ktype type;
	size_t off;  /* field offset in the section's struct */
	size_t size; /* string buffer size */
	uint64_t min, max;
	const char *const *names; /* AF_KT_ENUM */
	size_t n_names;
	const char *def; /* default, as it would be written in the file */
	unsigned flags;
};

struct af_sspec {
	const char *name;
	const struct af_kspec *keys;
	size_t n_keys;
	const struct af_sspec *subs;
	size_t n_subs;
	bool repeatable;
	size_t obj_off;   /* unique: offset of the struct in the parent */
	size_t count_off; /* repeatable: offset of the unsigned count in parent */
	size_t array_off; /* repeatable: offset of the array in the parent */
	size_t elem_size;
	unsigned max;
	bool required; /* the file must contain it (reported at end of file) */
};

/* Accumulates diagnostics of one load. */
struct af_cfg_load {
	const char *file;
	unsigned flags;
	uint32_t last_line;
	struct af_config *cfg;
	struct af_cfg_diag *diag;
};

void af_cfg_error(struct af_cfg_load *ld, uint32_t line, const char *fmt, ...) AF_PRINTF(3, 4);
void af_cfg_warning(struct af_cfg_load *ld, uint32_t line, const char *fmt, ...) AF_PRINTF(3, 4);

/* Line of key in a section element (the section line if the key was not
 * written). section is "blade", "shelf.manager", ... */
uint32_t af_cfg_line_of(const char *section, const struct af_cfg_where *w, const char *key);

/* True if the key was written in the file. */
bool af_cfg_given(const char *section, const struct af_cfg_where *w, const char *key);

/* The top-level schema. */
extern const struct af_sspec af_cfg_top[];
extern const size_t af_cfg_n_top;

/* Semantic checks, derived values, credentials (af_cfgcheck.c). */
void af_cfg_check(struct af_cfg_load *ld);
