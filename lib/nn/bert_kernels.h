/* bert_kernels.h — internal kernels of the BERT encoder (lib/nn/bert_kernels.c). */
#ifndef BLIPC_NN_BERT_KERNELS_H
#define BLIPC_NN_BERT_KERNELS_H

#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BERT_X86 1
#endif

/* y = LayerNorm(x + (r + b)) row by row (post-LN residual; r == NULL: LayerNorm(x)), weight g, bias beta. */
void blipc__bert_residual_layernorm(float *y, const float *x, const float *r, const float *b, const float *g, const float *beta, int M, int D, float eps);
/* One attention head over packed QKV rows [T, 3D] (keys past nk are padding). */
void blipc__bert_attn_head(const float *qkv, int T, int nk, int D, int dh, int h, float scale, const float *kbias, float *out, float *kt, float *s);
/* This thread's share (ti of nt) of y[M, N] = x[M, K] Wp + b over the packed panels, optionally GELU'd. */
void blipc__bert_dense_packed(const float *x, int M, int K, const float *wp, const float *b, int N, float *y, int gelu, int ti, int nt);
#ifdef BERT_X86
/* AVX-512 attention head; pf (may be NULL) is prefetched for the thread's next head. */
void blipc__bert_attn_head512(const float *qkv, int T, int nk, int D, int dh, int h, float scale, const float *kbias, float *out, float *kt, float *s, const float *pf, int pfT);
#endif

#endif
