/* fastops.h — AVX-512 multithreaded versions of the elementwise and attention
 * kernels of kernels.c (which dispatch to them when the CPU has AVX-512F and
 * fall back to their portable reference code otherwise).
 *
 * Each returns 1 when it did the work, 0 when the caller must use the
 * reference path (no AVX-512, or no memory for its scratch). Threads: the
 * count set with blipc__threads_set (the same one BLAS and gemm_small use);
 * work too small to pay for a thread runs on the caller's thread. Accuracy:
 * float32 with ~1e-7 relative error in exp/erf (tests in test_kernels.c check
 * them against double references, like the reference kernels). */
#ifndef BLIPC_CORE_FASTOPS_H
#define BLIPC_CORE_FASTOPS_H

#include <stddef.h>

/* In-place 0.5 x (1 + erf(x / sqrt 2)). */
int blipc__fast_gelu_erf(float *x, size_t n);
/* LayerNorm of M rows of D (y may alias x). */
int blipc__fast_layernorm(float *y, const float *x, const float *gamma, const float *beta, int M, int D, float eps);
/* Same contract as blipc__attention (kernels.h); needs no caller scratch. */
int blipc__fast_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *out,
                          int ldo, int Tq, int Tk, int H, int dh, float scale, const float *key_bias, int causal);

#endif
