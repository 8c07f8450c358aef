/*
 * src/recovery: the module's contract, and the planner (pure): faults it
 * cannot read first, then each recovery class against a small cluster,
 * with the safety rules (quorum, fence or stop before takeover, no
 * promotion for a guest fault, no takeover without a healthy partner).
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault_inject.h"
#include "rcv.h"
#include "rcv_exec.h"
#include "rcv_journal.h"
#include "rcv_msg.h"
#include "rcv_pair.h"
#include "rcv_plan.h"

#define MODULE_PREFIX rcv
#define MODULE_NAME "recovery"
#include "check_module_contract.h"

/* blades 1-4, pairs 1+2 and 3+4; VMs on blade 3: db (ft), web (restart),
 * scratch (none); on blade 1: app (restart, 2 restarts allowed) */
static struct af_config *cluster_config(void)
{
	static const char text[] =
	        "shelf {\n credentials: /x\n manager {\n  address: 127.0.0.1\n }\n}\n"
	        "blade {\n slot: 1\n host: b1\n}\nblade {\n slot: 2\n host: b2\n}\n"
	        "blade {\n slot: 3\n host: b3\n}\nblade {\n slot: 4\n host: b4\n}\n"
	        "vm {\n name: db\n blade: 3\n protection: ft\n}\n"
	        "vm {\n name: web\n blade: 3\n protection: restart\n}\n"
	        "vm {\n name: scratch\n blade: 3\n protection: none\n}\n"
	        "vm {\n name: app\n blade: 1\n protection: restart\n max_restarts: 2\n}\n";
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;

	ck_assert_int_eq(af_cfg_parse_buffer("cluster", text, sizeof(text) - 1,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	return cfg;
}

static struct af_fault fault(enum af_layer l, enum af_scope sc, int blade, const char *vm,
                             enum af_recovery_class rc)
{
	struct af_fault f;

	memset(&f, 0, sizeof(f));
	f.id = 7;
	f.layer = l;
	f.severity = AF_SEV_FATAL;
	f.scope = sc;
	f.blade = blade;
	f.rclass = rc;
	af_strlcpy(f.rule, "test", sizeof(f.rule));
	if (vm)
		af_strlcpy(f.vm, vm, sizeof(f.vm));
	return f;
}

/* "kind:blade:vm" of each step, space separated */
static const char *steps(const struct rcv_plan *p)
{
	static char buf[1024];
	size_t pos = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < p->n_steps; i++) {
		int n = snprintf(buf + pos, sizeof(buf) - pos, "%s%s:%d%s%s", i ? " " : "",
		                 rcv_step_names[p->steps[i].kind], p->steps[i].blade,
		                 p->steps[i].vm[0] ? ":" : "", p->steps[i].vm);

		if (n < 0 || (size_t)n >= sizeof(buf) - pos)
			break;
		pos += (size_t)n;
	}
	return buf;
}

START_TEST(test_plan_refuses_bad_faults)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;
	struct af_fault f = fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 3, NULL, AF_RC_FAILOVER);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	ck_assert_int_eq(rcv_plan_fault(NULL, &f, &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_fault(&c, NULL, &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, NULL, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, NULL), -EINVAL);
	f.rclass = (enum af_recovery_class)AF_RC_COUNT;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), -EINVAL);
	f = fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 17, NULL, AF_RC_FAILOVER);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), -EINVAL);
	f = fault(AF_LAYER_HARDWARE, (enum af_scope)9, 3, NULL, AF_RC_FAILOVER);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), -EINVAL);
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_plan_fence_and_failover)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 3, NULL, AF_RC_FENCE_AND_FAILOVER);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	/* fence first; the ft VM is promoted, the restart VM started, the
	 * unprotected one left down; the partner carries it out */
	ck_assert_str_eq(steps(&p), "fence:3 promote:4:db start-vm:4:web notify:3:scratch");
	ck_assert_int_eq(p.owner, 4);
	ck_assert_uint_eq(p.fault_id, 7);
	/* without quorum: wait for it first */
	c.quorate = false;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "wait-quorum:0 fence:3 promote:4:db start-vm:4:web "
	                            "notify:3:scratch");
	/* a backup not in sync: the ft VM starts from its disk */
	c.quorate = true;
	c.vms[0].backup_in_sync = false;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "fence:3 start-vm:4:db start-vm:4:web notify:3:scratch");
	/* the partner is down too: fence, and nobody takes over */
	c.blades[4].member = false;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "fence:3 notify:3");
	c.blades[4].member = true;
	c.blades[4].faulty = true;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "fence:3 notify:3");
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_plan_failover_without_fence)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;
	struct af_fault f = fault(AF_LAYER_HYPERVISOR, AF_SCOPE_HOST, 3, NULL, AF_RC_FAILOVER);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	/* the blade is on: each protected VM must be confirmed stopped there,
	 * and a stop that cannot be confirmed escalates to a fence */
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "stop-vm:3:db stop-vm:3:web promote:4:db start-vm:4:web "
	                            "notify:3:scratch");
	ck_assert_int_eq(p.steps[0].on_fail_escalate, RCV_STEP_FENCE);
	/* the blade is known off: nothing to stop */
	c.blades[3].off = true;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "promote:4:db start-vm:4:web notify:3:scratch");
	/* a blade without VMs: said so */
	f.blade = 2;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:2");
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_plan_restart_then_move)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;
	struct af_fault f = fault(AF_LAYER_VM, AF_SCOPE_VM, 1, "app", AF_RC_RESTART_VM);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "restart-vm:1:app");
	c.vms[3].restarts_recent = 1;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "restart-vm:1:app");
	/* restarts exhausted: stop it, start it on the partner (from disk) */
	c.vms[3].restarts_recent = 2;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "stop-vm:1:app start-vm:2:app");
	ck_assert_int_eq(p.owner, 1);
	/* its hypervisor is down (libvirtd and its QEMU killed): the partner
	 * moves it, and fences blade 1 if the stop cannot be confirmed through
	 * the dead libvirt (the soak found the plan failing at the stop) */
	c.vms[3].restarts_recent = 0;
	c.blades[1].hypervisor_down = true;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "stop-vm:1:app start-vm:2:app");
	ck_assert_int_eq(p.owner, 2);
	ck_assert_int_eq(p.steps[0].on_fail_escalate, RCV_STEP_FENCE);
	c.blades[1].hypervisor_down = false;
	/* a late report from the blade the VM left (a fenced blade's daemon
	 * telling of its QEMU killed): it runs on blade 2 now, untouched */
	c.vms[3].blade = 2;
	c.vms[3].running = true;
	c.blades[1].off = true;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:1:app");
	ck_assert_str_eq(p.summary, "runs elsewhere: notify");
	c.blades[1].off = false;
	c.blades[1].member = false;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:1:app");
	c.blades[1].member = true;
	/* blade 1 is alive: no guard (blade 2's report may be stale, a
	 * migration just done): the restart it always was */
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "restart-vm:2:app");
	c.vms[3].blade = 1;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "restart-vm:1:app");
	c.vms[3].running = false;
	/* a guest fault of an ft VM never promotes its backup */
	f = fault(AF_LAYER_VM, AF_SCOPE_VM, 3, "db", AF_RC_RESTART_VM);
	c.vms[0].restarts_recent = 3;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "stop-vm:3:db start-vm:4:db");
	/* unknown and unprotected VMs: notify only */
	f = fault(AF_LAYER_VM, AF_SCOPE_VM, 3, "ghost", AF_RC_RESTART_VM);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3:ghost");
	f = fault(AF_LAYER_VM, AF_SCOPE_VM, 3, "scratch", AF_RC_RESTART_VM);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3:scratch");
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_plan_migrate_and_notify)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;
	struct af_fault f = fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 3, NULL, AF_RC_MIGRATE_AWAY);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "migrate:4:db migrate:4:web");
	c.blades[4].faulty = true;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3");
	/* notify-only, and shelf faults whatever their class */
	f.rclass = AF_RC_NOTIFY_ONLY;
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3");
	f = fault(AF_LAYER_HARDWARE, AF_SCOPE_SHELF, 0, NULL, AF_RC_FENCE_AND_FAILOVER);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:0");
	/* the plan keeps what the fault was raised on */
	for (int mo = 0; mo <= 1; mo++) {
		f = fault(AF_LAYER_HYPERVISOR, AF_SCOPE_BLADE, 3, NULL, AF_RC_FENCE_AND_FAILOVER);
		f.membership_only = mo;
		ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, &p), 0);
		ck_assert_int_eq(p.membership_only, mo);
	}
	af_cfg_free(cfg);
}
END_TEST

/* ---- the journal ---------------------------------------------------------------------- */

static char jdir[64];

static void jpath(char *buf, size_t len)
{
	if (jdir[0] == '\0') {
		af_strlcpy(jdir, "/tmp/check_rcv.XXXXXX", sizeof(jdir));
		ck_assert_ptr_nonnull(mkdtemp(jdir));
	}
	snprintf(buf, len, "%s/journal", jdir);
}

static void jcleanup(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/journal", jdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/journal.new", jdir);
	unlink(p);
	rmdir(jdir);
	jdir[0] = '\0';
}

static void a_plan(struct rcv_plan *p)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 3, NULL, AF_RC_FENCE_AND_FAILOVER);

	rcv_cluster_from_config(cfg, &c);
	rcv_timeouts_default(&t);
	ck_assert_int_eq(rcv_plan_fault(&c, &f, &t, p), 0);
	af_cfg_free(cfg);
}

/* A plan and its progress survive a restart; a finished plan is gone; a
 * torn last record and a damaged one are skipped, never trusted. */
