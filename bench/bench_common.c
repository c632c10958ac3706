/* bench_common.c — shared benchmark helpers (see bench_common.h). */
#include "bench_common.h"

#include "threads.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bench_fill_uniform(float *x, size_t n, float scale, uint64_t *state) {
    uint64_t s = *state ? *state : 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint32_t r = (uint32_t)((s * 2685821657736338717ull) >> 40); /* 24 bits */
        x[i] = scale * ((float)r * (2.0f / 16777216.0f) - 1.0f);
    }
    *state = s;
}

double bench_sgemm_gflops(int M, int N, int K, int reps) {
    float *a = malloc((size_t)M * K * sizeof(float)), *b = malloc((size_t)N * K * sizeof(float)),
          *c = malloc((size_t)M * N * sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    uint64_t s = 1;
    bench_fill_uniform(a, (size_t)M * K, 1.0f, &s);
    bench_fill_uniform(b, (size_t)N * K, 1.0f, &s);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* first run warms up */
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K / best * 1e-9;
}

typedef struct read_job {
    const float *x;
    size_t n;
    double sums[64];
} read_job;

static void read_part(void *arg, int i, int nt) {
    read_job *j = arg;
    size_t per = (j->n + (size_t)nt - 1) / (size_t)nt, lo = (size_t)i * per, hi = lo + per > j->n ? j->n : lo + per;
    float acc[16] = {0};
    for (size_t k = lo; k + 16 <= hi; k += 16)
        for (int u = 0; u < 16; u++) acc[u] += j->x[k + (size_t)u];
    double s = 0;
    for (int u = 0; u < 16; u++) s += acc[u];
    j->sums[i & 63] = s;
}

double bench_read_gbs(size_t bytes, int n_threads, int reps) {
    size_t n = bytes / sizeof(float);
    float *x = malloc(n * sizeof(float));
    if (!x) return 0;
    for (size_t i = 0; i < n; i++) x[i] = (float)(i & 255); /* touch every page */
    read_job j = {x, n, {0}};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        blipc__parallel_for(n_threads, read_part, &j);
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    volatile double sink = j.sums[0];
    (void)sink;
    free(x);
    return (double)n * sizeof(float) / best * 1e-9;
}

void bench_measure_limits(int n_threads, int quick, bench_limits *out) {
    double t0 = bench_now();
    out->threads = blipc__threads_set(n_threads);
    int sq = quick ? 512 : 2048;
    out->sgemm_gflops = bench_sgemm_gflops(sq, sq, sq, quick ? 1 : 4);
    out->read_gbs = bench_read_gbs(quick ? ((size_t)64 << 20) : ((size_t)1 << 30), out->threads, quick ? 2 : 4);
    out->seconds = bench_now() - t0;
}

void bench_print_limits(const bench_limits *l) {
    printf("limits (%d threads, measured now): sgemm %.1f GFLOP/s (2048^3 cblas_sgemm, best of 4); "
           "read bandwidth %.1f GB/s (1 GiB streamed)  [%.1f s]\n",
           l->threads, l->sgemm_gflops, l->read_gbs, l->seconds);
}

void bench_print_machine(void) {
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c += 2;
                    c[strcspn(c, "\n")] = 0;
                    snprintf(model, sizeof model, "%s", c);
                }
                break;
            }
        }
        fclose(f);
    }
    printf("machine: %s, %d cores; OpenBLAS %s\n", model, blipc__ncores(), openblas_get_config());
}
