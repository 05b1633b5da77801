/*
 * incident_int.h: what the files of the incident module share (not part of
 * its interface).
 */
#ifndef RF_INCIDENT_INCIDENT_INT_H
#define RF_INCIDENT_INCIDENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "incident/incident.h"
#include "store/store_incident.h"

/* A growable list of items; free(v) when done. */
struct item_vec {
	struct rf_item_rec *v;
	size_t n, cap;
};

/* The incident, with an error that says how to find one. */
int rf_incident_load(const struct rf_incident_ctx *c, int64_t id,
    struct rf_incident_rec *inc) RF_WUR;
/* Its items (tenant / state NULL: all), in tenant, name order. */
int rf_incident_load_items(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *state, struct item_vec *iv) RF_WUR;

#endif