START_TEST(test_journal_replay)
{
	struct rcv_journal *j = calloc(1, sizeof(*j)), *k = calloc(1, sizeof(*k));
	struct rcv_plan p;
	char path[128];
	struct stat st;
	int fd;

	jpath(path, sizeof(path));
	a_plan(&p);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_uint_eq(j->n_plans, 0);
	ck_assert_int_eq(rcv_journal_plan(j, 1, &p), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 1, &p), -EINVAL); /* the same id twice */
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_STARTED), 0);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), 0);
	ck_assert_int_eq(rcv_journal_step(j, 1, 1, RCV_ST_STARTED), 0);
	ck_assert_int_eq(rcv_journal_step(j, 1, 99, RCV_ST_DONE), -EINVAL);
	ck_assert_int_eq(rcv_journal_step(j, 9, 0, RCV_ST_DONE), -EINVAL);
	ck_assert_int_eq(rcv_journal_plan(j, 2, &p), 0);
	ck_assert_int_eq(rcv_journal_finish(j, 2), 0);
	rcv_journal_close(j);

	/* a restart: plan 1 in progress, step 0 done, step 1 started */
	ck_assert_int_eq(rcv_journal_open(k, path), 0);
	ck_assert_uint_eq(k->bad_lines, 0);
	ck_assert_uint_eq(k->n_plans, 1);
	ck_assert_uint_eq(k->plans[0].id, 1);
	ck_assert_uint_eq(k->plans[0].plan.n_steps, p.n_steps);
	for (unsigned i = 0; i < p.n_steps; i++) {
		ck_assert_int_eq(k->plans[0].plan.steps[i].kind, p.steps[i].kind);
		ck_assert_int_eq(k->plans[0].plan.steps[i].blade, p.steps[i].blade);
		ck_assert_str_eq(k->plans[0].plan.steps[i].vm, p.steps[i].vm);
		ck_assert_uint_eq(k->plans[0].plan.steps[i].timeout_ms, p.steps[i].timeout_ms);
		ck_assert_int_eq(k->plans[0].plan.steps[i].on_fail_escalate,
		                 p.steps[i].on_fail_escalate);
	}
	ck_assert_uint_eq(k->plans[0].plan.fault_id, p.fault_id);
	ck_assert_int_eq(k->plans[0].plan.owner, p.owner);
	ck_assert_int_eq(k->plans[0].plan.rclass, p.rclass);
	ck_assert_int_eq(k->plans[0].plan.steps[1].kind, RCV_STEP_PROMOTE);
	ck_assert_str_eq(k->plans[0].plan.steps[1].vm, "db");
	ck_assert_uint_eq(k->plans[0].state[0], RCV_ST_DONE);
	ck_assert_uint_eq(k->plans[0].state[1], RCV_ST_STARTED);
	ck_assert_uint_eq(k->plans[0].state[2], RCV_ST_PENDING);
	ck_assert_int_eq(rcv_journal_step(k, 1, 1, RCV_ST_DONE), 0);
	rcv_journal_close(k);

	/* damage: a line with a wrong checksum, and a torn last write */
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "rcvj1 999 finish id=1 *00000000\n", 32), 32);
	ck_assert_int_eq(write(fd, "rcvj1 1000 finish id=1 *1", 25), 25);
	close(fd);
	memset(k, 0, sizeof(*k));
	ck_assert_int_eq(rcv_journal_open(k, path), 0);
	ck_assert_uint_eq(k->bad_lines, 2);
	ck_assert_uint_eq(k->n_plans, 1); /* not finished by a record it cannot trust */
	ck_assert_uint_eq(k->plans[0].state[1], RCV_ST_DONE);
	/* it was rewritten clean: the next open has nothing to skip */
	rcv_journal_close(k);
	memset(k, 0, sizeof(*k));
	ck_assert_int_eq(rcv_journal_open(k, path), 0);
	ck_assert_uint_eq(k->bad_lines, 0);
	ck_assert_uint_eq(k->n_plans, 1);
	ck_assert_int_eq(rcv_journal_finish(k, 1), 0);
	ck_assert_int_eq(rcv_journal_compact(k), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	rcv_journal_close(k);
	/* not a regular file */
	ck_assert_int_eq(rcv_journal_open(k, jdir), -EISDIR);
	free(j);
	free(k);
	jcleanup();
}
END_TEST

/* The journal's line checksum (FNV-1a 32), for hand-made records. */
static uint32_t jsum(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void jwrite(const char *path, const char *const *recs, size_t n)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s *%08x\n", recs[i], jsum(recs[i]));
	fclose(f);
}

/* Found by fuzz_journal: a checksummed record numbered 2^64-1 was replayed,
 * the compaction after it numbered its rewrite from there and wrapped to 0,
 * and the next start refused the rewritten plan (lost). A sign before the
 * number wrapped the same way. Such records are damage now. */
START_TEST(test_journal_seq_bounds)
{
	struct rcv_journal *j = calloc(1, sizeof(*j));
	char path[128];
	static const char *const huge[] = {
	        "rcvj1 18446744073709551615 plan id=5 fault=7 class=fence-and-failover owner=4 "
	        "steps=fence:3:-:30000:notify,promote:4:vm1:5000:fence,start-vm:4:vm2:60000:notify",
	};
	static const char *const signed_seq[] = {
	        "rcvj1 1 plan id=5 fault=7 class=failover owner=4 steps=promote:4:vm1:5000:fence",
	        "rcvj1 -2 finish id=5",
	        "rcvj1 +3 finish id=5",
	        "rcvj1 9223372036854775808 finish id=5",
	};

	jpath(path, sizeof(path));
	jwrite(path, huge, 1);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 1);
	ck_assert_uint_eq(j->n_plans, 0);
	ck_assert_uint_eq(j->seq, 0);
	rcv_journal_close(j);

	jwrite(path, signed_seq, 4);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 3);
	ck_assert_uint_eq(j->n_plans, 1); /* not finished by records it cannot trust */
	ck_assert_uint_eq(j->seq, 2);     /* the plan rewritten after record 1 */
	rcv_journal_close(j);
	/* the compacted rewrite replays as it was */
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 0);
	ck_assert_uint_eq(j->n_plans, 1);
	ck_assert_uint_eq(j->plans[0].id, 5);
	rcv_journal_close(j);
	free(j);
	jcleanup();
}
END_TEST

/* A plan keeps what its fault was raised on: a daemon that resumes it
 * checks evidence that was only the membership again. A journal written
 * before plans carried it replays as events (not questioned); a value it
 * does not know is damage. */
START_TEST(test_journal_evidence)
{
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_plan p;
	char path[128];
	static const char *const recs[] = {
	        "rcvj1 1 plan id=5 fault=7 class=failover owner=4 steps=promote:4:vm1:5000:fence",
	        "rcvj1 2 plan id=6 fault=8 class=failover owner=4 evidence=membership "
	        "steps=promote:4:vm1:5000:fence",
	        "rcvj1 3 plan id=7 fault=9 class=failover owner=4 evidence=events "
	        "steps=promote:4:vm1:5000:fence",
	        "rcvj1 4 plan id=8 fault=10 class=failover owner=4 evidence=rumour "
	        "steps=promote:4:vm1:5000:fence",
	        "rcvj1 5 plan id=9 fault=11 class=failover owner=4 evidence= "
	        "steps=promote:4:vm1:5000:fence",
	        /* later evidence of the blade's own: events from then on */
	        "rcvj1 6 evidence id=6 evidence=events",
	        "rcvj1 7 evidence id=6 evidence=gossip",
	        "rcvj1 8 evidence id=7",
	};

	jpath(path, sizeof(path));
	jwrite(path, recs, 5);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 2);
	ck_assert_uint_eq(j->n_plans, 3);
	ck_assert(!j->plans[0].plan.membership_only);
	ck_assert(j->plans[1].plan.membership_only);
	ck_assert(!j->plans[2].plan.membership_only);
	rcv_journal_close(j);
	jwrite(path, recs, 8);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 4);
	ck_assert_uint_eq(j->n_plans, 3);
	ck_assert_uint_eq(j->plans[1].id, 6);
	ck_assert(!j->plans[1].plan.membership_only);
	ck_assert_int_eq(rcv_journal_evidence(j, 99, false), -EINVAL);
	ck_assert_int_eq(rcv_journal_evidence(j, 6, true), 0);
	rcv_journal_close(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 0); /* compacted at the last open */
	ck_assert(j->plans[1].plan.membership_only);
	ck_assert_int_eq(rcv_journal_evidence(j, 6, false), 0);
	rcv_journal_compact(j); /* a compaction keeps it */
	rcv_journal_close(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert(!j->plans[1].plan.membership_only);
	rcv_journal_close(j);
	jcleanup();

	/* written and replayed */
	for (int mo = 0; mo <= 1; mo++) {
		a_plan(&p);
		p.membership_only = mo;
		memset(j, 0, sizeof(*j));
		jpath(path, sizeof(path));
		ck_assert_int_eq(rcv_journal_open(j, path), 0);
		ck_assert_int_eq(rcv_journal_plan(j, 1, &p), 0);
		rcv_journal_close(j);
		memset(j, 0, sizeof(*j));
		ck_assert_int_eq(rcv_journal_open(j, path), 0);
		ck_assert_uint_eq(j->bad_lines, 0);
		ck_assert_uint_eq(j->n_plans, 1);
		ck_assert_int_eq(j->plans[0].plan.membership_only, mo);
		rcv_journal_close(j);
		jcleanup();
	}
	free(j);
}
END_TEST

/* The module plans every raised fault against the configured cluster and
 * logs it (dry run: nothing is carried out yet). */
START_TEST(test_module_plans_dry_run)
{
	struct af_config *cfg = cluster_config();
	struct af_module_env env = {.cfg = cfg};
	struct af_module_status st;
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 3, NULL, AF_RC_FENCE_AND_FAILOVER);
	struct rcv *m = NULL;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	ck_assert_int_eq(rcv_init(&m, &env), 0);
	rcv_fault_raised(NULL, &f);
	rcv_fault_raised(m, NULL);
	rcv_fault_raised(m, &f);
	f.blade = 99; /* unreadable: no plan */
	rcv_fault_raised(m, &f);
	rcv_describe(m, &st);
	ck_assert_str_eq(st.state, "observer"); /* never started for a blade */
	ck_assert_ptr_nonnull(strstr(st.detail, "1 plans made"));
	rcv_fini(m);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* What other blades report through CPG: a valid STATE places their VMs, a
 * malformed message changes nothing, and a blade that leaves the
 * membership takes its (now stale) report with it. */
START_TEST(test_module_cluster_view)
{
	struct af_config *cfg = cluster_config();
	struct af_module_env env = {.cfg = cfg};
	static struct rcv_msg msg;
	static char buf[RCV_MSG_MAX];
	bool nodes[AF_MAX_BLADES + 1] = {false}, daemons[AF_MAX_BLADES + 1] = {false};
	struct rcv *m = NULL;
	json_object *v;
	int n;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	ck_assert_int_eq(rcv_init(&m, &env), 0);
	nodes[3] = nodes[4] = daemons[3] = daemons[4] = true;
	rcv_membership(m, true, nodes, daemons);
	memset(&msg, 0, sizeof(msg));
	msg.type = RCV_MSG_STATE;
	msg.sender = 4;
	msg.seq = 1;
	msg.u.state.libvirt_up = true;
	msg.u.state.n_vms = 1;
	af_strlcpy(msg.u.state.vms[0].name, "web", sizeof(msg.u.state.vms[0].name));
	af_strlcpy(msg.u.state.vms[0].state, "running", sizeof(msg.u.state.vms[0].state));
	n = rcv_msg_encode(&msg, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	/* from another node than it claims: dropped */
	rcv_deliver(m, 3, buf, (size_t)n);
	v = rcv_vms_json(m);
	ck_assert_ptr_null(json_object_object_get(json_object_array_get_idx(v, 1), "running_on"));
	json_object_put(v);
	/* garbage: dropped */
	rcv_deliver(m, 4, "AFTC garbage", 12);
	/* a report that arrives before corosync lists its node counts once
	 * the node is listed */
	nodes[4] = false;
	rcv_membership(m, true, nodes, daemons);
	rcv_deliver(m, 4, buf, (size_t)n);
	nodes[4] = true;
	rcv_membership(m, true, nodes, daemons);
	v = rcv_vms_json(m);
	ck_assert_str_eq(
	        json_object_get_string(
	                json_object_array_get_idx(v, 1)
	                        ? json_object_object_get(json_object_array_get_idx(v, 1), "name")
	                        : NULL),
	        "web");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(json_object_array_get_idx(v, 1),
	                                                            "running_on")),
	                 4);
	json_object_put(v);
	/* blade 4 leaves: its report goes with it */
	nodes[4] = daemons[4] = false;
	rcv_membership(m, true, nodes, daemons);
	v = rcv_vms_json(m);
	ck_assert_ptr_null(json_object_object_get(json_object_array_get_idx(v, 1), "running_on"));
	json_object_put(v);
	v = rcv_plans_json(m, 0);
	ck_assert_int_eq(json_object_array_length(json_object_object_get(v, "active")), 0);
	json_object_put(v);
	rcv_fini(m);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* ---- the pair state machine ---------------------------------------------------------- */

