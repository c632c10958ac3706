/* gemm_small.h — few-row matrix product that streams the weights once (decode steps). */
#ifndef BLIPC_CORE_GEMM_SMALL_H
#define BLIPC_CORE_GEMM_SMALL_H

#include <stdint.h>

/* Largest M for which blipc__linear prefers the streaming kernel over sgemm
 * (17..48 rows take the transposed-x kernel: 1.2-2.3x faster than sgemm at
 * the OPT prefill's 33 rows, which packs the whole weight matrix per call). */
#define BLIPC_SMALL_M 48
/* Same for bf16 weights (blipc__linear_bf16): above it, blocks of ~5 MiB of
 * W are upcast to f32 for the threaded sgemm. At 17..48 rows the streaming
 * kernel wins (converting 64-row blocks was 2-3x slower); at 264 rows (a
 * batch-8 OPT prefill, K = 2560/10240, 2 threads) 512-row blocks + sgemm
 * took 21/74/84 ms against 29/128/150 ms streaming (q/fc1/fc2). */
#define BLIPC_SMALL_M_BF16 48

/* 2 = AVX-512F, 1 = AVX2+FMA, 0 = portable C (what this CPU supports). */
int blipc__cpu_isa(void);

/* y[m, n] = sum_k x[m, k] W[n, k] (+ b[n]); W is f32, or bf16 when w_is_bf16
 * (upcast exactly). ldx/ldy row strides (0 = K / N). isa < 0: detect.
 * n_threads workers split the output rows. */
void blipc__gemm_small(const float *x, int M, int K, int ldx, const void *W, int w_is_bf16, const float *b, int N,
                       float *y, int ldy, int n_threads, int isa);

#endif
