/* bench_common.h — what every `blipc-bench` subcommand shares: a clock, random
 * fill, and this machine's own limits measured in the same run (cblas_sgemm
 * GFLOP/s on a large square product, streaming-read memory bandwidth), so each
 * result is reported as a fraction of what the hardware + BLAS can do. */
#ifndef BLIPC_BENCH_COMMON_H
#define BLIPC_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void); /* monotonic seconds */

/* xorshift64* uniform floats in [-scale, scale) */
void bench_fill_uniform(float *x, size_t n, float scale, uint64_t *state);

/* Best of `reps` C[M,N] = A[M,K] . B[N,K]^T through cblas_sgemm (the linear-layer
 * form) with the BLAS thread count already set; GFLOP/s. */
double bench_sgemm_gflops(int M, int N, int K, int reps);

/* Best of `reps` multithreaded streaming reads (sum) of a `bytes` buffer; GB/s. */
double bench_read_gbs(size_t bytes, int n_threads, int reps);

typedef struct bench_limits {
    int threads;
    double sgemm_gflops; /* 2048^3 */
    double read_gbs;     /* 1 GiB streamed by `threads` threads */
    double seconds;      /* time spent measuring */
} bench_limits;

/* Measure both limits with n_threads (sets the BLAS thread count). quick != 0
 * uses smaller sizes (for tests of the benchmark itself). */
void bench_measure_limits(int n_threads, int quick, bench_limits *out);
void bench_print_limits(const bench_limits *l);

/* Machine description line ("model name" from /proc/cpuinfo, cores). */
void bench_print_machine(void);

#endif
