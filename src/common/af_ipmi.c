/*
 * IPMI names shared by the monitoring (src/ipmi-detect) and by the failure
 * model's simulator: sensor types (IPMI 2.0 table 42-3) and the meaning of
 * SEL offsets, so an event reads the same whoever made it.
 */
#include "config.h"

#include "af_ipmi.h"

#include <string.h>

#include "af_util.h"

const char *af_sensor_type_name(uint8_t type)
{
	switch (type) {
	case 0x01:
		return "temperature";
	case 0x02:
		return "voltage";
	case 0x03:
		return "current";
	case 0x04:
		return "fan";
	case 0x05:
		return "physical-security";
	case 0x07:
		return "processor";
	case 0x08:
		return "power-supply";
	case 0x09:
		return "power-unit";
	case 0x0C:
		return "memory";
	case 0x10:
		return "event-logging";
	case 0x12:
		return "system-event";
	case 0x20:
		return "os-critical-stop";
	case 0x23:
		return "watchdog";
	case 0x25:
		return "entity-presence";
	case 0xF0:
		return "hot-swap";
	case 0xF1:
		return "ipmb-link";
	case 0xF2:
		return "module-hot-swap";
	default:
		return type >= 0xC0 ? "oem" : "other";
	}
}

static const char *const threshold_names[12] = {
        "lower-non-critical-going-low",    "lower-non-critical-going-high",
        "lower-critical-going-low",        "lower-critical-going-high",
        "lower-non-recoverable-going-low", "lower-non-recoverable-going-high",
        "upper-non-critical-going-low",    "upper-non-critical-going-high",
        "upper-critical-going-low",        "upper-critical-going-high",
        "upper-non-recoverable-going-low", "upper-non-recoverable-going-high",
};

static const char *const processor_names[] = {
        "ierr",
        "thermal-trip",
        "frb1-bist-failure",
        "frb2-hang",
        "frb3-startup-failure",
        "configuration-error",
        "uncorrectable-cpu-error",
        "presence",
        "disabled",
        "terminator-presence",
        "throttled",
        "uncorrectable-machine-check",
};

static const char *const memory_names[] = {
        "correctable-ecc", "uncorrectable-ecc",        "parity",
        "scrub-failed",    "device-disabled",          "correctable-ecc-limit",
        "presence",        "configuration-error",      "spare",
        "throttled",       "critical-overtemperature",
};

static const char *const power_unit_names[] = {
        "power-off",
        "power-cycle",
        "240va-power-down",
        "interlock-power-down",
        "ac-lost",
        "soft-power-control-failure",
        "power-unit-failure",
        "predictive-failure",
};

static const char *const watchdog_names[] = {
        "timer-expired",   "hard-reset", "power-down", "power-cycle", NULL, NULL, NULL, NULL,
        "timer-interrupt",
};

static const char *const power_supply_names[] = {
        "presence",
        "failure",
        "predictive-failure",
        "ac-lost",
        "ac-lost-or-out-of-range",
        "ac-out-of-range",
        "configuration-error",
};

static const char *const presence_names[] = {"present", "absent", "disabled"};

static const char *const hotswap_names[8] = {"M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7"};

#define PICK(tbl, off) ((size_t)(off) < AF_ARRAY_SIZE(tbl) ? (tbl)[off] : NULL)

const char *af_sel_offset_name(uint8_t sensor_type, uint8_t event_type, unsigned off)
{
	if (event_type == 0x01)
		return PICK(threshold_names, off);
	if (event_type != 0x6F)
		return NULL;
	switch (sensor_type) {
	case 0x07:
		return PICK(processor_names, off);
	case 0x0C:
		return PICK(memory_names, off);
	case 0x09:
		return PICK(power_unit_names, off);
	case 0x23:
		return PICK(watchdog_names, off);
	case 0x08:
		return PICK(power_supply_names, off);
	case 0x25:
		return PICK(presence_names, off);
	case 0xF0:
		return PICK(hotswap_names, off);
	default:
		return NULL;
	}
}

int af_sensor_type_code(const char *name)
{
	if (name == NULL)
		return -1;
	for (unsigned t = 0; t < 0xC0; t++) {
		const char *n = af_sensor_type_name((uint8_t)t);

		if (strcmp(n, "other") != 0 && strcmp(n, name) == 0)
			return (int)t;
	}
	return -1;
}
