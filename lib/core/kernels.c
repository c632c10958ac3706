/* kernels.c — reference-quality kernels over OpenBLAS. Optimised variants
 * live beside them and are tested against these. */
#include "kernels.h"
#include "threads.h"
#include "gemm_small.h"
#include "fastops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void blipc__linear(const float *x, int M, int K, int ldx, const float *W, const float *b, int N, float *y, int ldy) {
    if (ldx <= 0) ldx = K;
    if (ldy <= 0) ldy = N;
    if (M <= 0 || N <= 0) return;
    if (M <= BLIPC_SMALL_M && (size_t)N * K >= 65536) {
        /* decode-step shape: stream the weights once for all rows */
        blipc__gemm_small(x, M, K, ldx, W, 0, b, N, y, ldy, openblas_get_num_threads(), -1);
        return;
    }
    if (b) {
        for (int i = 0; i < M; i++) memcpy(y + (size_t)i * ldy, b, (size_t)N * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, ldx, W, K, b ? 1.0f : 0.0f, y, ldy);
}

void blipc__linear_bf16(const float *x, int M, int K, const uint16_t *W, const float *b, int N, float *y) {
    if (M <= 0 || N <= 0) return;
    /* sgemm blocks: about 5 MiB of upcast weights (512 rows at K = 2560) */
    int rows_per = (int)(((size_t)5 << 20) / ((size_t)K * sizeof(float)));
    if (rows_per > N) rows_per = N;
    float *wb = NULL;
    if (M <= BLIPC_SMALL_M_BF16 || rows_per < 16 ||
        !(wb = malloc((size_t)rows_per * K * sizeof(float)))) {
        /* few rows (or no buffer): stream the bf16 weights, upcast in registers */
        blipc__gemm_small(x, M, K, K, W, 1, b, N, y, N, openblas_get_num_threads(), -1);
        return;
    }
    /* many rows (a batched prefill): upcast a block of rows of W exactly and
     * run the threaded sgemm on it (1.2-1.8x faster than the streaming kernel
     * at 264 rows, K = 2560/10240) */
    for (int n0 = 0; n0 < N; n0 += rows_per) {
        int nb = N - n0 < rows_per ? N - n0 : rows_per;
        const uint16_t *src = W + (size_t)n0 * K;
        for (size_t i = 0; i < (size_t)nb * K; i++) {
            uint32_t u = (uint32_t)src[i] << 16;
            memcpy(&wb[i], &u, sizeof u);
        }
        for (int m = 0; m < M; m++) {
            float *yr = y + (size_t)m * N + n0;
            if (b) memcpy(yr, b + n0, (size_t)nb * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, x, K, wb, K, b ? 1.0f : 0.0f, y + n0, N);
    }
    free(wb);
}

void blipc__gemv(const float *x, int K, const float *W, const float *b, int N, float *y, int n_threads) {
    blipc__gemm_small(x, 1, K, K, W, 0, b, N, y, N, n_threads, -1);
}

void blipc__layernorm(float *y, const float *x, const float *gamma, const float *beta, int M, int D, float eps) {
    if (blipc__fast_layernorm(y, x, gamma, beta, M, D, eps)) return; /* AVX-512, threaded */
    for (int i = 0; i < M; i++) {
        const float *xr = x + (size_t)i * D;
        float *yr = y + (size_t)i * D;
        /* two-pass in float like torch's CPU kernel would in double-accumulated form */
        double s = 0;
        for (int d = 0; d < D; d++) s += xr[d];
        double mean = s / D;
        double v = 0;
        for (int d = 0; d < D; d++) {
            double t = xr[d] - mean;
            v += t * t;
        }
        double rstd = 1.0 / sqrt(v / D + (double)eps);
        for (int d = 0; d < D; d++) {
            float t = (float)((xr[d] - mean) * rstd);
            yr[d] = t * (gamma ? gamma[d] : 1.0f) + (beta ? beta[d] : 0.0f);
        }
    }
}

void blipc__gelu_erf(float *x, size_t n) {
    if (blipc__fast_gelu_erf(x, n)) return; /* AVX-512, threaded */
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752440f));
}

void blipc__relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void blipc__add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void blipc__softmax_row(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* fully masked row: uniform zeros */
        for (int i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void blipc__attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *out, int ldo,
                      int Tq, int Tk, int H, int dh, float scale, const float *key_bias, int causal, float *scratch) {
    if (blipc__fast_attention(q, ldq, k, ldk, v, ldv, out, ldo, Tq, Tk, H, dh, scale, key_bias, causal)) return;
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * dh, *kh = k + (size_t)h * dh, *vh = v + (size_t)h * dh;
        float *oh = out + (size_t)h * dh;
        float *S = scratch; /* [Tq, Tk] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, scale, qh, ldq, kh, ldk, 0.0f, S, Tk);
        for (int i = 0; i < Tq; i++) {
            float *row = S + (size_t)i * Tk;
            if (key_bias)
                for (int j = 0; j < Tk; j++) row[j] += key_bias[j];
            if (causal >= 0)
                for (int j = i + causal + 1; j < Tk; j++) row[j] = -INFINITY;
            blipc__softmax_row(row, Tk);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, 1.0f, S, Tk, vh, ldv, 0.0f, oh, ldo);
    }
}

void blipc__mean_pool(const float *x, const int32_t *mask, int T, int D, float *out) {
    double cnt = 0;
    for (int d = 0; d < D; d++) out[d] = 0.0f;
    for (int t = 0; t < T; t++) {
        if (mask && !mask[t]) continue;
        cnt += 1;
        for (int d = 0; d < D; d++) out[d] += x[(size_t)t * D + d];
    }
    float c = (float)(cnt < 1e-9 ? 1e-9 : cnt);
    for (int d = 0; d < D; d++) out[d] /= c;
}

void blipc__l2_normalize(float *x, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)x[d] * x[d];
    float n = (float)sqrt(s);
    if (n < 1e-12f) n = 1e-12f;
    for (int d = 0; d < D; d++) x[d] /= n;
}

int blipc__argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
