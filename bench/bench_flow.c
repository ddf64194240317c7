/*
 * bench_flow.c - how fast the flow checker follows a stream: events per
 * second through rre_flow_feed() (events already built, as the router's
 * history hands them over) and lines per second through
 * rre_flow_feed_json_line() (parsing included, as `rre flow check --file`
 * reads them).
 *
 * The stream is the whole pipeline for every config key, cycle after cycle,
 * with a work item around each selfplay batch and a unique job id, model id
 * and work id per cycle, so runs keep accumulating and the default run limit
 * (65,536) is reached and enforced. Each figure runs for about a second.
 */
#include "flow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct stream {
    rre_event *events;
    char **lines;
    size_t count, cap;
};

static void add(struct stream *s, rre_event_type type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add(struct stream *s, rre_event_type type, const char *fmt, ...)
{
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->events = realloc(s->events, s->cap * sizeof *s->events);
        s->lines = realloc(s->lines, s->cap * sizeof *s->lines);
        if (s->events == NULL || s->lines == NULL)
            abort();
    }
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rre_event *ev = &s->events[s->count];
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->payload = json_loads(text, 0, NULL);
    if (ev->payload == NULL)
        abort();
    ev->source = "";
    ev->hostname = "";
    ev->event_id = (int64_t)s->count + 1;
    long secs = 1767607200L + (long)s->count;
    time_t t = (time_t)secs;
    strftime(ev->timestamp, sizeof ev->timestamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    char line[1024];
    snprintf(line, sizeof line,
             "{\"event_id\":%lld,\"event_type\":\"%s\",\"timestamp\":\"%s\","
             "\"payload\":%s}",
             (long long)ev->event_id, rre_event_name(type), ev->timestamp, text);
    s->lines[s->count] = strdup(line);
    s->count++;
}

static void build(struct stream *s, int cycles)
{
    static const char *const boards[] = {"hex8", "square8", "square19", "hexagonal"};
    for (int cycle = 0; cycle < cycles; cycle++) {
        for (int b = 0; b < 4; b++) {
            for (int n = 2; n <= 4; n++) {
                char cfg[RRE_CONFIG_KEY_MAX];
                snprintf(cfg, sizeof cfg, "%s_%dp", boards[b], n);
#define WORK "{\"config_key\":\"%s\",\"work_id\":\"sp-%s-%d\"}"
#define SELFPLAY "{\"config_key\":\"%s\",\"node_id\":\"n-%s\",\"games_completed\":%d}"
#define GAMES "{\"config_key\":\"%s\",\"host\":\"h-%s\",\"new_games\":%d}"
#define SYNC "{\"config_key\":\"%s\",\"source\":\"node-%s\",\"n\":%d}"
#define STAGE "{\"config_key\":\"%s\",\"cfg\":\"%s\",\"cycle\":%d}"
#define JOB "{\"config_key\":\"%s\",\"job_id\":\"train-%s-%d\"}"
#define MODEL "{\"config_key\":\"%s\",\"model_id\":\"m-%s-%d\"}"
                add(s, RRE_EV_WORK_QUEUED, WORK, cfg, cfg, cycle);
                add(s, RRE_EV_WORK_CLAIMED, WORK, cfg, cfg, cycle);
                add(s, RRE_EV_WORK_STARTED, WORK, cfg, cfg, cycle);
                add(s, RRE_EV_SELFPLAY_COMPLETE, SELFPLAY, cfg, cfg, cycle);
                add(s, RRE_EV_WORK_COMPLETED, WORK, cfg, cfg, cycle);
                add(s, RRE_EV_NEW_GAMES_AVAILABLE, GAMES, cfg, cfg, cycle);
                add(s, RRE_EV_DATA_SYNC_STARTED, SYNC, cfg, cfg, cycle);
                add(s, RRE_EV_DATA_SYNC_COMPLETED, SYNC, cfg, cfg, cycle);
                add(s, RRE_EV_NPZ_EXPORT_COMPLETE, STAGE, cfg, cfg, cycle);
                add(s, RRE_EV_TRAINING_THRESHOLD_REACHED, STAGE, cfg, cfg, cycle);
                add(s, RRE_EV_TRAINING_STARTED, JOB, cfg, cfg, cycle);
                add(s, RRE_EV_TRAINING_PROGRESS, JOB, cfg, cfg, cycle);
                add(s, RRE_EV_TRAINING_PROGRESS, JOB, cfg, cfg, cycle);
                add(s, RRE_EV_TRAINING_COMPLETED, JOB, cfg, cfg, cycle);
                add(s, RRE_EV_EVALUATION_STARTED, MODEL, cfg, cfg, cycle);
                add(s, RRE_EV_EVALUATION_COMPLETED, MODEL, cfg, cfg, cycle);
                add(s, RRE_EV_MODEL_PROMOTED, MODEL, cfg, cfg, cycle);
                add(s, RRE_EV_MODEL_DISTRIBUTION_COMPLETE, MODEL, cfg, cfg, cycle);
            }
        }
    }
}

int main(void)
{
    struct stream s = {0};
    build(&s, 2000); /* 12 configs x 18 events x 2000 cycles = 432,000 events */

    for (int mode = 0; mode < 2; mode++) {
        double start = now_seconds(), elapsed;
        uint64_t fed = 0;
        rre_flow_stats st;
        do {
            rre_flow_checker *c = NULL;
            if (rre_flow_checker_create(&c, NULL) != RRE_OK)
                return 1;
            for (size_t i = 0; i < s.count; i++) {
                rre_status rc = mode == 0 ? rre_flow_feed(c, &s.events[i])
                                          : rre_flow_feed_json_line(c, s.lines[i],
                                                                    strlen(s.lines[i]), i + 1, 0);
                if (rc != RRE_OK)
                    return 1;
            }
            rre_flow_finish(c, 0.0);
            rre_flow_get_stats(c, &st);
            if (!rre_flow_clean(c)) {
                fprintf(stderr, "bench_flow: the synthetic stream is not clean: %s\n",
                        rre_flow_issue_get(c, 0)->message);
                return 1;
            }
            rre_flow_checker_destroy(c);
            fed += s.count;
            elapsed = now_seconds() - start;
        } while (elapsed < 1.0);
        printf(
            "flow check %-10s %10.0f events/s  (%zu events per pass, %llu runs held at the end)\n",
            mode == 0 ? "events:" : "json lines:", (double)fed / elapsed, s.count,
            (unsigned long long)st.runs_tracked);
    }
    for (size_t i = 0; i < s.count; i++) {
        json_decref(s.events[i].payload);
        free(s.lines[i]);
    }
    free(s.events);
    free(s.lines);
    return 0;
}
