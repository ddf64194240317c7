/*
 * flow.h - the flow checker's library-internal entry points (the rre__
 * tier): what the router uses to check its history.
 */
#ifndef RRE_SRC_FLOW_H
#define RRE_SRC_FLOW_H

#include "internal.h"

/* Checks `n` events (in stream order; NULL entries are skipped) with a new
 * checker and finishes it at `now` (Unix seconds; <= 0: the latest event's
 * time). On RRE_OK *out holds the finished checker with its report; the
 * caller destroys it. `options` may be NULL. */
rre_status rre__flow_check_events(const rre_event *const *evs, size_t n,
                                  const rre_flow_options *options, double now,
                                  rre_flow_checker **out);

/* Parses an ISO 8601 date-time ("2026-01-02T03:04:05.5Z", an offset such as
 * "+01:00", a space instead of "T", no zone meaning UTC) into Unix seconds.
 * Returns false, leaving *out alone, when `text` is not one. Does not touch
 * the thread's last error. */
bool rre__time_parse_iso8601(const char *text, double *out);

/* Writes `t` (Unix seconds) as "YYYY-MM-DDTHH:MM:SS.ffffffZ" into buf
 * (RRE_TIMESTAMP_MAX bytes). */
void rre__time_format_iso8601(double t, char buf[RRE_TIMESTAMP_MAX]);

#endif
