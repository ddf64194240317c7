/*
 * fuzz_flow_lines.c - libFuzzer harness for the flow checker's JSON-lines
 * reader (rre_flow_feed_json_line()) and the checker behind it.
 *
 * The input is split into lines and fed to a checker with small limits, so
 * eviction and the issue cap are exercised too; then the checker is finished
 * and its report written as JSON. Every line is either skipped, checked, or
 * reported as bad input; the report must always serialise. Any violation
 * aborts.
 */
#include <rre/rre.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rre_flow_options opt = {.max_runs = 4, .max_issues = 8, .stall_after = 60.0};
    if (size > 0 && (data[0] & 1))
        opt.flags |= RRE_FLOW_PARTIAL_HISTORY;
    rre_flow_checker *c = NULL;
    if (rre_flow_checker_create(&c, &opt) != RRE_OK)
        abort();
    const char *text = (const char *)data;
    size_t start = 0;
    uint64_t lines = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || text[i] == '\n') {
            if (i > start || i < size) {
                lines++;
                rre_status st = rre_flow_feed_json_line(c, text + start, i - start, lines, 0);
                if (st == RRE_ENOMEM)
                    abort();
            }
            start = i + 1;
        }
    }
    if (rre_flow_finish(c, 0.0) != RRE_OK)
        abort();
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    if (s.events + s.bad_input > lines || s.runs_tracked > opt.max_runs ||
        rre_flow_issue_count(c) > opt.max_issues)
        abort();
    json_t *report = NULL;
    if (rre_flow_report_json(c, &report) != RRE_OK)
        abort();
    char *dumped = json_dumps(report, JSON_COMPACT);
    if (dumped == NULL)
        abort();
    free(dumped);
    json_decref(report);
    rre_flow_checker_destroy(c);
    return 0;
}
