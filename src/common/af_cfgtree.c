/*
 * Reader for the brace syntax: one statement per line, either
 *
 *   name {          opens a section
 *   }               closes it
 *   key: value      sets a key (value is the rest of the line, trimmed, or a
 *                   "quoted string" with \" and \\ escapes)
 *   # comment       a whole-line comment ('#' inside an unquoted value is
 *                   part of the value, so passwords and URIs need no quotes)
 *
 * This mirrors corosync.conf, including the rule that a '{' ends its line.
 */
#include "config.h"

#include "af_cfg_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_util.h"

struct reader {
	struct af_cfg_tree *tree;
	uint32_t *err_line;
	char *err;
	size_t errlen;
	size_t cap;
};

#define FAIL(r, ln, ...)                                                                           \
	do {                                                                                       \
		*(r)->err_line = (ln);                                                             \
		snprintf((r)->err, (r)->errlen, __VA_ARGS__);                                      \
		return -EINVAL;                                                                    \
	} while (0)

static bool is_name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static char *skip_ws(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* After '{', '}' or a closing quote only blanks or a comment may follow. */
static bool only_trailer(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '\0' || *p == '#';
}

static struct af_cfg_node *new_node(struct reader *r, enum af_cfg_node_type type, const char *name,
                                    uint32_t line)
{
	struct af_cfg_tree *t = r->tree;
	struct af_cfg_node *n;

	if (t->n_nodes >= r->cap)
		return NULL;
	n = &t->nodes[t->n_nodes++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->name = name;
	n->line = line;
	return n;
}

/* Unquotes in place: s points at the opening quote. */
static int unquote(struct reader *r, uint32_t ln, char *s, const char *key)
{
	char *w = s, *p = s + 1;

	for (;;) {
		if (*p == '\0')
			FAIL(r, ln, "unterminated quoted value for '%s'", key);
		if (*p == '"')
			break;
		if (*p == '\\') {
			p++;
			/* Values hold no control characters, so \n or \t
			 * would only be refused later with a vaguer message. */
			if (*p != '"' && *p != '\\')
				FAIL(r, ln,
				     "unknown escape '\\%c' in value for '%s' (only \\\" and \\\\)",
				     *p ? *p : ' ', key);
			*w++ = *p++;
			continue;
		}
		*w++ = *p++;
	}
	if (!only_trailer(p + 1))
		FAIL(r, ln, "unexpected text after the closing quote of '%s'", key);
	*w = '\0';
	return 0;
}

static int check_line_chars(struct reader *r, uint32_t ln, const char *line, size_t len)
{
	if (len > AF_CFG_MAX_LINE)
		FAIL(r, ln, "line is longer than %d characters", AF_CFG_MAX_LINE);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0')
			FAIL(r, ln, "NUL byte in file");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			FAIL(r, ln, "control character 0x%02x in line", c);
	}
	return 0;
}

static int parse_lines(struct reader *r, char *text, size_t len)
{
	struct af_cfg_node *stack[AF_CFG_MAX_DEPTH + 1];
	struct af_cfg_node *last[AF_CFG_MAX_DEPTH + 1];
	int depth = 0;
	uint32_t ln = 0;
	char *p = text, *end = text + len;

	stack[0] = &r->tree->root;
	last[0] = NULL;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line = p, *q, *name;
		size_t llen = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct af_cfg_node *n;
		int rc;

		ln++;
		p = nl ? nl + 1 : end;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		rc = check_line_chars(r, ln, line, llen);
		if (rc < 0)
			return rc;
		line[llen] = '\0';

		q = skip_ws(line);
		if (*q == '\0' || *q == '#')
			continue;
		if (*q == '}') {
			if (!only_trailer(q + 1))
				FAIL(r, ln, "unexpected text after '}'");
			if (depth == 0)
				FAIL(r, ln, "'}' without a matching '{'");
			depth--;
			continue;
		}
		if (!is_name_start(*q))
			FAIL(r, ln, "expected a key or a section name, found '%c'", *q);
		name = q;
		while (is_name_char(*q))
			q++;
		if (*q != '\0' && *q != ' ' && *q != '\t' && *q != ':' && *q != '{')
			FAIL(r, ln, "invalid character '%c' in name", *q);
		{
			char *after = skip_ws(q);
			char sep = *after;

			*q = '\0'; /* terminates name; sep was saved first */
			if (sep == '{') {
				if (!only_trailer(after + 1))
					FAIL(r, ln, "'{' must end the line (as in corosync.conf)");
				if (depth >= AF_CFG_MAX_DEPTH)
					FAIL(r, ln, "sections nested deeper than %d levels",
					     AF_CFG_MAX_DEPTH);
				n = new_node(r, AF_CFG_SECTION, name, ln);
				if (n == NULL)
					FAIL(r, ln, "too many entries (max %d)", AF_CFG_MAX_NODES);
			} else if (sep == ':') {
				char *v = skip_ws(after + 1);

				rtrim(v);
				if (*v == '\0')
					FAIL(r, ln, "key '%s' has no value", name);
				if (*v == '"') {
					rc = unquote(r, ln, v, name);
					if (rc < 0)
						return rc;
				}
				n = new_node(r, AF_CFG_KV, name, ln);
				if (n == NULL)
					FAIL(r, ln, "too many entries (max %d)", AF_CFG_MAX_NODES);
				n->value = v;
			} else if (sep == '\0' || sep == '#') {
				FAIL(r, ln, "expected ':' or '{' after '%s'", name);
			} else {
				FAIL(r, ln, "expected ':' or '{' after '%s', found '%c'", name,
				     sep);
			}
		}
		if (last[depth] == NULL)
			stack[depth]->child = n;
		else
			last[depth]->next = n;
		last[depth] = n;
		if (n->type == AF_CFG_SECTION) {
			depth++;
			stack[depth] = n;
			last[depth] = NULL;
		}
	}
	if (depth > 0)
		FAIL(r, stack[depth]->line, "section '%s' is not closed (missing '}')",
		     stack[depth]->name);
	return 0;
}