START_TEST(test_pair_fsm)
{
	struct rcv_pair p;

	ck_assert_int_eq(af_fsm_check(&rcv_pair_fsm), 0);
	rcv_pair_init(&p, 4, 3); /* A is the lower slot */
	ck_assert_uint_eq(p.a, 3);
	ck_assert_uint_eq(p.b, 4);
	ck_assert_str_eq(af_fsm_state_name(&p.fsm), "FORMING");
	ck_assert_int_eq(rcv_pair_side(&p, 7, true), -EINVAL);
	ck_assert_int_eq(rcv_pair_fire(&p, (enum rcv_pair_event)RCV_PE_COUNT), -EINVAL);
	/* both up: protected only once the backups are in sync */
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_BOTH_UP), RCV_PAIR_SYNCING);
	ck_assert(!rcv_pair_protected(&p));
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_SYNC_DONE), RCV_PAIR_PROTECTED);
	ck_assert(rcv_pair_protected(&p));
	ck_assert_uint_eq(rcv_pair_runs_all(&p), 0);
	/* B lost: A takes over, then runs alone, unprotected */
	ck_assert_int_eq(rcv_pair_side(&p, 4, false), RCV_PAIR_TAKEOVER_A);
	ck_assert_uint_eq(rcv_pair_runs_all(&p), 3);
	ck_assert_int_eq(rcv_pair_side(&p, 4, false), -1); /* nothing new */
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_TAKEOVER_DONE), RCV_PAIR_ALONE_A);
	ck_assert(!rcv_pair_protected(&p));
	/* B back: resync, then protected again */
	ck_assert_int_eq(rcv_pair_side(&p, 4, true), RCV_PAIR_SYNCING);
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_SYNC_DONE), RCV_PAIR_PROTECTED);
	/* maintenance of A: B runs all; A may then go down */
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_MAINT_A), RCV_PAIR_MAINT_A);
	ck_assert_uint_eq(rcv_pair_runs_all(&p), 4);
	ck_assert_int_eq(rcv_pair_side(&p, 3, false), -1);
	ck_assert_int_eq(rcv_pair_fire(&p, RCV_PE_MAINT_OFF), RCV_PAIR_SYNCING);
	/* both lost: down, then whoever comes back first runs alone */
	ck_assert_int_eq(rcv_pair_side(&p, 3, false), RCV_PAIR_TAKEOVER_B);
	ck_assert_int_eq(rcv_pair_side(&p, 4, false), RCV_PAIR_DOWN);
	ck_assert_uint_eq(rcv_pair_runs_all(&p), 0);
	ck_assert_int_eq(rcv_pair_side(&p, 4, true), RCV_PAIR_ALONE_B);
	ck_assert_uint_eq(rcv_pair_runs_all(&p), 4);
	ck_assert_int_eq(rcv_pair_side(&p, 3, true), RCV_PAIR_SYNCING);
	/* a pair heard from one side only at first */
	rcv_pair_init(&p, 1, 2);
	ck_assert_int_eq(rcv_pair_side(&p, 2, true), RCV_PAIR_ALONE_B);
}
END_TEST

/* ---- the plan runner (fake actions, fake clock) ------------------------------------------ */

struct fake {
	bool quorate;
	int fail_kind; /* a step kind whose action fails, -1 none */
	bool sync;     /* complete inside act() */
	unsigned acts;
	char log[1024];
	uint64_t last_run;
	unsigned last_step;
	unsigned ended;
	int ended_state;
	unsigned eagain; /* answer -EAGAIN this many times first */
	struct rcv_exec *x;
};

static int fake_act(void *opaque, const struct rcv_run *r, unsigned i, enum rcv_step_kind kind)
{
	struct fake *f = opaque;
	size_t n = strlen(f->log);

	f->acts++;
	if (f->eagain > 0) {
		f->eagain--;
		return -EAGAIN;
	}
	snprintf(f->log + n, sizeof(f->log) - n, "%s%s:%d", n ? " " : "", rcv_step_names[kind],
	         r->plan.steps[i].blade);
	f->last_run = r->id;
	f->last_step = i;
	if (f->sync)
		rcv_exec_step_done(f->x, r->id, i, (int)kind == f->fail_kind ? -EIO : 0, "sync", 1);
	return 0;
}

static bool fake_quorate(void *opaque)
{
	return ((struct fake *)opaque)->quorate;
}

static void fake_ended(void *opaque, const struct rcv_run *r)
{
	struct fake *f = opaque;

	f->ended++;
	f->ended_state = (int)r->state;
}

static const struct rcv_exec_ops fake_ops = {
        .act = fake_act, .quorate = fake_quorate, .ended = fake_ended};

static void plan_add(struct rcv_plan *p, enum rcv_step_kind k, int blade, const char *vm,
                     uint32_t timeout)
{
	struct rcv_step *s = &p->steps[p->n_steps++];

	memset(s, 0, sizeof(*s));
	s->kind = k;
	s->blade = blade;
	af_strlcpy(s->vm, vm ? vm : "", sizeof(s->vm));
	s->timeout_ms = timeout;
	s->on_fail_escalate = k == RCV_STEP_STOP_VM ? RCV_STEP_FENCE : RCV_STEP_NOTIFY;
}

#define MS(x) ((uint64_t)(x)*1000000ULL)

START_TEST(test_exec_invalid)
{
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = true, .fail_kind = -1};

	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(rcv_exec_init(NULL, &fake_ops, &f, NULL, 0), -EINVAL);
	ck_assert_int_eq(rcv_exec_init(&x, NULL, &f, NULL, 0), -EINVAL);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, NULL, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, NULL), -EINVAL); /* no steps */
	ck_assert_int_eq(rcv_exec_start(&x, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(rcv_exec_step_done(&x, 42, 0, 0, "late", 0), -ENOENT);
	ck_assert_uint_eq(rcv_exec_next_deadline(&x), 0);
	rcv_exec_fini(&x);
}
END_TEST

/* Steps run in order; each waits for its completion; the run ends done. */
START_TEST(test_exec_order_and_timeout)
{
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = true, .fail_kind = -1, .x = &x};
	uint64_t id;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_FENCE, 3, NULL, 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 2000);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, NULL, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, MS(10), &id), 0);
	ck_assert_str_eq(f.log, "fence:3");
	ck_assert_uint_eq(rcv_exec_next_deadline(&x), MS(1010));
	/* a completion for the wrong step is ignored */
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 1, 0, "no", MS(20)), -ENOENT);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 0, 0, "off", MS(500)), 0);
	ck_assert_str_eq(f.log, "fence:3 start-vm:4");
	ck_assert_ptr_nonnull(rcv_exec_busy(&x, 0, "web"));
	/* the start never answers: failed at its deadline, plan failed */
	rcv_exec_tick(&x, MS(2499));
	ck_assert_uint_eq(f.ended, 0);
	rcv_exec_tick(&x, MS(2500));
	ck_assert_uint_eq(f.ended, 1);
	ck_assert_int_eq(f.ended_state, RCV_RUN_FAILED);
	ck_assert_uint_eq(x.n_runs, 0);
	ck_assert_ptr_nonnull(rcv_exec_find(&x, id));
	ck_assert_int_eq(rcv_exec_find(&x, id)->st[1], RCV_ST_FAILED);
	ck_assert_ptr_nonnull(strstr(rcv_exec_find(&x, id)->msg[1], "timeout"));
	rcv_exec_fini(&x);
	af_fini();
}
END_TEST

/* No takeover step without quorum: it waits, then fails at the deadline;
 * quorum coming back in time lets it go on. */
START_TEST(test_exec_quorum_gate)
{
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = false, .fail_kind = -1, .sync = true, .x = &x};

	ck_assert_int_eq(af_init("check_recovery"), 0);
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_STOP_VM, 3, "web", 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 1000);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, NULL, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, NULL), 0);
	/* the stop is not a takeover: it ran; the start waits */
	ck_assert_str_eq(f.log, "stop-vm:3");
	ck_assert_int_eq(x.runs[0]->state, RCV_RUN_WAITING);
	rcv_exec_tick(&x, MS(500));
	ck_assert_str_eq(f.log, "stop-vm:3");
	f.quorate = true;
	rcv_exec_tick(&x, MS(600));
	ck_assert_str_eq(f.log, "stop-vm:3 start-vm:4");
	ck_assert_int_eq(f.ended_state, RCV_RUN_DONE);
	/* and without quorum to the end: failed, nothing started */
	f.quorate = false;
	f.log[0] = '\0';
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_PROMOTE, 4, "db", 1000);
	ck_assert_int_eq(rcv_exec_start(&x, &p, MS(1000), NULL), 0);
	rcv_exec_tick(&x, MS(2000));
	ck_assert_str_eq(f.log, "");
	ck_assert_int_eq(f.ended_state, RCV_RUN_FAILED);
	rcv_exec_fini(&x);
	af_fini();
}
END_TEST

/* A stop that fails escalates to a fence of the blade; a failed fence
 * fails the plan before anything starts elsewhere. */
START_TEST(test_exec_escalation)
{
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = true, .fail_kind = RCV_STEP_STOP_VM, .sync = true, .x = &x};

	ck_assert_int_eq(af_init("check_recovery"), 0);
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_STOP_VM, 3, "web", 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 1000);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, NULL, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, NULL), 0);
	ck_assert_str_eq(f.log, "stop-vm:3 fence:3 start-vm:4");
	ck_assert_int_eq(f.ended_state, RCV_RUN_DONE);
	f.log[0] = '\0';
	f.fail_kind = RCV_STEP_FENCE;
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_FENCE, 3, NULL, 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 1000);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, NULL), 0);
	ck_assert_str_eq(f.log, "fence:3");
	ck_assert_int_eq(f.ended_state, RCV_RUN_FAILED);
	rcv_exec_fini(&x);
	af_fini();
}
END_TEST

/* An action that cannot start yet (-EAGAIN: no shelf session) is tried
 * again within its step's time, then fails. */
