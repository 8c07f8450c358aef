/*
 * Plain-text tables and defensive JSON accessors for the CLI.
 */
#include "config.h"

#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_table_init(struct ctl_table *t, unsigned n_cols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->n_cols = n_cols > CTL_TABLE_MAX_COLS ? CTL_TABLE_MAX_COLS : n_cols;
	for (unsigned i = 0; i < t->n_cols; i++)
		t->headers[i] = headers[i];
}

int ctl_table_add(struct ctl_table *t, const char *const *values)
{
	if (t->n_rows == t->cap_rows) {
		unsigned cap = t->cap_rows ? t->cap_rows * 2 : 8;
		char **cells = realloc(t->cells, sizeof(char *) * cap * t->n_cols);

		if (cells == NULL)
			return -ENOMEM;
		t->cells = cells;
		t->cap_rows = cap;
	}
	for (unsigned c = 0; c < t->n_cols; c++) {
		char *v = strdup(values[c] ? values[c] : "-");

		if (v == NULL) {
			while (c-- > 0)
				free(t->cells[t->n_rows * t->n_cols + c]);
			return -ENOMEM;
		}
		t->cells[t->n_rows * t->n_cols + c] = v;
	}
	t->n_rows++;
	return 0;
}

void ctl_table_print(const struct ctl_table *t, FILE *f)
{
	size_t width[CTL_TABLE_MAX_COLS];

	for (unsigned c = 0; c < t->n_cols; c++) {
		width[c] = strlen(t->headers[c]);
		for (unsigned r = 0; r < t->n_rows; r++) {
			size_t w = strlen(t->cells[r * t->n_cols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (unsigned r = 0; r <= t->n_rows; r++) {
		for (unsigned c = 0; c < t->n_cols; c++) {
			const char *v = r == 0 ? t->headers[c] : t->cells[(r - 1) * t->n_cols + c];
			bool last = c + 1 == t->n_cols;

			/* no trailing blanks after the last column */
			fprintf(f, "%-*s%s", last ? 0 : (int)width[c], v, last ? "\n" : "  ");
		}
	}
}

void ctl_table_free(struct ctl_table *t)
{
	for (unsigned i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static json_object *field(json_object *o, const char *key, json_type type)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

const char *ctl_str(json_object *o, const char *key, const char *fallback)
{
	json_object *v = field(o, key, json_type_string);
	return v ? json_object_get_string(v) : fallback;
}

int64_t ctl_int(json_object *o, const char *key, int64_t fallback)
{
	json_object *v = field(o, key, json_type_int);
	return v ? json_object_get_int64(v) : fallback;
}

double ctl_double(json_object *o, const char *key, double fallback)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return fallback;
	if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
		return json_object_get_double(v);
	return fallback;
}

bool ctl_bool(json_object *o, const char *key, bool fallback)
{
	json_object *v = field(o, key, json_type_boolean);
	return v ? json_object_get_boolean(v) : fallback;
}

json_object *ctl_array(json_object *o, const char *key)
{
	return field(o, key, json_type_array);
}

void ctl_format_age(double s, char *buf, size_t len)
{
	unsigned long long t;

	if (s < 0)
		s = 0;
	if (s < 1.0) {
		snprintf(buf, len, "%.0fms", s * 1000.0);
		return;
	}
	t = (unsigned long long)s;
	if (t < 60)
		snprintf(buf, len, "%llus", t);
	else if (t < 3600)
		snprintf(buf, len, "%llum %llus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%lluh %llum", t / 3600, (t % 3600) / 60);
	else
		snprintf(buf, len, "%llud %lluh", t / 86400, (t % 86400) / 3600);
}

void ctl_int_text(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v = NULL;

	if (o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int))
		snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
	else
		snprintf(buf, len, "-");
}
