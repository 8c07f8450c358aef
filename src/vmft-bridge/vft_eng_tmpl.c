/*
 * atca-vmft: the VM's templates on this blade (vft_tmpl.h). A template
 * thread refreshes the template every vmft.template_interval (continuous
 * templating) or on the manager's order, from what this blade has: the
 * running guest's RAM and disk on a primary, the committed image on a
 * backup. As a backup, the receiver offers the template to a primary
 * that connects (its content id and hashes after WELCOME) and builds the
 * new generation of a templated full sync from a checked copy of it.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_eng.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "af_log.h"
#include "af_util.h"
#include "vft_store.h"
#include "vft_tmpl.h"

/* The guest's disk size as every copy of it has it: the image's, in whole
 * sectors (a template's disk base is only offered for that size). */
static uint64_t image_disk_size(const struct vft_eng *e)
{
	struct stat st;

	if (e->vm->disk[0] == '\0' || stat(e->vm->disk, &st) < 0)
		return 0;
	return (uint64_t)st.st_size & ~(uint64_t)(VFT_SECTOR - 1);
}

/* Opens the refresh's sources: 0, or -ENODATA (nothing to copy yet). */
static int source_open(struct vft_eng *e, struct vft_tmpl_source *src, char *err, size_t n)
{
	char ram[4096] = "", disk[4096] = "";

	pthread_mutex_lock(&e->lock);
	if (e->is_backup) {
		af_strlcpy(ram, e->tmpl.src_ram, sizeof(ram));
		af_strlcpy(disk, e->tmpl.src_disk, sizeof(disk));
		src->epoch = e->tmpl.src_epoch;
		src->source = "backup";
	} else if (e->st.acked_epoch > 0) {
		/* a guest that ran long enough to be protected once, not one
		 * still booting */
		src->ram = e->ram;
		af_strlcpy(disk, e->disk.path, sizeof(disk));
		src->epoch = e->st.acked_epoch;
		src->source = "primary";
	}
	pthread_mutex_unlock(&e->lock);
	if (src->ram == NULL && ram[0] == '\0') {
		snprintf(err, n, "%s",
		         e->is_backup ? "nothing committed yet" : "not protected yet");
		return -ENODATA;
	}
	if (src->ram == NULL) {
		src->ram_fd = open(ram, O_RDONLY | O_CLOEXEC);
		if (src->ram_fd < 0) {
			snprintf(err, n, "%s: %s", ram, strerror(errno));
			return -errno;
		}
	}
	if (disk[0] != '\0' && e->tmpl.disk_size > 0) {
		src->disk_fd = open(disk, O_RDONLY | O_CLOEXEC);
		if (src->disk_fd < 0) {
			int rc = -errno;

			snprintf(err, n, "%s: %s", disk, strerror(errno));
			if (src->ram_fd >= 0)
				close(src->ram_fd);
			src->ram_fd = -1;
			return rc;
		}
	}
	return 0;
}

static int refresh_once(struct vft_eng *e, struct vft_tmpl_info *info, char *err, size_t n)
{
	struct vft_tmpl_source src = {.ram_fd = -1,
	                              .disk_fd = -1,
	                              .rate_bps = e->cfg->vmft.template_rate,
	                              .cancel = &e->tmpl.stop};
	int rc = source_open(e, &src, err, n);

	if (rc < 0)
		return rc;
	rc = vft_tmpl_refresh(e->tmpl.t, &src, info, err, n);
	if (src.ram_fd >= 0)
		close(src.ram_fd);
	if (src.disk_fd >= 0)
		close(src.disk_fd);
	return rc;
}

/* Sleeps until a refresh is due (interval elapsed, or ordered); false when
 * the thread must end. Called and returns with e->lock held. */
static bool refresh_due(struct vft_eng *e)
{
	double interval = (double)e->cfg->vmft.template_interval_ms / 1000.0;

	while (!e->tmpl.stop && !e->tmpl.now &&
	       (interval <= 0 || af_mono_s() < e->tmpl.last_at + interval ||
	        af_mono_s() < e->tmpl.retry_at)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&e->tmpl.wake, &e->lock, &ts);
	}
	return !e->tmpl.stop;
}

