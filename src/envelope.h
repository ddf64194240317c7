/*
 * envelope.h - the pieces of an event envelope the router fills in:
 * timestamps (microseconds since the Unix epoch and their ISO 8601 text),
 * W3C trace-context ids, and a fast per-thread random source for them.
 */
#ifndef RRE_ENVELOPE_H
#define RRE_ENVELOPE_H

#include "internal.h"

/* The real-time clock in microseconds since the Unix epoch. Matches
 * rre_clock_fn; user_data is ignored. */
int64_t rre__clock_realtime(void *user_data);

/* Writes `us` as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always 27 characters and a
 * NUL). Keeps the formatted seconds of the last call per thread, so calls
 * within one second cost a few stores. */
void rre__timestamp_format(int64_t us, char out[RRE_TIMESTAMP_MAX]);

/* Reads an ISO 8601 date-time: "YYYY-MM-DD" then "T" or a space, then
 * "HH:MM[:SS[.fraction]]", then "Z", "+HH:MM", "-HH:MM", "+HHMM" or nothing
 * (UTC). Returns false (and leaves *us alone) for anything else. */
bool rre__timestamp_parse(const char *text, int64_t *us);

/* A W3C trace context (version 00). */
struct rre__trace {
    uint8_t trace_id[16];
    uint8_t parent_id[8];
    uint8_t flags;
};

/* A new trace: random ids, flags 01 (sampled). */
void rre__trace_new(struct rre__trace *out);

/* The same trace with a new random parent id. */
void rre__trace_child(const struct rre__trace *parent, struct rre__trace *out);

/* Reads "00-<32 hex>-<16 hex>-<2 hex>" (lower or upper case; all-zero ids
 * are invalid) or a bare 32-hex trace id, which gets a new parent id and
 * flags 01. Returns false for anything else. */
bool rre__trace_parse(const char *text, struct rre__trace *out);

/* Writes the traceparent text (55 characters and a NUL). */
void rre__trace_format(const struct rre__trace *trace, char out[RRE_TRACE_ID_MAX]);

/* 64 random bits from a per-thread generator seeded from the system's
 * entropy. Not for cryptography. */
uint64_t rre__random64(void);

/* The program's name (from the process), "" when unknown. Static. */
const char *rre__program_name(void);

#endif /* RRE_ENVELOPE_H */