START_TEST(test_exec_retry)
{
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = true, .fail_kind = -1, .sync = true, .eagain = 2, .x = &x};

	ck_assert_int_eq(af_init("check_recovery"), 0);
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_FENCE, 3, NULL, 1000);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, NULL, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, NULL), 0);
	ck_assert_uint_eq(f.acts, 1);
	ck_assert_uint_eq(rcv_exec_next_deadline(&x), RCV_EXEC_RETRY_NS);
	rcv_exec_tick(&x, RCV_EXEC_RETRY_NS / 2); /* too early */
	ck_assert_uint_eq(f.acts, 1);
	rcv_exec_tick(&x, RCV_EXEC_RETRY_NS);
	ck_assert_uint_eq(f.acts, 2);
	rcv_exec_tick(&x, 2 * RCV_EXEC_RETRY_NS);
	ck_assert_uint_eq(f.acts, 3);
	ck_assert_int_eq(f.ended_state, RCV_RUN_DONE);
	/* never possible: failed once its time is spent */
	f.eagain = 1000;
	f.ended = 0;
	ck_assert_int_eq(rcv_exec_start(&x, &p, MS(2000), NULL), 0);
	for (unsigned i = 1; i <= 10 && f.ended == 0; i++)
		rcv_exec_tick(&x, MS(2000) + i * RCV_EXEC_RETRY_NS);
	ck_assert_uint_eq(f.ended, 1);
	ck_assert_int_eq(f.ended_state, RCV_RUN_FAILED);
	rcv_exec_fini(&x);
	af_fini();
}
END_TEST

/* A daemon that dies mid-plan resumes it from the journal: finished steps
 * are not run again, the step that was begun runs again. */
START_TEST(test_exec_resume_from_journal)
{
	char *dir = make_temp_dir();
	char path[512];
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_exec x;
	struct rcv_plan p;
	struct fake f = {.quorate = true, .fail_kind = -1, .x = &x};
	uint64_t id;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	snprintf(path, sizeof(path), "%s/j", dir);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	memset(&p, 0, sizeof(p));
	plan_add(&p, RCV_STEP_FENCE, 3, NULL, 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "db", 1000);
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, j, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, &id), 0);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 0, 0, "off", MS(1)), 0);
	ck_assert_str_eq(f.log, "fence:3 start-vm:4");
	/* crash: the start of web was begun, never ended */
	rcv_exec_fini(&x);
	rcv_journal_close(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->n_plans, 1);
	f.log[0] = '\0';
	ck_assert_int_eq(rcv_exec_init(&x, &fake_ops, &f, j, 0), 0);
	ck_assert_uint_eq(x.n_runs, 1);
	ck_assert(x.next_id > id);
	ck_assert_uint_eq(rcv_exec_next_deadline(&x), 1); /* resume at once */
	rcv_exec_tick(&x, MS(5));
	ck_assert_str_eq(f.log, "start-vm:4"); /* no second fence */
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 1, 0, "ok", MS(6)), 0);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 2, 0, "ok", MS(7)), 0);
	ck_assert_int_eq(f.ended_state, RCV_RUN_DONE);
	rcv_exec_fini(&x);
	rcv_journal_close(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->n_plans, 0); /* finished: nothing to resume */
	rcv_journal_close(j);
	free(j);
	remove_temp_dir(dir);
	af_fini();
}
END_TEST

/* ---- the journal on a full or failing disk (tests/fault_inject.c) ------------------------ */

static off_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/* Reopens the journal at path and checks it replays without a bad line. */
static void reopen_clean(struct rcv_journal *j, const char *path, unsigned plans)
{
	rcv_journal_close(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_uint_eq(j->bad_lines, 0);
	ck_assert_uint_eq(j->n_plans, plans);
}

/* Appends on a full disk (write short, then ENOSPC), EDQUOT, a failing
 * flush (EIO) and a failing cut: the journal never holds a fragment, the
 * in-memory state follows only what is on disk, and it works again once
 * writes do. */
START_TEST(test_journal_append_failures)
{
	char *dir = make_temp_dir(), path[512];
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_plan p;
	char *before, *after;
	off_t size;

	snprintf(path, sizeof(path), "%s/journal", dir);
	a_plan(&p);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 1, &p), 0);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_STARTED), 0);
	size = file_size(path);
	ck_assert_int_eq(j->size, size);
	before = slurp(path);

	/* the disk fills in the middle of a record */
	fi_arm(FI_WRITE, dir, 0, 0, ENOSPC, true);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), -ENOSPC);
	ck_assert_uint_ge(fi_failed(FI_WRITE), 2); /* half written, then refused */
	ck_assert_int_eq(file_size(path), size);   /* the half is cut off again */
	ck_assert_uint_eq(j->plans[0].state[0], RCV_ST_STARTED);
	ck_assert_int_eq(rcv_journal_plan(j, 2, &p), -ENOSPC);
	ck_assert_uint_eq(j->n_plans, 1);
	ck_assert_int_eq(rcv_journal_finish(j, 1), -ENOSPC);
	ck_assert_uint_eq(j->n_plans, 1);
	ck_assert_int_eq(rcv_journal_probe(j), -ENOSPC);
	fi_arm(FI_WRITE, dir, 0, 0, EDQUOT, false);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), -EDQUOT);
	fi_disarm();
	after = slurp(path);
	ck_assert_str_eq(after, before); /* byte for byte */
	free(after);

	/* written but not flushed: not a record either */
	fi_arm(FI_FDATASYNC, dir, 0, 1, EIO, false);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), -EIO);
	ck_assert_int_eq(file_size(path), size);

	/* the cut itself fails: the fragment is cut before the next record */
	fi_arm(FI_WRITE, dir, 0, 0, ENOSPC, true);
	fi_arm(FI_FTRUNCATE, dir, 0, 1, EIO, false);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), -ENOSPC);
	ck_assert(j->torn);
	ck_assert_int_gt(file_size(path), size);
	fi_disarm();

	/* space is back */
	ck_assert_int_eq(rcv_journal_probe(j), 0);
	ck_assert(!j->torn);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 2, &p), 0);
	ck_assert_int_eq(file_size(path), j->size);
	reopen_clean(j, path, 2);
	ck_assert_uint_eq(j->plans[0].state[0], RCV_ST_DONE);
	rcv_journal_close(j);
	free(before);
	free(j);
	remove_temp_dir(dir);
}
END_TEST

/* Compaction that fails at any point (creating, writing, flushing,
 * renaming) leaves the old journal as it was, and in use; one that
 * succeeds needs no open() after its rename (EMFILE then is harmless). */
START_TEST(test_journal_compaction_failures)
{
	static const struct {
		enum fi_call call;
		int err;
	} fails[] = {
	        {FI_OPEN, EMFILE}, {FI_OPEN, ENOSPC},   {FI_WRITE, ENOSPC},
	        {FI_FSYNC, EIO},   {FI_RENAME, ENOSPC},
	};
	char *dir = make_temp_dir(), path[512], tmp[600];
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_plan p;
	char *before, *after;

	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	a_plan(&p);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 1, &p), 0);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_DONE), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 2, &p), 0);
	ck_assert_int_eq(rcv_journal_finish(j, 2), 0);
	before = slurp(path);
	for (size_t i = 0; i < AF_ARRAY_SIZE(fails); i++) {
		fi_arm(fails[i].call, tmp, 0, 0, fails[i].err, fails[i].call == FI_WRITE);
		ck_assert_int_eq(rcv_journal_compact(j), -fails[i].err);
		fi_disarm();
		after = slurp(path);
		ck_assert_msg(strcmp(after, before) == 0, "case %zu changed the journal", i);
		free(after);
		ck_assert_int_eq(access(tmp, F_OK), -1); /* no leftover */
		ck_assert_int_eq(j->size, file_size(path));
	}
	/* still in use after all that */
	ck_assert_int_eq(rcv_journal_step(j, 1, 1, RCV_ST_STARTED), 0);
	/* every open after the temp file's fails: the compaction still holds */
	fi_arm(FI_OPEN, dir, 1, 0, EMFILE, false);
	ck_assert_int_eq(rcv_journal_compact(j), 0);
	fi_disarm();
	ck_assert_int_eq(j->size, file_size(path));
	ck_assert_int_eq(rcv_journal_step(j, 1, 1, RCV_ST_DONE), 0);
	reopen_clean(j, path, 1);
	ck_assert_uint_eq(j->plans[0].state[1], RCV_ST_DONE);
	rcv_journal_close(j);
	free(before);
	free(j);
	remove_temp_dir(dir);
}
END_TEST

/* A torn tail found at start-up on a disk still full: the rewrite fails, the
 * tail is cut off instead (needs no space) and the journal is usable. */
START_TEST(test_journal_torn_tail_on_full_disk)
{
	char *dir = make_temp_dir(), path[512], tmp[600];
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_plan p;
	off_t good;
	int fd;

	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	a_plan(&p);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	ck_assert_int_eq(rcv_journal_plan(j, 1, &p), 0);
	rcv_journal_close(j);
	good = file_size(path);
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "rcvj1 2 step id=1 n=0 st", 24), 24);
	close(fd);
	memset(j, 0, sizeof(*j));
	fi_arm(FI_WRITE, tmp, 0, 0, ENOSPC, false);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	fi_disarm();
	ck_assert_int_eq(j->open_compact_rc, -ENOSPC);
	ck_assert_uint_eq(j->bad_lines, 1);
	ck_assert_uint_eq(j->n_plans, 1);
	ck_assert_int_eq(file_size(path), good);
	ck_assert_int_eq(rcv_journal_step(j, 1, 0, RCV_ST_STARTED), 0);
	reopen_clean(j, path, 1);
	ck_assert_uint_eq(j->plans[0].state[0], RCV_ST_STARTED);
	rcv_journal_close(j);
	free(j);
	remove_temp_dir(dir);
}
END_TEST

static unsigned journal_down_calls;
static int journal_down_rc;

static void fake_journal_down(void *opaque, int rc)
{
	(void)opaque;
	journal_down_calls++;
	journal_down_rc = rc;
}

/* The runner on a journal that fails: a plan in progress goes on, a new
 * plan is refused (without acting) until a retry succeeds, and the retry
 * writes what the journal missed: a restart then resumes the right step. */