static void *tmpl_main(void *arg)
{
	struct vft_eng *e = arg;

	pthread_mutex_lock(&e->lock);
	while (refresh_due(e)) {
		struct vft_tmpl_info info;
		char err[200] = "";
		double t0 = af_mono_s();
		int rc;

		e->tmpl.now = false;
		e->tmpl.refreshing = true;
		pthread_mutex_unlock(&e->lock);
		rc = refresh_once(e, &info, err, sizeof(err));
		pthread_mutex_lock(&e->lock);
		e->tmpl.refreshing = false;
		if (rc == -ENODATA) {
			/* the guest or the first commit is not there yet: the
			 * refresh stays due */
			e->tmpl.retry_at = af_mono_s() + 1.0;
			continue;
		}
		e->tmpl.last_at = af_mono_s();
		e->tmpl.last_s = e->tmpl.last_at - t0;
		if (rc == 0) {
			e->tmpl.refreshes++;
			e->tmpl.last_error[0] = '\0';
			eng_tlog(
			        e, LOG_NOTICE,
			        "vmft %s: template %016llx (#%llu) made from the %s's %s in %.2f s, "
			        "%llu pages and blocks written",
			        e->vm->name, (unsigned long long)info.id,
			        (unsigned long long)info.seq, info.source,
			        info.source_epoch ? "epoch" : "image", e->tmpl.last_s,
			        (unsigned long long)info.pages_written);
		} else if (rc != -ECANCELED) {
			e->tmpl.failures++;
			snprintf(e->tmpl.last_error, sizeof(e->tmpl.last_error), "%s", err);
			eng_tlog(e, rc == -ENODATA ? LOG_INFO : LOG_WARNING,
			         "vmft %s: template refresh: %s", e->vm->name, err);
		}
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int eng_tmpl_start(struct vft_eng *e)
{
	struct vft_tmpl_info info;
	char why[600] = "", err[256] = "";
	int rc;

	if (!e->cfg->vmft.templates || e->tmpl.running)
		return 0;
	snprintf(e->tmpl.dir, sizeof(e->tmpl.dir), "%s/%s", e->cfg->vmft.template_dir, e->vm->name);
	e->tmpl.disk_size = image_disk_size(e);
	rc = vft_tmpl_open(&e->tmpl.t, e->tmpl.dir, e->vm->memory, e->tmpl.disk_size,
	                   e->config_hash, why, sizeof(why), err, sizeof(err));
	if (why[0] != '\0')
		af_warn("vmft %s: template not used: %s", e->vm->name, why);
	if (rc < 0) {
		/* not fatal: protection works without, full syncs send all */
		af_warn("vmft %s: templates off: %s", e->vm->name, err);
		e->tmpl.t = NULL;
		return 0;
	}
	/* continuous templating goes on from the template's age: a blade
	 * without one makes one as soon as it has a guest or a commit */
	e->tmpl.last_at = af_mono_s() - (double)e->cfg->vmft.template_interval_ms / 1000.0;
	if (vft_tmpl_info(e->tmpl.t, &info) == 0) {
		double age = (double)(time(NULL) - (time_t)info.created);

		af_notice(
		        "vmft %s: template %016llx (#%llu, from the %s, %.0f s old) on this blade",
		        e->vm->name, (unsigned long long)info.id, (unsigned long long)info.seq,
		        info.source, age);
		if (age >= 0)
			e->tmpl.last_at = af_mono_s() - age;
	}
	e->tmpl.pin = calloc(1, sizeof(struct vft_tmpl_pin));
	if (e->tmpl.pin == NULL || pthread_cond_init(&e->tmpl.wake, NULL) != 0)
		goto fail;
	pthread_mutex_init(&e->tmpl.copy_mu, NULL);
	e->tmpl.stop = false;
	if (pthread_create(&e->tmpl.thread, NULL, tmpl_main, e) != 0) {
		pthread_cond_destroy(&e->tmpl.wake);
		goto fail;
	}
	e->tmpl.running = true;
	return 0;
fail:
	af_warn("vmft %s: templates off: no memory or thread", e->vm->name);
	free(e->tmpl.pin);
	e->tmpl.pin = NULL;
	vft_tmpl_close(e->tmpl.t);
	e->tmpl.t = NULL;
	return 0;
}

void eng_tmpl_stop(struct vft_eng *e)
{
	if (e->tmpl.running) {
		pthread_mutex_lock(&e->lock);
		e->tmpl.stop = true;
		pthread_cond_broadcast(&e->tmpl.wake);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->tmpl.thread, NULL);
		pthread_cond_destroy(&e->tmpl.wake);
		pthread_mutex_destroy(&e->tmpl.copy_mu);
		e->tmpl.running = false;
	}
	eng_tmpl_abort(e);
	eng_tmpl_unpin(e);
	if (e->tmpl.base_id != 0)
		eng_tmpl_drop_base(e); /* a RAM image in tmpfs */
	free(e->tmpl.pin);
	e->tmpl.pin = NULL;
	vft_tmpl_close(e->tmpl.t);
	e->tmpl.t = NULL;
}

int eng_tmpl_request(struct vft_eng *e, char *err, size_t n)
{
	int rc = 0;

	pthread_mutex_lock(&e->lock);
	if (!e->tmpl.running) {
		snprintf(err, n, "templates are off on this blade (vmft.templates, or %s unusable)",
		         e->tmpl.dir[0] ? e->tmpl.dir : e->cfg->vmft.template_dir);
		rc = -ENOTSUP;
	} else if (e->tmpl.refreshing || e->tmpl.now) {
		snprintf(err, n, "a template refresh is already under way");
		rc = -EBUSY;
	} else {
		e->tmpl.now = true;
		pthread_cond_broadcast(&e->tmpl.wake);
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

void eng_tmpl_publish_source(struct vft_eng *e, const char *ram, const char *disk, uint64_t epoch)
{
	pthread_mutex_lock(&e->lock);
	if (strcmp(e->tmpl.src_ram, ram) != 0)
		af_strlcpy(e->tmpl.src_ram, ram, sizeof(e->tmpl.src_ram));
	if (strcmp(e->tmpl.src_disk, disk) != 0)
		af_strlcpy(e->tmpl.src_disk, disk, sizeof(e->tmpl.src_disk));
	e->tmpl.src_epoch = epoch;
	pthread_mutex_unlock(&e->lock);
}

struct json_object *eng_tmpl_json(struct vft_eng *e)
{
	json_object *o = json_object_new_object();
	struct vft_tmpl_info info;
	struct eng_tmpl t;

	pthread_mutex_lock(&e->lock);
	t = e->tmpl;
	pthread_mutex_unlock(&e->lock);
	json_object_object_add(o, "enabled", json_object_new_boolean(t.running));
	json_object_object_add(o, "dir", json_object_new_string(t.dir));
	json_object_object_add(
	        o, "interval_s",
	        json_object_new_double((double)e->cfg->vmft.template_interval_ms / 1000.0));
	json_object_object_add(o, "refreshing", json_object_new_boolean(t.refreshing));
	json_object_object_add(o, "refreshes", json_object_new_int64((int64_t)t.refreshes));
	json_object_object_add(o, "failures", json_object_new_int64((int64_t)t.failures));
	json_object_object_add(o, "last_refresh_s", json_object_new_double(t.last_s));
	json_object_object_add(o, "last_error", json_object_new_string(t.last_error));
	if (t.t != NULL && vft_tmpl_info(t.t, &info) == 0) {
		char id[20];

		snprintf(id, sizeof(id), "%016llx", (unsigned long long)info.id);
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "seq", json_object_new_int64((int64_t)info.seq));
		json_object_object_add(o, "source", json_object_new_string(info.source));
		json_object_object_add(o, "source_epoch",
		                       json_object_new_int64((int64_t)info.source_epoch));
		json_object_object_add(o, "created", json_object_new_int64((int64_t)info.created));
		json_object_object_add(o, "disk_base", json_object_new_boolean(info.disk_size > 0));
		json_object_object_add(o, "slot", json_object_new_int((int)info.slot));
		json_object_object_add(o, "ram_path", json_object_new_string(info.ram_path));
	}
	return o;
}

/* ---- the backup's offer ------------------------------------------------------------ */

#define BASE_RAM "base.ram"
#define BASE_DISK "base.disk"

void eng_tmpl_drop_base(struct vft_eng *e)
{
	char path[8400];

	snprintf(path, sizeof(path), "%s/" BASE_RAM, e->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/" BASE_DISK, e->disk_dir);
	unlink(path);
	e->tmpl.base_id = 0;
	e->tmpl.base_disk = false;
}

static int open_base(const char *dir, const char *name, uint64_t size)
{
	char path[8400];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The template's copy, made before the backup listens: a templated full
 * sync then starts from it at once (renamed into the new generation)
 * instead of copying while the pages arrive. It costs a RAM image in
 * state_dir until a sync uses it (or the engine ends). */
void eng_tmpl_prestage(struct vft_eng *e)
{
	struct vft_tmpl_pin *pin = e->tmpl.pin;
	char err[200] = "";
	double t0 = af_mono_s();
	int fd, dfd = -1, rc;

	eng_tmpl_drop_base(e);
	if (e->tmpl.t == NULL || vft_tmpl_pin(e->tmpl.t, pin) < 0)
		return;
	fd = open_base(e->dir, BASE_RAM, pin->info.ram_size);
	if (fd >= 0 && pin->n_blocks > 0 && pin->info.disk_size == e->tmpl.disk_size)
		dfd = open_base(e->disk_dir, BASE_DISK, pin->info.disk_size);
	rc = fd < 0 ? -errno : vft_tmpl_copy(e->tmpl.t, pin, fd, dfd, err, sizeof(err));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (rc == 0) {
		e->tmpl.base_id = pin->info.id;
		e->tmpl.base_disk = dfd >= 0;
		af_notice("vmft %s: template %016llx copied for the next full sync in %.0f ms%s",
		          e->vm->name, (unsigned long long)pin->info.id, (af_mono_s() - t0) * 1e3,
		          dfd >= 0 ? " (with its disk base)" : "");
	} else {
		af_warn("vmft %s: template %016llx %s: %s", e->vm->name,
		        (unsigned long long)pin->info.id,
		        rc == -EBADMSG ? "is damaged, dropped" : "not usable",
		        err[0] ? err : strerror(-rc));
		if (rc == -EBADMSG)
			vft_tmpl_invalidate(e->tmpl.t, pin->info.slot);
	}
	vft_tmpl_unpin(e->tmpl.t, pin);
	if (rc < 0)
		eng_tmpl_drop_base(e);
}

/* A full epoch begins: on the prepared copy of the offered template when
 * there is one, else on new files that a copy thread fills beside the
 * primary's pages (flags: VFT_BEGIN_TMPL_*, 0 = no template). */
int eng_tmpl_begin(struct vft_eng *e, uint64_t session, uint64_t epoch, uint64_t disk_size,
                   uint32_t flags, char *why, size_t n)
{
	bool want_disk = flags & VFT_BEGIN_TMPL_DISK;
	int rc;

	if (flags != 0 && e->tmpl.pinned && e->tmpl.base_id == e->tmpl.pin_id &&
	    (!want_disk || e->tmpl.base_disk)) {
		rc = vft_store_begin_from(e->store, session, epoch, true, disk_size, BASE_RAM,
		                          want_disk ? BASE_DISK : NULL);
		e->tmpl.base_id = 0; /* renamed away, or unusable */
		if (rc == 0) {
			eng_tlog(e, LOG_NOTICE,
			         "vmft %s: new generation on the prepared copy of template %016llx",
			         e->vm->name, (unsigned long long)e->tmpl.pin_id);
			return 0;
		}
		eng_tlog(e, LOG_WARNING, "vmft %s: the template's prepared copy: %s", e->vm->name,
		         strerror(-rc));
	}
	rc = vft_store_begin(e->store, session, epoch, true, disk_size);
	if (rc < 0 || flags == 0)
		return rc;
	return eng_tmpl_build(e, flags, why, n);
}

void eng_tmpl_unpin(struct vft_eng *e)
{
	if (!e->tmpl.pinned)
		return;
	vft_tmpl_unpin(e->tmpl.t, e->tmpl.pin);
	e->tmpl.pinned = false;
	e->tmpl.pin_id = 0;
	e->tmpl.pin_pages = 0;
	e->tmpl.pin_blocks = 0;
}

void eng_tmpl_offer(struct vft_eng *e, const struct vft_hello *hello, struct vft_welcome *w)
{
	struct vft_tmpl_pin *pin = e->tmpl.pin;

	eng_tmpl_unpin(e);
	if (e->tmpl.t == NULL || !(hello->flags & VFT_HELLO_TMPL) ||
	    vft_tmpl_pin(e->tmpl.t, pin) < 0)
		return;
	/* removed behind the engine's back (atca-ftctl template delete) */
	if (access(pin->info.ram_path, R_OK) < 0) {
		vft_tmpl_unpin(e->tmpl.t, pin);
		vft_tmpl_invalidate(e->tmpl.t, pin->info.slot);
		return;
	}
	if (pin->n_pages != hello->ram_size / VFT_PAGE_SIZE) {
		vft_tmpl_unpin(e->tmpl.t, pin);
		return;
	}
	e->tmpl.pinned = true;
	e->tmpl.pin_id = pin->info.id;
	e->tmpl.pin_slot = pin->info.slot;
	e->tmpl.pin_pages = pin->n_pages;
	e->tmpl.pin_blocks =
	        pin->n_blocks > 0 && pin->info.disk_size == hello->disk_size ? pin->n_blocks : 0;
	w->tmpl_id = pin->info.id;
	w->tmpl_pages = e->tmpl.pin_pages;
	w->tmpl_blocks = e->tmpl.pin_blocks;
}

static int send_table(int fd, uint32_t *seq, struct vft_mac *mac, uint32_t what, const uint64_t *h,
                      uint64_t n, uint8_t *buf)
{
	for (uint64_t first = 0; first < n; first += VFT_TMPL_BATCH) {
		uint32_t cnt = (uint32_t)(n - first < VFT_TMPL_BATCH ? n - first : VFT_TMPL_BATCH);
		struct iovec iov = {.iov_base = buf, .iov_len = 16 + (size_t)cnt * 8};
		int rc;

		vft_tmpl_encode_head(buf, what, cnt, first);
		for (uint32_t i = 0; i < cnt; i++)
			for (int b = 0; b < 8; b++)
				buf[16 + (size_t)i * 8 + b] = (uint8_t)(h[first + i] >> (8 * b));
		rc = eng_send_frame(fd, seq, mac, VFT_F_TMPL, 0, &iov, 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int eng_tmpl_send_hashes(struct vft_eng *e, int fd, uint32_t *seq, struct vft_mac *mac)
{
	const struct vft_tmpl_pin *pin = e->tmpl.pin;
	uint8_t *buf;
	int rc;

	if (!e->tmpl.pinned)
		return 0;
	buf = malloc(16 + (size_t)VFT_TMPL_BATCH * 8);
	if (buf == NULL)
		return -ENOMEM;
	rc = send_table(fd, seq, mac, VFT_TMPL_PAGES, pin->page_hashes, e->tmpl.pin_pages, buf);
	if (rc == 0)
		rc = send_table(fd, seq, mac, VFT_TMPL_BLOCKS, pin->block_hashes,
		                e->tmpl.pin_blocks, buf);
	free(buf);
	return rc;
}

static void set_bits(uint64_t *map, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		map[i / 64] |= 1ull << (i % 64);
}

static bool bit(const uint64_t *map, uint64_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}

/* A checked chunk of the template: written where the primary has not
 * written yet (its pages are newer), and not where it is all zero (the new
 * files start as holes). */
static int copy_sink(void *arg, bool disk, uint64_t off, const uint8_t *buf, size_t len)
{
	struct vft_eng *e = arg;
	const uint64_t *map = disk ? e->tmpl.sent_blocks : e->tmpl.sent_pages;
	int fd = disk ? e->tmpl.copy_disk_fd : e->tmpl.copy_ram_fd;
	int rc = 0;

	pthread_mutex_lock(&e->tmpl.copy_mu);
	for (size_t b = 0; rc == 0 && b < len;) {
		size_t end = b;

		while (end < len) {
			size_t k = len - end < VFT_TMPL_PAGE ? len - end : VFT_TMPL_PAGE;

			if (bit(map, (off + end) / VFT_TMPL_PAGE) ||
			    vft_store_all_zero(buf + end, k))
				break;
			end += k;
		}
		if (end > b) {
			ssize_t w = pwrite(fd, buf + b, end - b, (off_t)(off + b));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				rc = -errno;
			else
				b += (size_t)w;
			continue;
		}
		b += len - b < VFT_TMPL_PAGE ? len - b : VFT_TMPL_PAGE;
	}
	pthread_mutex_unlock(&e->tmpl.copy_mu);
	return rc;
}

static void *copy_main(void *arg)
{
	struct vft_eng *e = arg;

	e->tmpl.copy_rc =
	        vft_tmpl_copy_to(e->tmpl.t, e->tmpl.pin, e->tmpl.copy_disk, copy_sink, e,
	                         &e->tmpl.copy_stop, e->tmpl.copy_err, sizeof(e->tmpl.copy_err));
	e->tmpl.copy_ms = (af_mono_s() - e->tmpl.copy_started) * 1e3;
	return NULL;
}

/* Starts building the new generation from the pinned template while the
 * primary's pages arrive (eng_tmpl_put_*); eng_tmpl_finish waits for it. */
int eng_tmpl_build(struct vft_eng *e, uint32_t flags, char *why, size_t n)
{
	struct eng_tmpl *t = &e->tmpl;
	int rc;

	if (!t->pinned) {
		snprintf(why, n, "no template offered");
		return -EINVAL;
	}
	rc = vft_store_stage_fds(e->store, &t->copy_ram_fd, &t->copy_disk_fd);
	if (rc < 0) {
		snprintf(why, n, "no full sync staged");
		return rc;
	}
	t->copy_disk = (flags & VFT_BEGIN_TMPL_DISK) && t->copy_disk_fd >= 0;
	t->sent_pages = calloc(t->pin_pages / 64 + 1, sizeof(uint64_t));
	t->sent_blocks = calloc(t->pin_blocks / 64 + 1, sizeof(uint64_t));
	t->copy_stop = false;
	t->copy_rc = 0;
	t->copy_err[0] = '\0';
	t->copy_started = af_mono_s();
	if (t->sent_pages == NULL || t->sent_blocks == NULL ||
	    pthread_create(&t->copy_th, NULL, copy_main, e) != 0) {
		free(t->sent_pages);
		free(t->sent_blocks);
		t->sent_pages = t->sent_blocks = NULL;
		snprintf(why, n, "no memory or thread for the template copy");
		return -ENOMEM;
	}
	t->copying = true;
	return 0;
}

int eng_tmpl_put_pages(struct vft_eng *e, uint32_t count, const uint64_t *pfns, const void *pages)
{
	int rc;

	if (!e->tmpl.copying)
		return vft_store_put_pages(e->store, count, pfns, pages);
	pthread_mutex_lock(&e->tmpl.copy_mu);
	for (uint32_t i = 0; i < count; i++)
		if (pfns[i] < e->tmpl.pin_pages)
			set_bits(e->tmpl.sent_pages, pfns[i], 1);
	rc = vft_store_put_pages(e->store, count, pfns, pages);
	pthread_mutex_unlock(&e->tmpl.copy_mu);
	return rc;
}

int eng_tmpl_put_disk(struct vft_eng *e, uint64_t off, const void *data, size_t len)
{
	uint64_t first = off / VFT_TMPL_BLOCK,
	         last = (off + len + VFT_TMPL_BLOCK - 1) / VFT_TMPL_BLOCK;
	int rc;

	if (!e->tmpl.copying)
		return vft_store_put_disk(e->store, off, data, len);
	pthread_mutex_lock(&e->tmpl.copy_mu);
	if (last > e->tmpl.pin_blocks)
		last = e->tmpl.pin_blocks;
	if (first < last)
		set_bits(e->tmpl.sent_blocks, first, last - first);
	rc = vft_store_put_disk(e->store, off, data, len);
	pthread_mutex_unlock(&e->tmpl.copy_mu);
	return rc;
}

static void copy_end(struct vft_eng *e)
{
	pthread_join(e->tmpl.copy_th, NULL);
	e->tmpl.copying = false;
	free(e->tmpl.sent_pages);
	free(e->tmpl.sent_blocks);
	e->tmpl.sent_pages = e->tmpl.sent_blocks = NULL;
}

/* The template copy is complete before the epoch's event log is applied
 * (its disk writes may cover part of a block) and before the commit. */
int eng_tmpl_finish(struct vft_eng *e, char *why, size_t n)
{
	double t0 = af_mono_s();
	int rc;

	if (!e->tmpl.copying)
		return 0;
	copy_end(e);
	rc = e->tmpl.copy_rc;
	if (rc < 0) {
		unsigned slot = e->tmpl.pin_slot;
		uint64_t id = e->tmpl.pin_id;

		/* damaged (found by hash), or its files gone or unreadable:
		 * never build on it again; the primary reconnects and gets the
		 * other template or a plain full sync */
		eng_tmpl_unpin(e);
		vft_tmpl_invalidate(e->tmpl.t, slot);
		snprintf(why, n, "template %016llx is %s (%s): dropped", (unsigned long long)id,
		         rc == -EBADMSG ? "damaged" : "unreadable",
		         e->tmpl.copy_err[0] ? e->tmpl.copy_err : strerror(-rc));
		return rc;
	}
	eng_tlog(e, LOG_NOTICE,
	         "vmft %s: new generation built from template %016llx%s in %.0f ms beside the "
	         "primary's pages (hashes checked; waited %.0f ms for it)",
	         e->vm->name, (unsigned long long)e->tmpl.pin_id,
	         e->tmpl.copy_disk ? " and its disk base" : "", e->tmpl.copy_ms,
	         (af_mono_s() - t0) * 1e3);
	return 0;
}

void eng_tmpl_abort(struct vft_eng *e)
{
	if (!e->tmpl.copying)
		return;
	e->tmpl.copy_stop = true;
	copy_end(e);
}