int af_cfg_tree_parse(const char *buf, size_t len, struct af_cfg_tree *tree, uint32_t *err_line,
                      char *err, size_t errlen)
{
	struct reader r = {.tree = tree, .err_line = err_line, .err = err, .errlen = errlen};
	size_t statements = 0;
	int rc;

	memset(tree, 0, sizeof(*tree));
	*err_line = 0;
	if (err && errlen)
		err[0] = '\0';
	/* Upper bound on nodes: one per line holding ':' or '{'. */
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' || i == 0)
			statements++;
	}
	statements++;
	if (statements > AF_CFG_MAX_NODES)
		statements = AF_CFG_MAX_NODES;
	tree->text = malloc(len + 1);
	tree->nodes = calloc(statements, sizeof(*tree->nodes));
	if (tree->text == NULL || tree->nodes == NULL) {
		af_cfg_tree_free(tree);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r.cap = statements;
	tree->text_len = len + 1;
	memcpy(tree->text, buf, len);
	tree->text[len] = '\0';
	tree->root.type = AF_CFG_SECTION;
	tree->root.name = "";
	rc = parse_lines(&r, tree->text, len);
	if (rc < 0)
		af_cfg_tree_free(tree);
	return rc;
}

void af_cfg_tree_free(struct af_cfg_tree *tree)
{
	/* The text may be a credentials file: never free it unwiped. */
	if (tree->text != NULL)
		af_wipe(tree->text, tree->text_len);
	free(tree->text);
	free(tree->nodes);
	memset(tree, 0, sizeof(*tree));
}

int af_read_file(int fd, size_t max, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);

	if (b == NULL)
		return -ENOMEM;
	/* The buffer grows to max + 1 bytes so that a file of exactly max
	 * bytes is read whole and one byte more is detected as too large. */
	for (;;) {
		ssize_t got;

		if (n == cap) {
			char *nb;

			if (cap > max) {
				free(b);
				return -EFBIG;
			}
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			nb = realloc(b, cap + 1);
			if (nb == NULL) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		got = read(fd, b + n, cap - n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			free(b);
			return -errno;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max) {
		free(b);
		return -EFBIG;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int af_open_regular(const char *path, int *out, char *err, size_t errlen)
{
	struct stat before, after;
	int fd, rc;

	/* stat first so that a FIFO or a device is refused without being
	 * opened (opening a FIFO blocks; opening a device may act), then
	 * fstat the descriptor so that the file read is the file checked. */
	if (stat(path, &before) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (!S_ISREG(before.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &after) < 0 || !S_ISREG(after.st_mode) || after.st_dev != before.st_dev ||
	    after.st_ino != before.st_ino) {
		close(fd);
		snprintf(err, errlen, "not a regular file (changed while being opened)");
		return -EINVAL;
	}
	*out = fd;
	return 0;
}