START_TEST(test_exec_journal_down)
{
	static const struct rcv_exec_ops ops = {.act = fake_act,
	                                        .quorate = fake_quorate,
	                                        .ended = fake_ended,
	                                        .journal_down = fake_journal_down};
	char *dir = make_temp_dir(), path[512];
	struct rcv_journal *j = calloc(1, sizeof(*j));
	struct rcv_exec x;
	struct rcv_plan p, q;
	struct fake f = {.quorate = true, .fail_kind = -1, .x = &x};
	uint64_t id, id2;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	journal_down_calls = 0;
	snprintf(path, sizeof(path), "%s/j", dir);
	ck_assert_int_eq(rcv_journal_open(j, path), 0);
	memset(&p, 0, sizeof(p));
	p.membership_only = true;
	plan_add(&p, RCV_STEP_FENCE, 3, NULL, 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "web", 1000);
	plan_add(&p, RCV_STEP_START_VM, 4, "db", 1000);
	memset(&q, 0, sizeof(q));
	plan_add(&q, RCV_STEP_STOP_VM, 1, "app", 1000);
	ck_assert_int_eq(rcv_exec_init(&x, &ops, &f, j, 0), 0);
	ck_assert_int_eq(rcv_exec_start(&x, &p, 0, &id), 0);

	/* the disk fills while the fence is in progress */
	fi_arm(FI_WRITE, dir, 0, 0, ENOSPC, true);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 0, 0, "off", MS(1)), 0);
	ck_assert_uint_eq(journal_down_calls, 1);
	ck_assert_int_eq(journal_down_rc, -ENOSPC);
	ck_assert(x.journal_down);
	ck_assert_str_eq(f.log, "fence:3 start-vm:4"); /* the plan goes on */
	/* a new plan is refused, without acting, and without another call */
	f.log[0] = '\0';
	ck_assert_int_eq(rcv_exec_start(&x, &q, MS(2), &id2), -ENOSPC);
	ck_assert_str_eq(f.log, "");
	ck_assert_uint_eq(x.refused, 1);
	ck_assert_uint_eq(x.n_runs, 1);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 1, 0, "ok", MS(3)), 0);
	ck_assert_uint_eq(journal_down_calls, 1);
	/* the blade's own evidence comes in: kept for the retry too */
	ck_assert_int_eq(rcv_exec_evidence_found(&x, 999, MS(3)), -ENOENT);
	ck_assert_int_eq(rcv_exec_evidence_found(&x, id, MS(3)), 0);
	ck_assert(j->plans[0].plan.membership_only);
	ck_assert_int_eq(rcv_exec_journal_retry(&x), -ENOSPC);
	ck_assert(x.journal_down);
	fi_disarm();

	/* space is back: the retry writes steps 0 and 1 done, step 2 started */
	ck_assert_int_eq(rcv_exec_journal_retry(&x), 0);
	ck_assert(!x.journal_down);
	ck_assert_uint_eq(j->plans[0].state[0], RCV_ST_DONE);
	ck_assert_uint_eq(j->plans[0].state[1], RCV_ST_DONE);
	ck_assert_uint_eq(j->plans[0].state[2], RCV_ST_STARTED);
	ck_assert(!j->plans[0].plan.membership_only);
	ck_assert_int_eq(rcv_exec_start(&x, &q, MS(4), &id2), 0);
	ck_assert_uint_eq(x.n_runs, 2);

	/* the disk fills again; plan 1 ends meanwhile: its end is written later */
	fi_arm(FI_WRITE, dir, 0, 0, ENOSPC, false);
	ck_assert_int_eq(rcv_exec_step_done(&x, id, 2, 0, "ok", MS(5)), 0);
	ck_assert_uint_eq(journal_down_calls, 2);
	fi_disarm();
	ck_assert_int_eq(rcv_exec_journal_retry(&x), 0);
	ck_assert_uint_eq(j->n_plans, 1); /* plan 1 finished in the journal too */

	/* a crash now resumes plan 2 only, at its stop-vm */
	rcv_exec_fini(&x);
	reopen_clean(j, path, 1);
	ck_assert_uint_eq(j->plans[0].id, id2);
	rcv_journal_close(j);
	free(j);
	remove_temp_dir(dir);
	af_fini();
}
END_TEST

/* ---- cluster messages -------------------------------------------------------------------- */

static int enc(const struct rcv_msg *m, char *buf, size_t len)
{
	int n = rcv_msg_encode(m, buf, len);

	ck_assert_int_gt(n, RCV_MSG_HDR);
	return n;
}

/* A frame's body changed in place: its checksum made right again. */
static void reseal(char *buf, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = RCV_MSG_HDR; i < n; i++) {
		h ^= (uint8_t)buf[i];
		h *= 16777619u;
	}
	h = htonl(h);
	memcpy(buf + 24, &h, 4);
}

START_TEST(test_msg_rejects_bad_input)
{
	static struct rcv_msg m, out;
	static char buf[RCV_MSG_MAX];
	char why[160];
	int n;

	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(rcv_msg_encode(NULL, buf, sizeof(buf)), -EINVAL);
	m.type = (enum rcv_msg_type)0;
	ck_assert_int_eq(rcv_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rcv_msg_decode(buf, 3, 0, &out, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "header"));
	m.type = RCV_MSG_PROGRESS;
	m.sender = 2;
	m.seq = 9;
	m.u.progress.id = 5;
	af_strlcpy(m.u.progress.step_state, "done", sizeof(m.u.progress.step_state));
	af_strlcpy(m.u.progress.run_state, "running", sizeof(m.u.progress.run_state));
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_encode(&m, buf, 40), -ENOSPC);
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), 0);
	ck_assert_uint_eq(out.seq, 9);
	/* the sender must be the CPG node */
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 3, &out, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "sender"));
	/* truncated */
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n - 1, 2, &out, why, sizeof(why)), -EBADMSG);
	/* a newer version */
	buf[5] = 2;
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), -EPROTO);
	buf[5] = 1;
	/* flipped body byte: checksum */
	buf[RCV_MSG_HDR + 3] ^= 1;
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "checksum"));
	buf[RCV_MSG_HDR + 3] ^= 1;
	/* bad magic, unknown type */
	buf[0] = 'X';
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), -EBADMSG);
	buf[0] = 'A';
	buf[7] = 9;
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), -EBADMSG);
	buf[7] = RCV_MSG_PROGRESS;
	/* a valid frame around an invalid value */
	af_strlcpy(m.u.progress.step_state, "exploded", sizeof(m.u.progress.step_state));
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 2, &out, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "step_state"));
	/* a plan with a bogus step kind and a VM name with a control character */
	memset(&m, 0, sizeof(m));
	m.type = RCV_MSG_PLAN;
	m.sender = 1;
	m.u.plan.id = 3;
	plan_add(&m.u.plan.plan, RCV_STEP_START_VM, 2, "web\001", 100);
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 1, &out, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "vm"));
	/* a state whose VM list is not a list */
	{
		static const char body[] = "{\"libvirt_up\":true,\"maintenance\":false,"
		                           "\"quorate\":true,\"vms\":7,\"runs\":[],\"faults\":[]}";
		memset(&m, 0, sizeof(m));
		m.type = RCV_MSG_STATE;
		m.sender = 1;
		n = enc(&m, buf, sizeof(buf));
		memcpy(buf + RCV_MSG_HDR, body, sizeof(body) - 1);
		/* fix length and checksum so only the body is wrong */
		{
			uint32_t len = htonl((uint32_t)(sizeof(body) - 1)), h = 2166136261u;

			for (size_t i = 0; i < sizeof(body) - 1; i++) {
				h ^= (uint8_t)body[i];
				h *= 16777619u;
			}
			h = htonl(h);
			memcpy(buf + 8, &len, 4);
			memcpy(buf + 24, &h, 4);
		}
		ck_assert_int_eq(rcv_msg_decode(buf, RCV_MSG_HDR + sizeof(body) - 1, 1, &out, why,
		                                sizeof(why)),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(why, "vms"));
		ck_assert_uint_eq(out.u.state.n_vms, 0); /* nothing half-applied */
	}
}
END_TEST

START_TEST(test_msg_round_trip)
{
	static struct rcv_msg m, out;
	static char buf[RCV_MSG_MAX];
	char why[160];
	int n;

	memset(&m, 0, sizeof(m));
	m.type = RCV_MSG_STATE;
	m.sender = 4;
	m.seq = 1ULL << 40;
	m.u.state.libvirt_up = true;
	m.u.state.quorate = true;
	m.u.state.n_vms = 2;
	af_strlcpy(m.u.state.vms[0].name, "web", sizeof(m.u.state.vms[0].name));
	af_strlcpy(m.u.state.vms[0].state, "running", sizeof(m.u.state.vms[0].state));
	af_strlcpy(m.u.state.vms[1].name, "db", sizeof(m.u.state.vms[1].name));
	af_strlcpy(m.u.state.vms[1].state, "shutoff", sizeof(m.u.state.vms[1].state));
	m.u.state.n_runs = 1;
	m.u.state.runs[0].id = 12;
	m.u.state.runs[0].n_steps = 3;
	m.u.state.runs[0].step = 1;
	af_strlcpy(m.u.state.runs[0].state, "running", sizeof(m.u.state.runs[0].state));
	m.u.state.n_faults = 1;
	af_strlcpy(m.u.state.faults[0], "7 power-lost blade 3", sizeof(m.u.state.faults[0]));
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 4, &out, why, sizeof(why)), 0);
	ck_assert_uint_eq(out.seq, 1ULL << 40);
	ck_assert_uint_eq(out.u.state.n_vms, 2);
	ck_assert_str_eq(out.u.state.vms[1].state, "shutoff");
	ck_assert_uint_eq(out.u.state.runs[0].id, 12);
	ck_assert_str_eq(out.u.state.faults[0], "7 power-lost blade 3");
	memset(&m, 0, sizeof(m));
	m.type = RCV_MSG_PLAN;
	m.sender = 2;
	m.u.plan.id = 77;
	m.u.plan.plan.rclass = AF_RC_FENCE_AND_FAILOVER;
	m.u.plan.plan.owner = 2;
	plan_add(&m.u.plan.plan, RCV_STEP_FENCE, 1, NULL, 30000);
	plan_add(&m.u.plan.plan, RCV_STEP_STOP_VM, 1, "web", 60000);
	plan_add(&m.u.plan.plan, RCV_STEP_START_VM, 2, "web", 60000);
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 0, &out, why, sizeof(why)), 0);
	ck_assert_str_eq(steps(&out.u.plan.plan), "fence:1 stop-vm:1:web start-vm:2:web");
	/* the escalation of a stop survives the trip: a requested plan still
	 * fences a blade whose VM cannot be proven stopped */
	ck_assert_int_eq(out.u.plan.plan.rclass, AF_RC_FENCE_AND_FAILOVER);
	ck_assert_int_eq(out.u.plan.plan.steps[1].on_fail_escalate, RCV_STEP_FENCE);
	ck_assert_int_eq(out.u.plan.plan.steps[2].on_fail_escalate, RCV_STEP_NOTIFY);
	ck_assert(!out.u.plan.plan.membership_only);
	/* what the plan rests on goes along: the blade that carries it out
	 * checks it again after a restart of its own */
	m.u.plan.plan.membership_only = true;
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 0, &out, why, sizeof(why)), 0);
	ck_assert(out.u.plan.plan.membership_only);
	/* an unknown value is refused; a daemon that does not send it sends
	 * events (tested by hand-made bodies in test_msg_rejects_bad_input) */
	{
		char *e = memmem(buf + RCV_MSG_HDR, (size_t)n - RCV_MSG_HDR, "membership", 10);

		ck_assert_ptr_nonnull(e);
		memcpy(e, "membersHip", 10);
		reseal(buf, (size_t)n);
		ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 0, &out, why, sizeof(why)),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(why, "evidence"));
		memcpy(e, "membership", 10);
		memcpy(e - 11, "evidencX", 8); /* "evidence":" -> an unknown key */
		reseal(buf, (size_t)n);
		ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 0, &out, why, sizeof(why)), 0);
		ck_assert(!out.u.plan.plan.membership_only);
	}
	/* ... and no other step may claim one */
	m.u.plan.plan.steps[2].on_fail_escalate = RCV_STEP_FENCE;
	n = enc(&m, buf, sizeof(buf));
	ck_assert_int_eq(rcv_msg_decode(buf, (size_t)n, 0, &out, why, sizeof(why)), -EBADMSG);
}
END_TEST

