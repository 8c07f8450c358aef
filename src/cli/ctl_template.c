/*
 * atca-ftctl template list|verify|delete: the VM templates kept on this
 * blade, read straight from vmft.template_dir (they are files; the engine
 * need not run). `template create` asks the VM's engine through the
 * daemon (ctl_main.c): only it sees the guest.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "af_config.h"
#include "ctl.h"
#include "vft_tmpl.h"

static void print_doc(json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int load_dir(const char *config, char *dir, size_t n)
{
	struct af_cfg_diag *diag = calloc(1, sizeof(*diag));
	struct af_config *cfg = NULL;
	int rc;

	if (diag == NULL)
		return -ENOMEM;
	rc = af_cfg_load(config, 0, &cfg, diag);
	if (rc == 0)
		snprintf(dir, n, "%s", cfg->vmft.template_dir);
	else
		fprintf(stderr, "atca-ftctl: %s: %s\n", config,
		        diag->n_errors ? diag->errors[0] : "invalid configuration");
	af_cfg_free(cfg);
	free(diag);
	return rc;
}

static json_object *info_json(const char *vm, const struct vft_tmpl_info *in, bool active)
{
	json_object *o = json_object_new_object();
	char id[20];

	snprintf(id, sizeof(id), "%016llx", (unsigned long long)in->id);
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "slot", json_object_new_int((int)in->slot));
	json_object_object_add(o, "active", json_object_new_boolean(active));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)in->seq));
	json_object_object_add(o, "source", json_object_new_string(in->source));
	json_object_object_add(o, "source_epoch", json_object_new_int64((int64_t)in->source_epoch));
	json_object_object_add(o, "created", json_object_new_int64((int64_t)in->created));
	json_object_object_add(o, "ram_size", json_object_new_int64((int64_t)in->ram_size));
	json_object_object_add(o, "disk_size", json_object_new_int64((int64_t)in->disk_size));
	json_object_object_add(o, "pages_written",
	                       json_object_new_int64((int64_t)in->pages_written));
	json_object_object_add(o, "ram_path", json_object_new_string(in->ram_path));
	return o;
}

/* One VM's directory into the list; damaged metas counted. */
static void list_vm(const char *dir, const char *vm, json_object *arr, unsigned *damaged)
{
	struct vft_tmpl_info info[2];
	char path[4200];
	unsigned n = 0, bad = 0, best = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, vm);
	if (vft_tmpl_scan_dir(path, info, &n, &bad) < 0)
		return;
	*damaged += bad;
	for (unsigned i = 1; i < n; i++)
		if (info[i].seq > info[best].seq)
			best = i;
	for (unsigned i = 0; i < n; i++)
		json_object_array_add(arr, info_json(vm, &info[i], i == best));
}

