/* stats.c: latency samples, percentiles and the plain/JSON report. */
#include "bench/nfsload/stats.h"

#include <stdlib.h>
#include <string.h>

void stats_latency(struct load_stats *st, uint64_t t0_ns, uint64_t t1_ns)
{
    if (st->lat_count == st->lat_cap) {
        size_t cap = st->lat_cap ? st->lat_cap * 2 : 4096;
        uint64_t *p = realloc(st->lat_ns, cap * sizeof *p);
        if (!p) {
            st->lat_oom = 1;
            return;
        }
        st->lat_ns = p;
        st->lat_cap = cap;
    }
    st->lat_ns[st->lat_count++] = t1_ns - t0_ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

double stats_percentile_ms(struct load_stats *st, double pct)
{
    if (!st->lat_count)
        return 0;
    qsort(st->lat_ns, st->lat_count, sizeof *st->lat_ns, cmp_u64);
    /* nearest rank: the smallest sample with pct% of samples at or below */
    double rank = pct / 100.0 * (double)st->lat_count;
    size_t i = (size_t)rank;
    if ((double)i < rank)
        i++;
    if (i > 0)
        i--;
    if (i >= st->lat_count)
        i = st->lat_count - 1;
    return (double)st->lat_ns[i] / 1e6;
}

void stats_report(FILE *out, struct load_stats *st, const char *workload,
                  const char *url, int json)
{
    double secs = (double)(st->end_ns - st->start_ns) / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    double p50 = stats_percentile_ms(st, 50);
    double p99 = stats_percentile_ms(st, 99);
    double p999 = stats_percentile_ms(st, 99.9);
    /* the latency distribution: a fixed list of percentiles (0 = fastest,
     * 100 = slowest), so its cost does not grow with the samples */
    static const double cdf_pct[] = { 0, 1, 5, 10, 25, 50, 75, 90, 95, 99,
                                      99.5, 99.9, 99.99, 100 };
    enum { NCDF = sizeof cdf_pct / sizeof cdf_pct[0] };
    double cdf[NCDF];
    for (size_t i = 0; i < NCDF; i++)
        cdf[i] = stats_percentile_ms(st, cdf_pct[i]);
    struct { const char *key; double val; const char *fmt; } rows[] = {
        { "ops", (double)st->ops, "%.0f" },
        { "seconds", secs, "%.6f" },
        { "ops_per_s", (double)st->ops / secs, "%.1f" },
        { "mb_per_s", (double)st->bytes / 1e6 / secs, "%.2f" },
        { "entries_per_s", (double)st->entries / secs, "%.1f" },
        { "files_per_s", (double)st->files / secs, "%.1f" },
        { "bytes", (double)st->bytes, "%.0f" },
        { "entries", (double)st->entries, "%.0f" },
        { "files", (double)st->files, "%.0f" },
        { "lat_p50_ms", p50, "%.3f" },
        { "lat_p99_ms", p99, "%.3f" },
        { "lat_p999_ms", p999, "%.3f" },
        { "errors", (double)st->errors, "%.0f" },
        /* CLOCK_MONOTONIC, the same in every process of the host: several
         * nfsload processes' counts add up over the union of their windows */
        { "start_ns", (double)st->start_ns, "%.0f" },
        { "end_ns", (double)st->end_ns, "%.0f" },
        { st->extra_name, st->extra_seconds, "%.6f" },
    };
    size_t nrows = sizeof rows / sizeof rows[0];
    if (!st->extra_name)
        nrows--;
    if (json) {
        fprintf(out, "{\"workload\":\"%s\",\"url\":\"", workload);
        for (const char *c = url; *c; c++)
            fprintf(out, (*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
        fputc('"', out);
        for (size_t i = 0; i < nrows; i++) {
            fprintf(out, ",\"%s\":", rows[i].key);
            fprintf(out, rows[i].fmt, rows[i].val);
        }
        fputs(",\"lat_cdf_ms\":{", out);
        for (size_t i = 0; i < NCDF; i++)
            fprintf(out, "%s\"%g\":%.3f", i ? "," : "", cdf_pct[i], cdf[i]);
        fputs("}}\n", out);
        return;
    }
    fprintf(out, "workload %s\nurl %s\n", workload, url);
    for (size_t i = 0; i < nrows; i++) {
        fprintf(out, "%s ", rows[i].key);
        fprintf(out, rows[i].fmt, rows[i].val);
        fputc('\n', out);
    }
    fputs("lat_cdf_ms", out);
    for (size_t i = 0; i < NCDF; i++)
        fprintf(out, " %g:%.3f", cdf_pct[i], cdf[i]);
    fputc('\n', out);
}

void stats_free(struct load_stats *st)
{
    free(st->lat_ns);
    memset(st, 0, sizeof *st);
}