START_TEST(test_plan_switchover)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;

	rcv_timeouts_default(&t);
	rcv_cluster_from_config(cfg, &c);
	ck_assert_int_eq(rcv_plan_switchover(NULL, 3, NULL, false, &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_switchover(&c, 3, "nosuch", false, &t, &p), -ENOENT);
	ck_assert_int_eq(rcv_plan_switchover(&c, 0, NULL, false, &t, &p), -EINVAL);
	/* one running VM: live migration to the partner */
	ck_assert_int_eq(rcv_plan_switchover(&c, 0, "web", false, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "migrate:4:web");
	/* a whole blade, one VM stopped: confirmed stopped, then started there */
	c.vms[1].running = false;
	ck_assert_int_eq(rcv_plan_switchover(&c, 3, NULL, true, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "migrate:4:db stop-vm:3:web start-vm:4:web migrate:4:scratch");
	ck_assert_ptr_nonnull(strstr(p.summary, "evacuate"));
	/* without quorum: wait first; partner down: refused */
	c.quorate = false;
	ck_assert_int_eq(rcv_plan_switchover(&c, 0, "db", false, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "wait-quorum:0 migrate:4:db");
	c.blades[4].member = false;
	ck_assert_int_eq(rcv_plan_switchover(&c, 0, "db", false, &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3:db");
	af_cfg_free(cfg);
}
END_TEST

/* A VM the blade's daemon stopped for a lost quorum, quorum back. */
START_TEST(test_plan_resume)
{
	struct af_config *cfg = cluster_config();
	struct rcv_cluster c;
	struct rcv_timeouts t;
	struct rcv_plan p;

	rcv_timeouts_default(&t);
	rcv_cluster_from_config(cfg, &c);
	ck_assert_int_eq(rcv_plan_resume(NULL, 3, "web", &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_resume(&c, 3, NULL, &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_resume(&c, 0, "web", &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_resume(&c, AF_MAX_BLADES + 1, "web", &t, &p), -EINVAL);
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "nosuch", &t, &p), -ENOENT);
	/* taken over meanwhile (it runs): nothing to do */
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "web", &t, &p), -EEXIST);
	/* stopped: started again where it ran, from its disk */
	c.vms[1].running = false;
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "web", &t, &p), 0);
	ck_assert_str_eq(steps(&p), "start-vm:3:web");
	ck_assert_int_eq(p.rclass, AF_RC_RESTART_VM);
	ck_assert_int_eq(p.owner, 3);
	ck_assert_ptr_nonnull(strstr(p.summary, "lost quorum"));
	/* quorum gone again before the plan: it waits for it */
	c.quorate = false;
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "web", &t, &p), 0);
	ck_assert_str_eq(steps(&p), "wait-quorum:0 start-vm:3:web");
	/* the blade cannot run it: the operator is told, nothing starts */
	c.quorate = true;
	c.blades[3].faulty = true;
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "web", &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3:web");
	c.blades[3].faulty = false;
	c.blades[3].hypervisor_down = true;
	ck_assert_int_eq(rcv_plan_resume(&c, 3, "web", &t, &p), 0);
	ck_assert_str_eq(steps(&p), "notify:3:web");
	af_cfg_free(cfg);
}
END_TEST

/* ---- a checkpoint engine's VM in a takeover ---------------------------------------- */

/* What the hooks of atca-ftd would do: fences and engine orders succeed a
 * moment later (from the loop), the engine's state is what the test says. */
struct eng_rig {
	qb_loop_t *loop;
	const char *state; /* of fg1's engine on this blade */
	char orders[4][32];
	unsigned n_orders;
	unsigned fences;
	rcv_fence_done_fn pending_done;
	void *pending_cookie;
	bool hold; /* fences begin and are never confirmed */
};

static void rig_finish(void *data)
{
	struct eng_rig *g = data;
	rcv_fence_done_fn done = g->pending_done;

	g->pending_done = NULL;
	if (done)
		done(g->pending_cookie, 0, "ok");
}

static void rig_later(struct eng_rig *g, rcv_fence_done_fn done, void *cookie)
{
	qb_loop_timer_handle t;

	g->pending_done = done;
	g->pending_cookie = cookie;
	qb_loop_timer_add(g->loop, QB_LOOP_HIGH, 5 * AF_NS_PER_MS, g, rig_finish, &t);
}

static int rig_fence(void *opaque, int blade, rcv_fence_done_fn done, void *cookie)
{
	struct eng_rig *g = opaque;

	(void)blade;
	g->fences++;
	if (!g->hold) {
		rig_later(g, done, cookie);
	} else {
		g->pending_done = done; /* the test confirms it, or never */
		g->pending_cookie = cookie;
	}
	return 0;
}

static void rig_fence_forget(void *opaque, void *cookie)
{
	(void)opaque;
	(void)cookie;
}

