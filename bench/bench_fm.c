/*
 * Failure-model throughput on one core with a realistic mix of events from a
 * 16-blade shelf: mostly threshold sensor readings (a few non-critical or
 * critical ones, which debounce, flap and clear), SEL records (correctable
 * ECC, now and then an uncorrectable one), hot-swap transitions, IPMC
 * reachability, membership, libvirt and engine events. The model runs with
 * the built-in rules, as in the daemon.
 *
 *   bench_fm [EVENTS_PER_RUN] [RUNS]
 *
 * Prints a Markdown report: events/s and ns/event (median and p99 over
 * batches of 1000 events), and the process RSS before and after a long run
 * (the model's memory is bounded by its tables, not by history).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "af_common.h"
#include "fm.h"

#define POOL 8192
#define BATCH 1000

static unsigned long reports;

static void on_fault(void *opaque, const struct fm_report *r)
{
	(void)opaque;
	(void)r;
	reports++;
}

static const struct fm_ops ops = {.fault = on_fault};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static const char *const sensors[] = {"CPU Temp", "Inlet Temp", "12V",    "5V",
                                      "3.3V",     "Fan 1",      "Fan 2",  "DIMM Temp",
                                      "VCore",    "PCH Temp",   "Exhaust"};

static void make_pool(struct af_event *pool)
{
	for (unsigned i = 0; i < POOL; i++) {
		struct af_event *ev = &pool[i];
		unsigned p = rnd() % 1000, blade = 1 + rnd() % 16;
		char name[32];

		if (p < 850) { /* threshold readings */
			unsigned s = rnd() % 11, q = rnd() % 100;
			const char *state = q < 95   ? "ok"
			                    : q < 99 ? "upper-non-critical"
			                             : "upper-critical";

			af_event_init(ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, (int)blade,
			              sensors[s]);
			af_event_set(ev, "owner", "0x%02x", 0x80 + 2 * blade);
			af_event_set(ev, "sensor", "0x%02x", s);
			af_event_set(ev, "type", "%s",
			             s < 2 || s == 7 || s == 9 || s == 10 ? "temperature"
			             : s == 5 || s == 6                   ? "fan"
			                                                  : "voltage");
			af_event_set(ev, "reading", "%u", 40 + rnd() % 50);
			af_event_set(ev, "unit", "degrees-c");
			af_event_set(ev, "state", "%s", state);
		} else if (p < 900) { /* discrete readings: no rule */
			af_event_init(ev, AF_SRC_IPMI, AF_EV_SENSOR_DISCRETE, (int)blade,
			              "Hot Swap");
			af_event_set(ev, "type", "hot-swap");
			af_event_set(ev, "offsets", "M4");
		} else if (p < 940) { /* SEL */
			bool fatal = rnd() % 1000 == 0;

			af_event_init(ev, AF_SRC_IPMI, AF_EV_SEL_RECORD, (int)blade, "Memory");
			af_event_set(ev, "record", "0x%04x", rnd() % 65536);
			af_event_set(ev, "sensor_type", "memory");
			af_event_set(ev, "dir", "assert");
			af_event_set(ev, "offset", "%d", fatal ? 1 : 0);
			af_event_set(ev, "meaning", "%s",
			             fatal ? "uncorrectable-ecc" : "correctable-ecc");
		} else if (p < 960) { /* VMs */
			static const char *const evs[] = {"started", "started", "started",
			                                  "crashed"};

			snprintf(name, sizeof(name), "vm%u", rnd() % 64);
			af_event_init(ev, AF_SRC_VM, AF_EV_VM_LIFECYCLE, (int)blade, name);
			af_event_set(ev, "event", "%s", evs[rnd() % 4]);
		} else if (p < 970) {
			snprintf(name, sizeof(name), "vm%u", rnd() % 64);
			af_event_init(ev, AF_SRC_ENGINE, AF_EV_ENGINE_HEALTH, (int)blade, name);
			af_event_set(ev, "state", "%s", rnd() % 4 ? "ok" : "replication-stalled");
		} else if (p < 980) {
			static const char *const to[] = {"M4", "M4", "M4", "M7", "M6", "M1", "M3"};
			const char *t = to[rnd() % 7];

			af_event_init(ev, AF_SRC_SHELF, AF_EV_HOTSWAP, (int)blade, "payload");
			af_event_set(ev, "from", "M4");
			af_event_set(ev, "to", "%s", t);
			af_event_set(ev, "cause", "%s", rnd() % 2 ? "requested" : "unexpected");
		} else if (p < 990) {
			af_event_init(ev, AF_SRC_IPMI,
			              rnd() % 2 ? AF_EV_IPMC_REACHABLE : AF_EV_IPMC_UNREACHABLE,
			              (int)blade, "IPMC");
		} else {
			af_event_init(ev, AF_SRC_CLUSTER,
			              rnd() % 2 ? AF_EV_NODE_JOIN : AF_EV_NODE_LEAVE, (int)blade,
			              "node");
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned long per_run = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
	unsigned runs = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 7;
	struct af_event *pool = calloc(POOL, sizeof(*pool));
	unsigned long nb = per_run / BATCH;
	uint64_t *batch_ns = calloc(nb * runs, sizeof(uint64_t));
	double *rate = calloc(runs, sizeof(double));
	uint64_t t_ev = 1000 * 1000000ULL, id = 0;
	long rss0, rss1, rss_after_first = 0;
	unsigned long total = 0;
	struct fm *m = NULL;

	if (pool == NULL || batch_ns == NULL || rate == NULL || per_run < BATCH || runs == 0)
		return 2;
	af_init("bench_fm");
	{
		struct af_log_settings s;

		af_log_settings_default(&s);
		s.to_stderr = false;
		s.to_syslog = false;
		s.level = LOG_ERR;
		s.blackbox = false;
		af_log_apply(&s);
	}
	make_pool(pool);
	rss0 = rss_kib();
	/* one model for every run: its memory after the first run and at the
	 * end shows whether it grows with history */
	if (fm_init(&m, NULL, &ops, NULL) < 0)
		return 1;
	for (unsigned r = 0; r < runs; r++) {
		uint64_t t0;

		t0 = now_ns();
		for (unsigned long b = 0; b < nb; b++) {
			uint64_t b0 = now_ns();

			for (unsigned k = 0; k < BATCH; k++) {
				struct af_event *ev = &pool[(id * 2654435761u) % POOL];

				/* 20 000 events/s of shelf time: windows and holds act */
				t_ev += 50000;
				ev->ts_ns = t_ev;
				ev->id = ++id;
				fm_event(m, ev);
			}
			batch_ns[r * nb + b] = (now_ns() - b0) / BATCH;
		}
		rate[r] = (double)(nb * BATCH) / ((double)(now_ns() - t0) / 1e9);
		total += nb * BATCH;
		rss1 = rss_kib();
		if (r == 0)
			rss_after_first = rss_kib();
	}
	fm_fini(m);
	qsort(batch_ns, nb * runs, sizeof(uint64_t), cmp_u64);
	{
		double rates[64];
		unsigned n = runs < 64 ? runs : 64;

		memcpy(rates, rate, n * sizeof(double));
		for (unsigned i = 1; i < n; i++)
			for (unsigned j = i; j > 0 && rates[j - 1] > rates[j]; j--) {
				double t = rates[j];

				rates[j] = rates[j - 1];
				rates[j - 1] = t;
			}
		printf("| measure | value |\n|---|---|\n");
		printf("| events per run | %lu (%u runs, %lu events in all) |\n", nb * BATCH, runs,
		       total);
		printf("| throughput, median of runs | %.2f M events/s |\n", rates[n / 2] / 1e6);
		printf("| throughput, slowest run | %.2f M events/s |\n", rates[0] / 1e6);
		printf("| ns/event, median of %u-event batches | %llu |\n", BATCH,
		       (unsigned long long)batch_ns[nb * runs / 2]);
		printf("| ns/event, p99 of batches | %llu |\n",
		       (unsigned long long)batch_ns[nb * runs * 99 / 100]);
		printf("| faults reported (raise/update/clear) | %lu |\n", reports);
		printf("| RSS before the model / after the first run / after the last | %ld / %ld / "
		       "%ld KiB |\n",
		       rss0, rss_after_first, rss1);
	}
	free(pool);
	free(batch_ns);
	free(rate);
	af_fini();
	return 0;
}