static void render_list(json_object *arr, FILE *f)
{
	static const char *const hdr[] = {"VM",    "ID",  "SEQ",  "SOURCE",
	                                  "EPOCH", "AGE", "SIZE", "ACTIVE"};
	struct ctl_table t;
	size_t n = json_object_array_length(arr);

	if (n == 0) {
		fprintf(f, "no templates on this blade\n");
		return;
	}
	ctl_table_init(&t, 8, hdr);
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		char seq[24], ep[24], age[32], size[48];
		const char *row[8];

		snprintf(seq, sizeof(seq), "%lld", (long long)ctl_int(o, "seq", 0));
		snprintf(ep, sizeof(ep), "%lld", (long long)ctl_int(o, "source_epoch", 0));
		ctl_format_age((double)(time(NULL) - ctl_int(o, "created", 0)), age, sizeof(age));
		snprintf(size, sizeof(size), "%lld MiB%s",
		         (long long)(ctl_int(o, "ram_size", 0) >> 20),
		         ctl_int(o, "disk_size", 0) ? " + disk" : "");
		row[0] = ctl_str(o, "vm", "");
		row[1] = ctl_str(o, "id", "");
		row[2] = seq;
		row[3] = ctl_str(o, "source", "");
		row[4] = ep;
		row[5] = age;
		row[6] = size;
		row[7] = ctl_bool(o, "active", false) ? "yes" : "no";
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static int cmd_list(bool json, const char *dir, const char *vm)
{
	json_object *doc = json_object_new_object(), *arr = json_object_new_array();
	unsigned damaged = 0;

	if (vm != NULL) {
		list_vm(dir, vm, arr, &damaged);
	} else {
		DIR *d = opendir(dir);
		struct dirent *de;

		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				list_vm(dir, de->d_name, arr, &damaged);
		if (d != NULL)
			closedir(d);
	}
	json_object_object_add(doc, "dir", json_object_new_string(dir));
	json_object_object_add(doc, "templates", arr);
	json_object_object_add(doc, "damaged", json_object_new_int((int)damaged));
	if (json)
		print_doc(doc);
	else
		render_list(arr, stdout);
	if (!json && damaged)
		printf("%u damaged template file(s) ignored (see 'template verify')\n", damaged);
	json_object_put(doc);
	return CTL_OK;
}

/* verify (re-hash the files) or delete one VM's templates. */
static int cmd_one(bool json, bool yes, const char *dir, const char *op, const char *vm)
{
	struct vft_tmpl *t = NULL;
	struct vft_tmpl_info info;
	char path[4200], why[600] = "", err[300] = "";
	json_object *doc = json_object_new_object();
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, vm);
	/* open would make the directory: a typo must not leave one behind */
	if (stat(path, &st) < 0) {
		snprintf(err, sizeof(err), "no templates of %s here (%s: %s)", vm, path,
		         strerror(errno));
		rc = -ENOENT;
	} else {
		rc = vft_tmpl_open(&t, path, 0, 0, 0, why, sizeof(why), err, sizeof(err));
	}
	if (rc == 0 && strcmp(op, "delete") == 0) {
		if (!yes) {
			fprintf(stderr,
			        "atca-ftctl: delete every template of %s on this blade (its next "
			        "re-protection sends all of its RAM)? Repeat with --yes\n",
			        vm);
			rc = -ECANCELED;
		} else {
			rc = vft_tmpl_remove_all(t);
			snprintf(err, sizeof(err), "%s", rc < 0 ? strerror(-rc) : "");
		}
	} else if (rc == 0 && vft_tmpl_info(t, &info) < 0) {
		snprintf(err, sizeof(err), "no usable template in %s%s%s", path, why[0] ? ": " : "",
		         why);
		rc = -ENOENT;
	} else if (rc == 0) {
		rc = vft_tmpl_verify(t, err, sizeof(err));
		json_object_object_add(doc, "template", info_json(vm, &info, true));
	}
	vft_tmpl_close(t);
	json_object_object_add(doc, "vm", json_object_new_string(vm));
	json_object_object_add(doc, "ok", json_object_new_boolean(rc == 0));
	json_object_object_add(doc, "error", json_object_new_string(err));
	if (json)
		print_doc(doc);
	else if (rc == 0)
		printf("%s: template of %s %s\n", op, vm,
		       op[0] == 'v' ? "matches its hashes" : "removed");
	else if (rc != -ECANCELED)
		fprintf(stderr, "atca-ftctl: template %s %s: %s\n", op, vm, err);
	json_object_put(doc);
	return rc == 0 ? CTL_OK : rc == -ECANCELED ? CTL_USAGE : CTL_FAILED;
}

int ctl_template_local(bool json, bool yes, const char *config, int argc, char **argv)
{
	char dir[4096];

	if (argc < 1 || (strcmp(argv[0], "list") == 0 && argc > 2) ||
	    (strcmp(argv[0], "list") != 0 && argc != 2) ||
	    (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "verify") != 0 &&
	     strcmp(argv[0], "delete") != 0)) {
		fprintf(stderr, "atca-ftctl: usage: template list [VM]\n"
		                "       atca-ftctl template create|verify|delete VM\n");
		return CTL_USAGE;
	}
	if (load_dir(config, dir, sizeof(dir)) < 0)
		return CTL_CONFIG_INVALID;
	if (strcmp(argv[0], "list") == 0)
		return cmd_list(json, dir, argc == 2 ? argv[1] : NULL);
	return cmd_one(json, yes, dir, argv[0], argv[1]);
}