static int rig_send(void *opaque, const void *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

static int rig_engine_order(void *opaque, const char *vm, const char *order, bool force,
                            rcv_fence_done_fn done, void *cookie)
{
	struct eng_rig *g = opaque;

	if (g->n_orders < 4)
		snprintf(g->orders[g->n_orders++], sizeof(g->orders[0]), "%s %s%s", order, vm,
		         force ? " force" : "");
	/* promoted, or started: a primary; quit: no engine */
	g->state = strcmp(order, "quit") == 0 ? NULL : "unprotected";
	rig_later(g, done, cookie);
	return 0;
}

static int rig_engine_state(void *opaque, const char *vm, char *state, size_t len)
{
	struct eng_rig *g = opaque;

	if (strcmp(vm, "fg1") != 0 || g->state == NULL)
		return -ENOENT;
	snprintf(state, len, "%s", g->state);
	return 0;
}

static void rig_stop(void *data)
{
	qb_loop_stop(data);
}

/* Blade 2 holds fg1's backup; blade 1 (fg1's) dies. */
static void engine_takeover(int vm_blade, const char *state_at_plan, const char *state_at_act,
                            const char *want_order)
{
	char text[1024], *dir = make_temp_dir();
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	struct eng_rig g = {0};
	const struct rcv_hooks hooks = {.fence = rig_fence,
	                                .fence_forget = rig_fence_forget,
	                                .send = rig_send,
	                                .engine_order = rig_engine_order,
	                                .engine_state = rig_engine_state};
	bool nodes[AF_MAX_BLADES + 1] = {false}, daemons[AF_MAX_BLADES + 1] = {false};
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 1, NULL, AF_RC_FENCE_AND_FAILOVER);
	struct af_module_env env = {0};
	qb_loop_timer_handle t;
	struct rcv *m = NULL;
	int n = snprintf(text, sizeof(text),
	                 "daemon {\n state_dir: %s\n}\n"
	                 "shelf {\n credentials: /x\n manager {\n  address: 127.0.0.1\n }\n}\n"
	                 "blade {\n slot: 1\n host: b1\n libvirt_uri: test:///default\n}\n"
	                 "blade {\n slot: 2\n host: b2\n libvirt_uri: test:///default\n}\n"
	                 "vm {\n name: fg1\n blade: %d\n protection: ft\n disk: /x.img\n}\n",
	                 dir, vm_blade);

	ck_assert_int_lt(n, (int)sizeof(text));
	ck_assert_int_eq(af_cfg_parse_buffer("engine", text, (size_t)n,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	g.loop = qb_loop_create();
	g.state = state_at_plan;
	env = (struct af_module_env){.loop = g.loop, .cfg = cfg};
	ck_assert_int_eq(rcv_init(&m, &env), 0);
	ck_assert_int_eq(rcv_start(m, 2, &hooks, &g), 0);
	nodes[2] = daemons[2] = true;
	rcv_membership(m, true, nodes, daemons);
	/* this blade's libvirt (the test driver) connects: the partner is
	 * healthy only then */
	for (int i = 0; i < 250; i++) {
		struct af_module_status st;

		rcv_describe(m, &st);
		if (strstr(st.detail, "libvirt connected") != NULL)
			break;
		qb_loop_timer_add(g.loop, QB_LOOP_LOW, 20 * AF_NS_PER_MS, g.loop, rig_stop, &t);
		qb_loop_run(g.loop);
	}
	rcv_fault_raised(m, &f);
	/* between planning and acting, the backup may have become ready */
	g.state = state_at_act;
	qb_loop_timer_add(g.loop, QB_LOOP_LOW, 10 * AF_NS_PER_S, g.loop, rig_stop, &t);
	while (g.n_orders == 0 && qb_loop_timer_expire_time_get(g.loop, t) > 0) {
		qb_loop_timer_handle s;

		qb_loop_timer_add(g.loop, QB_LOOP_LOW, 20 * AF_NS_PER_MS, g.loop, rig_stop, &s);
		qb_loop_run(g.loop);
	}
	ck_assert_uint_eq(g.fences, 1);
	ck_assert_uint_eq(g.n_orders, 1);
	ck_assert_str_eq(g.orders[0], want_order);
	rcv_fini(m);
	qb_loop_destroy(g.loop);
	af_cfg_free(cfg);
	remove_temp_dir(dir);
}

START_TEST(test_engine_promote)
{
	ck_assert_int_eq(af_init("check_recovery"), 0);
	/* the backup here is in standby: fence blade 1, then promote it (forced:
	 * blade 1 is confirmed off) */
	engine_takeover(1, "standby", "standby", "promote fg1 force");
	/* no backup in sync when the plan was made (start from disk), but it
	 * is by the time the step runs: promoted instead */
	engine_takeover(1, "waiting", "orphaned", "promote fg1 force");
	/* none ready at all: the engine boots it from its disk */
	engine_takeover(1, "waiting", "waiting", "start fg1");
	/* the guest runs here and blade 1 held its backup: once blade 1 is
	 * fenced, the output held for that backup is released */
	engine_takeover(2, "protected", "unprotected", "release fg1");
	af_fini();
}
END_TEST

/* A recovery module on blade 2 of three, with one ft VM fg1 on vm_blade,
 * its hooks on an eng_rig whose engine for fg1 is in state; no member yet
 * (eng_members). The quorum tests below share it. */
struct eng_fixture {
	char *dir;
	struct af_config *cfg;
	struct eng_rig g;
	struct rcv *m;
	bool nodes[AF_MAX_BLADES + 1], daemons[AF_MAX_BLADES + 1];
};

static const struct rcv_hooks eng_hooks = {.fence = rig_fence,
                                           .fence_forget = rig_fence_forget,
                                           .send = rig_send,
                                           .engine_order = rig_engine_order,
                                           .engine_state = rig_engine_state};

static void eng_open_vms(struct eng_fixture *fx, char *dir, int vm_blade, const char *state,
                         bool with_rg1)
{
	char text[1024];
	struct af_cfg_diag diag;
	struct af_module_env env;
	int n;

	memset(fx, 0, sizeof(*fx));
	fx->dir = dir != NULL ? dir : make_temp_dir();
	n = snprintf(text, sizeof(text),
	             "daemon {\n state_dir: %s\n}\n"
	             "shelf {\n credentials: /x\n manager {\n  address: 127.0.0.1\n }\n}\n"
	             "blade {\n slot: 1\n host: b1\n libvirt_uri: test:///default\n}\n"
	             "blade {\n slot: 2\n host: b2\n libvirt_uri: test:///default\n}\n"
	             "blade {\n slot: 3\n host: b3\n libvirt_uri: test:///default\n}\n"
	             "vm {\n name: fg1\n blade: %d\n protection: ft\n disk: /x.img\n}\n%s",
	             fx->dir, vm_blade,
	             with_rg1 ? "vm {\n name: rg1\n blade: 1\n protection: restart\n}\n" : "");
	ck_assert_int_eq(af_init("check_recovery"), 0);
	ck_assert_int_lt(n, (int)sizeof(text));
	ck_assert_int_eq(af_cfg_parse_buffer("engine", text, (size_t)n,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &fx->cfg,
	                                     &diag),
	                 0);
	fx->g.loop = qb_loop_create();
	fx->g.state = state;
	env = (struct af_module_env){.loop = fx->g.loop, .cfg = fx->cfg};
	ck_assert_int_eq(rcv_init(&fx->m, &env), 0);
	ck_assert_int_eq(rcv_start(fx->m, 2, &eng_hooks, &fx->g), 0);
}

static void eng_open(struct eng_fixture *fx, char *dir, int vm_blade, const char *state)
{
	eng_open_vms(fx, dir, vm_blade, state, false);
}

/* The membership: these blades (a bit mask of slots) with their daemons. */
static void eng_members(struct eng_fixture *fx, bool quorate, unsigned blades)
{
	for (int b = 1; b <= 3; b++)
		fx->nodes[b] = fx->daemons[b] = (blades >> b) & 1;
	rcv_membership(fx->m, quorate, fx->nodes, fx->daemons);
}

/* Runs the loop for rounds of 20 ms. */
static void eng_spin(struct eng_fixture *fx, unsigned rounds)
{
	qb_loop_timer_handle t;

	for (unsigned i = 0; i < rounds; i++) {
		qb_loop_timer_add(fx->g.loop, QB_LOOP_LOW, 20 * AF_NS_PER_MS, fx->g.loop, rig_stop,
		                  &t);
		qb_loop_run(fx->g.loop);
	}
}

/* Spins until a plan of the module says what (at most rounds rounds). */
static bool eng_plan_says(struct eng_fixture *fx, const char *what, unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++) {
		json_object *plans;
		bool found;

		eng_spin(fx, 1);
		plans = rcv_plans_json(fx->m, 8);
		found = plans != NULL && strstr(json_object_to_json_string(plans), what) != NULL;
		json_object_put(plans);
		if (found)
			return true;
	}
	return false;
}

/* Stops the module as a daemon stops (its journal stays); returns the
 * state directory, for eng_open again. */
static char *eng_stop(struct eng_fixture *fx)
{
	rcv_fini(fx->m);
	qb_loop_destroy(fx->g.loop);
	af_cfg_free(fx->cfg);
	af_fini();
	return fx->dir;
}

static void eng_close(struct eng_fixture *fx)
{
	remove_temp_dir(eng_stop(fx));
}

#define B(n) (1u << (n))

/* Quorum lost (no_quorum_policy stop, the default): an ft VM whose
 * checkpoint engine runs its guest here is no libvirt domain; its engine is
 * told to quit (the soak found it left running: the stop went to libvirt,
 * which answered "not defined", logged as stopped). */
START_TEST(test_engine_quorum_stop)
{
	struct eng_fixture fx;

	eng_open(&fx, NULL, 2, "protected");
	eng_members(&fx, true, B(2) | B(3));
	eng_spin(&fx, 25);
	ck_assert_uint_eq(fx.g.n_orders, 0);
	/* blade 3 goes: blade 2 alone, one vote of three */
	eng_members(&fx, false, B(2));
	for (int i = 0; i < 25 && fx.g.n_orders == 0; i++)
		eng_spin(&fx, 1);
	ck_assert_uint_eq(fx.g.fences, 0);
	ck_assert_uint_eq(fx.g.n_orders, 1);
	ck_assert_str_eq(fx.g.orders[0], "quit fg1");
	/* quorum back: blade 3's daemon never reports here, so blade 2 waits
	 * RCV_RESUME_SETTLE_NS for it, then starts fg1 again from its disk
	 * (the soak found VMs stopped for a lost quorum left down for good) */
	eng_spin(&fx, 10);
	eng_members(&fx, true, B(2) | B(3));
	eng_spin(&fx, 10);
	ck_assert_uint_eq(fx.g.n_orders, 1); /* not before blade 3 reported or the settle time */
	for (int i = 0; i < 300 && fx.g.n_orders < 2; i++)
		eng_spin(&fx, 1);
	ck_assert_uint_eq(fx.g.n_orders, 2);
	ck_assert_str_eq(fx.g.orders[1], "start fg1");
	ck_assert_uint_eq(fx.g.fences, 0);
	eng_close(&fx);
}
END_TEST

/* A plan made in a minority waits for quorum; when quorum comes back with
 * the blade it would fence a healthy member again (its fault cleared), it
 * does not fence it. The soak found a repaired blade's daemon resuming such
 * a plan from its journal and fencing the healthy partner that had taken
 * over its VMs. */
START_TEST(test_stale_minority_fence)
{
	struct eng_fixture fx;
	struct af_fault f =
	        fault(AF_LAYER_HYPERVISOR, AF_SCOPE_BLADE, 1, NULL, AF_RC_FENCE_AND_FAILOVER);

	eng_open(&fx, NULL, 1, "standby");
	eng_members(&fx, true, B(1) | B(2) | B(3));
	eng_spin(&fx, 25);
	/* blade 2 cut off: alone, no quorum; blade 1 "lost": a plan that
	 * waits for quorum before it fences blade 1 */
	eng_members(&fx, false, B(2));
	rcv_fault_raised(fx.m, &f);
	/* the partition heals: blade 1 back (its fault cleared), quorum back */
	rcv_fault_cleared(fx.m, &f);
	eng_members(&fx, true, B(1) | B(2) | B(3));
	ck_assert(eng_plan_says(&fx, "not fenced: blade 1 is back", 50));
	ck_assert_uint_eq(fx.g.fences, 0);
	ck_assert_uint_eq(fx.g.n_orders, 0);
	/* cut off again, now with a fatal fault of its own: no partner in
	 * reach, it plans to fence itself once quorate; quorum back: it does
	 * not (the quorate others plan for a fault that persists) */
	eng_members(&fx, false, B(2));
	f = fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 2, NULL, AF_RC_FENCE_AND_FAILOVER);
	f.id = 8;
	rcv_fault_raised(fx.m, &f);
	eng_members(&fx, true, B(1) | B(2) | B(3));
	ck_assert(eng_plan_says(&fx, "not fenced: blade 2 is this one", 50));
	ck_assert_uint_eq(fx.g.fences, 0);
	eng_close(&fx);
}
END_TEST

/* Blade 2's daemon plans to fence blade 1 for f and take fg1 over, begins
 * the fence (never confirmed) and is killed; it starts again, alone and
 * not quorate yet. */
enum confirm { NO_CONFIRM, CONFIRM_BY_FAULT, CONFIRM_BY_UPDATE, UPDATE_OF_ANOTHER_BLADE };

static void resumed_fence_restart_c(struct eng_fixture *fx, const struct af_fault *f,
                                    enum confirm how)
{
	struct af_fault g = *f;
	char *dir;

	eng_open(fx, NULL, 1, "standby");
	fx->g.hold = true;
	eng_members(fx, true, B(1) | B(2) | B(3));
	eng_spin(fx, 5);
	rcv_fault_raised(fx->m, f);
	for (int i = 0; i < 250 && fx->g.fences == 0; i++)
		eng_spin(fx, 1);
	ck_assert_uint_eq(fx->g.fences, 1); /* begun, never confirmed */
	/* the blade's own evidence comes in while the fence goes on: a fault
	 * of its own (already handled by the plan) or a cause joining f */
	g.membership_only = false;
	if (how == CONFIRM_BY_FAULT) {
		g.id = f->id + 1;
		g.layer = AF_LAYER_HARDWARE;
		af_strlcpy(g.rule, "cpu-fatal", sizeof(g.rule));
		rcv_fault_raised(fx->m, &g);
	} else if (how == CONFIRM_BY_UPDATE) {
		rcv_fault_updated(fx->m, &g);
	} else if (how == UPDATE_OF_ANOTHER_BLADE) {
		g.blade = 3; /* the same number, not the same fault */
		rcv_fault_updated(fx->m, &g);
	}
	eng_spin(fx, 2);
	dir = eng_stop(fx);
	eng_open(fx, dir, 1, "standby");
}

static void resumed_fence_restart(struct eng_fixture *fx, const struct af_fault *f)
{
	resumed_fence_restart_c(fx, f, NO_CONFIRM);
}

/* A plan resumed from the journal (a daemon killed in the middle of a
 * fence) finishes its fence when its evidence was a record of the blade
 * (recovery.sh: a fatal CPU error, whose SEL record the old run consumed):
 * the blade may well be a member still. */
START_TEST(test_resumed_fence)
{
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 1, NULL, AF_RC_FENCE_AND_FAILOVER);
	struct eng_fixture fx;

	for (int member = 0; member <= 1; member++) {
		resumed_fence_restart(&fx, &f);
		eng_members(&fx, true, (member ? B(1) : 0) | B(2) | B(3));
		for (int i = 0; i < 50 && fx.g.n_orders == 0; i++)
			eng_spin(&fx, 1);
		ck_assert_uint_eq(fx.g.fences, 1);
		ck_assert_uint_eq(fx.g.n_orders, 1);
		ck_assert_str_eq(fx.g.orders[0], "promote fg1 force");
		eng_close(&fx);
	}
}
END_TEST

/* A resumed plan whose only evidence was blade 1 leaving the membership
 * waits for quorum, then checks it again (the soak, step 275: blade 2, cut
 * off, planned to fence its partner just before it heard that its quorum
 * was gone; fenced itself and repaired, its new daemon fenced the healthy
 * partner that had taken the VMs over meanwhile). */
