/*
 * IPMI names shared by ipmi-detect and the failure model (see af_ipmi.c).
 */
#ifndef AF_IPMI_H
#define AF_IPMI_H

#include <stdint.h>

/* "temperature", "memory", "hot-swap", ...; "oem" / "other" otherwise. */
const char *af_sensor_type_name(uint8_t type);
/* The code of a sensor type name, -1 if unknown. */
int af_sensor_type_code(const char *name);
/* What a SEL offset means for this sensor type and event/reading type
 * ("uncorrectable-ecc", "ierr", "M7", ...), NULL if nothing is known. */
const char *af_sel_offset_name(uint8_t sensor_type, uint8_t event_type, unsigned off);

#endif
