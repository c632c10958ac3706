/* kernels.h — the numeric building blocks shared by every architecture.
 * Row-major float32. Linear layers use the HF layout W[N, K] (out x in).
 * BLAS work runs on OpenBLAS's threads (count set via blipc__threads_set). */
#ifndef BLIPC_CORE_KERNELS_H
#define BLIPC_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* y[M, N] = x[M, K] . W[N, K]^T + b[N] (b may be NULL). ldx/ldy: row strides (0 = K / N). */
void blipc__linear(const float *x, int M, int K, int ldx, const float *W, const float *b, int N, float *y, int ldy);
/* Same with W stored as bf16 (converted per block; exact upcast). */
void blipc__linear_bf16(const float *x, int M, int K, const uint16_t *W, const float *b, int N, float *y);
/* y = x . W^T + b for a single row (M = 1) — GEMV, memory-bandwidth bound; multithreaded. */
void blipc__gemv(const float *x, int K, const float *W, const float *b, int N, float *y, int n_threads);

/* LayerNorm over the last dim D for M rows; y may alias x. */
void blipc__layernorm(float *y, const float *x, const float *gamma, const float *beta, int M, int D, float eps);
void blipc__gelu_erf(float *x, size_t n);  /* 0.5 x (1 + erf(x / sqrt 2)), as HF "gelu" */
void blipc__relu(float *x, size_t n);
void blipc__add(float *y, const float *x, size_t n);   /* y += x */
void blipc__softmax_row(float *x, int n);               /* in place, max-subtracted */

/* Multi-head scaled dot-product attention.
 *   q: [Tq, H*dh] row stride ldq; k, v: [Tk, H*dh] strides ldk/ldv; out: [Tq, H*dh] stride ldo.
 *   scores = scale * q k^T (+ key_bias[Tk] if given, e.g. 0 / -inf padding mask);
 *   causal >= 0: query i may see keys j <= i + causal (i.e. `causal` = number of
 *   earlier keys before the first query: Tk - Tq for a KV cache); causal < 0: no causal mask.
 *   scratch: at least Tq * Tk floats. */
void blipc__attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *out, int ldo,
                      int Tq, int Tk, int H, int dh, float scale, const float *key_bias, int causal, float *scratch);

/* Mean over rows with mask (mask[t] != 0 counted), count clamped to >= 1e-9; then optional L2 norm (clamp 1e-12). */
void blipc__mean_pool(const float *x, const int32_t *mask, int T, int D, float *out);
void blipc__l2_normalize(float *x, int D);

/* argmax over n floats (first max wins, like torch.argmax) */
int blipc__argmax(const float *x, int n);

#endif