START_TEST(test_resumed_fence_membership)
{
	struct af_fault f =
	        fault(AF_LAYER_HYPERVISOR, AF_SCOPE_BLADE, 1, NULL, AF_RC_FENCE_AND_FAILOVER);
	struct eng_fixture fx;

	f.membership_only = true;
	/* blade 1 carried on: a healthy member once quorum is there. An update
	 * of a fault of blade 3 that has the same number did not confirm the
	 * plan, nor does one of the new process (its numbers start again) */
	resumed_fence_restart_c(&fx, &f, UPDATE_OF_ANOTHER_BLADE);
	eng_spin(&fx, 10);
	ck_assert_uint_eq(fx.g.fences, 0); /* no membership known yet: it waits */
	ck_assert(eng_plan_says(&fx, "waiting", 1));
	ck_assert(eng_plan_says(&fx, "\"evidence\": \"membership\"", 1));
	{
		struct af_fault g = f;

		g.membership_only = false;
		rcv_fault_updated(fx.m, &g);
	}
	ck_assert(eng_plan_says(&fx, "\"evidence\": \"membership\"", 1));
	eng_members(&fx, true, B(1) | B(2) | B(3));
	ck_assert(eng_plan_says(&fx, "not fenced: blade 1 is back", 50));
	ck_assert_uint_eq(fx.g.fences, 0);
	ck_assert_uint_eq(fx.g.n_orders, 0);
	eng_close(&fx);

	/* blade 1 is still gone: the evidence holds, the fence goes on */
	resumed_fence_restart(&fx, &f);
	eng_spin(&fx, 5);
	ck_assert_uint_eq(fx.g.fences, 0);
	eng_members(&fx, true, B(2) | B(3));
	for (int i = 0; i < 50 && fx.g.n_orders == 0; i++)
		eng_spin(&fx, 1);
	ck_assert_uint_eq(fx.g.fences, 1);
	ck_assert_uint_eq(fx.g.n_orders, 1);
	ck_assert_str_eq(fx.g.orders[0], "promote fg1 force");
	eng_close(&fx);

	/* blade 1's own fault confirmed the plan before the restart (a fault
	 * of its own, or a cause joining the first): it is fenced, a member
	 * or not */
	for (enum confirm how = CONFIRM_BY_FAULT; how <= CONFIRM_BY_UPDATE; how++) {
		resumed_fence_restart_c(&fx, &f, how);
		ck_assert(eng_plan_says(&fx, "\"evidence\": \"events\"", 5));
		eng_members(&fx, true, B(1) | B(2) | B(3));
		for (int i = 0; i < 50 && fx.g.n_orders == 0; i++)
			eng_spin(&fx, 1);
		ck_assert_uint_eq(fx.g.fences, 1);
		ck_assert_uint_eq(fx.g.n_orders, 1);
		eng_close(&fx);
	}
}
END_TEST

static void hotswap(struct eng_fixture *fx, int blade, const char *from, const char *to)
{
	struct af_event ev;

	af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, blade, "payload");
	af_event_set(&ev, "from", "%s", from);
	af_event_set(&ev, "to", "%s", to);
	rcv_event(fx->m, &ev);
}

/* Blade `from` reports fg1 (and rg1 with with_rg1) running, as its daemon's
 * STATE message would. */
static void peer_reports_running(struct eng_fixture *fx, int from, bool with_rg1)
{
	static struct rcv_msg msg;
	char buf[8192];
	int n;

	memset(&msg, 0, sizeof(msg));
	msg.type = RCV_MSG_STATE;
	msg.sender = (uint32_t)from;
	msg.seq = 1;
	msg.u.state.libvirt_up = true;
	msg.u.state.n_vms = with_rg1 ? 2 : 1;
	af_strlcpy(msg.u.state.vms[0].name, "fg1", sizeof(msg.u.state.vms[0].name));
	af_strlcpy(msg.u.state.vms[0].state, "running", sizeof(msg.u.state.vms[0].state));
	if (with_rg1) {
		af_strlcpy(msg.u.state.vms[1].name, "rg1", sizeof(msg.u.state.vms[1].name));
		af_strlcpy(msg.u.state.vms[1].state, "running", sizeof(msg.u.state.vms[1].state));
	}
	n = rcv_msg_encode(&msg, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	rcv_deliver(fx->m, (uint32_t)from, buf, (size_t)n);
}

/* The partner fences a blade and takes its VMs over at once: what the
 * fenced blade reported before it went (fg1 running there) does not hold
 * the takeover back, nor do the shelf manager's hot-swap events, which
 * may come after the IPMC's own sensor confirmed M1 (the soak: "refused:
 * blade 2 still reports rg1 running" 50 ms after the fence, rg1 left
 * down). */
START_TEST(test_fenced_reports_stale)
{
	struct eng_fixture fx;
	struct af_fault f =
	        fault(AF_LAYER_HARDWARE, AF_SCOPE_BLADE, 1, NULL, AF_RC_FENCE_AND_FAILOVER);
	json_object *v;
	bool ended = false;

	eng_open_vms(&fx, NULL, 1, "standby", true);
	eng_members(&fx, true, B(1) | B(2) | B(3));
	peer_reports_running(&fx, 1, true);
	eng_spin(&fx, 5);
	v = rcv_vms_json(fx.m);
	ck_assert_ptr_nonnull(strstr(json_object_to_json_string(v), "\"running_on\": 1"));
	json_object_put(v);

	/* fence blade 1, promote fg1, start rg1; the promotion takes a while */
	fx.g.hold = true;
	rcv_fault_raised(fx.m, &f);
	for (int i = 0; i < 250 && fx.g.fences == 0; i++)
		eng_spin(&fx, 1);
	ck_assert_uint_eq(fx.g.fences, 1);
	ck_assert_ptr_nonnull(fx.g.pending_done);
	fx.g.pending_done(fx.g.pending_cookie, 0, "M1 confirmed by the hot-swap sensor");
	for (int i = 0; i < 50 && fx.g.n_orders == 0; i++)
		eng_spin(&fx, 1);
	ck_assert_uint_eq(fx.g.n_orders, 1);
	ck_assert_str_eq(fx.g.orders[0], "promote fg1 force");
	/* meanwhile the shelf manager's events of the deactivation arrive,
	 * after the IPMC's sensor confirmed M1 */
	hotswap(&fx, 1, "M5", "M6");
	for (int i = 0; i < 100 && !ended; i++) {
		json_object *plans;
		const char *text;

		eng_spin(&fx, 1);
		plans = rcv_plans_json(fx.m, 8);
		text = json_object_to_json_string(plans);
		ck_assert_msg(strstr(text, "still reports") == NULL, "%s", text);
		ended = strstr(text, "start-vm") != NULL &&
		        (strstr(text, "\"done\"") != NULL || strstr(text, "\"failed\"") != NULL) &&
		        strstr(text, "\"running\"") == NULL;
		json_object_put(plans);
	}
	eng_close(&fx);
}
END_TEST

static bool fg1_on(struct eng_fixture *fx, const char *where)
{
	json_object *v = rcv_vms_json(fx->m);
	bool yes = strstr(json_object_to_json_string(v), where) != NULL;

	json_object_put(v);
	return yes;
}

/* The shelf manager's events of a deactivation (M4->M5->M6) can come after
 * the IPMC's own sensor confirmed M1: news older than what is known. They
 * do not mark the blade on again, which made every daemon see the fenced
 * blade's last report (the VM running there) beside the copy that took
 * over: "TWO COPIES" in the soak's logs. An activation (M1->M2) does. */
START_TEST(test_late_deactivation)
{
	struct eng_fixture fx;

	eng_open(&fx, NULL, 1, "standby");
	eng_members(&fx, true, B(1) | B(2) | B(3));
	peer_reports_running(&fx, 1, false);
	eng_spin(&fx, 5);
	ck_assert(fg1_on(&fx, "\"running_on\": 1"));
	hotswap(&fx, 1, "M4", "M1"); /* the fence, confirmed by the IPMC */
	ck_assert(!fg1_on(&fx, "\"running_on\": 1"));
	hotswap(&fx, 1, "M4", "M5"); /* the shelf manager's, late */
	hotswap(&fx, 1, "M5", "M6");
	ck_assert(!fg1_on(&fx, "\"running_on\": 1"));
	hotswap(&fx, 1, "M6", "M1");
	ck_assert(!fg1_on(&fx, "\"running_on\": 1"));
	hotswap(&fx, 1, "M1", "M2"); /* unfenced: on again */
	ck_assert(fg1_on(&fx, "\"running_on\": 1"));
	/* a blade on goes through M5 and M6 to off as ever */
	hotswap(&fx, 1, "M4", "M6");
	hotswap(&fx, 1, "M6", "M1");
	ck_assert(!fg1_on(&fx, "\"running_on\": 1"));
	/* into M5 from M1: what a shelf manager found after a reconnect (the
	 * blade went on and its handle was opened meanwhile): on */
	hotswap(&fx, 1, "M1", "M5");
	ck_assert(fg1_on(&fx, "\"running_on\": 1"));
	hotswap(&fx, 1, "M6", "M1");
	ck_assert(!fg1_on(&fx, "\"running_on\": 1"));
	/* no from at all: nothing says it is old news */
	{
		struct af_event ev;

		af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, 1, "payload");
		af_event_set(&ev, "to", "M6");
		rcv_event(fx.m, &ev);
	}
	ck_assert(fg1_on(&fx, "\"running_on\": 1"));
	eng_close(&fx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("recovery");

	add_tcase(s, test_plan_refuses_bad_faults, 10);
	add_tcase(s, test_plan_fence_and_failover, 10);
	add_tcase(s, test_plan_failover_without_fence, 10);
	add_tcase(s, test_plan_restart_then_move, 10);
	add_tcase(s, test_plan_migrate_and_notify, 10);
	add_tcase(s, test_journal_replay, 10);
	add_tcase(s, test_journal_evidence, 10);
	add_tcase(s, test_journal_seq_bounds, 10);
	add_tcase(s, test_journal_append_failures, 10);
	add_tcase(s, test_journal_compaction_failures, 10);
	add_tcase(s, test_journal_torn_tail_on_full_disk, 10);
	add_tcase(s, test_exec_journal_down, 10);
	add_tcase(s, test_pair_fsm, 10);
	add_tcase(s, test_engine_quorum_stop, 10);
	add_tcase(s, test_stale_minority_fence, 10);
	add_tcase(s, test_resumed_fence, 20);
	add_tcase(s, test_resumed_fence_membership, 20);
	add_tcase(s, test_fenced_reports_stale, 10);
	add_tcase(s, test_late_deactivation, 10);
	add_tcase(s, test_module_plans_dry_run, 10);
	add_tcase(s, test_module_cluster_view, 10);
	add_tcase(s, test_plan_switchover, 10);
	add_tcase(s, test_plan_resume, 10);
	add_tcase(s, test_exec_invalid, 10);
	add_tcase(s, test_exec_order_and_timeout, 10);
	add_tcase(s, test_exec_quorum_gate, 10);
	add_tcase(s, test_exec_escalation, 10);
	add_tcase(s, test_exec_resume_from_journal, 10);
	add_tcase(s, test_exec_retry, 10);
	add_tcase(s, test_msg_rejects_bad_input, 10);
	add_tcase(s, test_msg_round_trip, 10);
	add_tcase(s, test_engine_promote, 30);
	add_module_contract_tests(s);
	return run_suite(s);
}
