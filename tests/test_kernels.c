/* Each kernel against a plain double-precision reference (op-by-op tests). */
#include "harness.h"
#include "arena.h"
#include "gemm_small.h"
#include "kernels.h"
#include "safetensors.h"
#include "threads.h"

#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_vec(size_t n) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand();
    return v;
}

static void ref_linear(const float *x, int M, int K, const float *W, const float *b, int N, float *y) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0;
            for (int k = 0; k < K; k++) s += (double)x[m * K + k] * W[(size_t)n * K + k];
            y[m * N + n] = (float)s;
        }
}

/* relative error bound for dot products of length K of values in [-1, 1] */
static double tol_dot(int K) { return 1e-6 * K; }

TEST(linear_sgemm_path_matches_reference) {
    int M = 37, K = 300, N = 250;
    float *x = rand_vec((size_t)M * K), *W = rand_vec((size_t)N * K), *b = rand_vec(N);
    float *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
    blipc__linear(x, M, K, 0, W, b, N, y, 0);
    ref_linear(x, M, K, W, b, N, r);
    CHECKF(th_max_abs_diff(y, r, (size_t)M * N) < tol_dot(K), "%g", th_max_abs_diff(y, r, (size_t)M * N));
    blipc__linear(x, M, K, 0, W, NULL, N, y, 0);
    ref_linear(x, M, K, W, NULL, N, r);
    CHECK(th_max_abs_diff(y, r, (size_t)M * N) < tol_dot(K));
    free(x), free(W), free(b), free(y), free(r);
}

TEST(gemm_small_every_isa_f32_and_bf16) {
    int isa_max = blipc__cpu_isa();
    int Ms[] = {1, 3, 8, 9, 16};
    int K = 517, N = 301; /* odd sizes exercise the tails */
    float *W = rand_vec((size_t)N * K), *b = rand_vec(N);
    uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
    float *Wr = malloc(sizeof(float) * N * K); /* bf16 rounded, as f32 */
    for (size_t i = 0; i < (size_t)N * K; i++) {
        Wh[i] = blipc__f32_to_bf16(W[i]);
        Wr[i] = blipc__bf16_to_f32(Wh[i]);
    }
    for (unsigned mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int M = Ms[mi];
        float *x = rand_vec((size_t)M * K), *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
        for (int isa = 0; isa <= isa_max; isa++)
            for (int thr = 1; thr <= 2; thr++) {
                blipc__gemm_small(x, M, K, K, W, 0, b, N, y, N, thr, isa);
                ref_linear(x, M, K, W, b, N, r);
                double d = th_max_abs_diff(y, r, (size_t)M * N);
                CHECKF(d < tol_dot(K), "f32 M=%d isa=%d threads=%d diff %g", M, isa, thr, d);
                blipc__gemm_small(x, M, K, K, Wh, 1, b, N, y, N, thr, isa);
                ref_linear(x, M, K, Wr, b, N, r);
                d = th_max_abs_diff(y, r, (size_t)M * N);
                CHECKF(d < tol_dot(K), "bf16 M=%d isa=%d threads=%d diff %g", M, isa, thr, d);
            }
        free(x), free(y), free(r);
    }
    free(W), free(b), free(Wh), free(Wr);
}

TEST(linear_bf16_large_m_matches_reference) {
    int M = 40, K = 96, N = 70;
    float *x = rand_vec((size_t)M * K), *W = rand_vec((size_t)N * K), *b = rand_vec(N);
    uint16_t *Wh = malloc(sizeof(uint16_t) * N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        Wh[i] = blipc__f32_to_bf16(W[i]);
        W[i] = blipc__bf16_to_f32(Wh[i]);
    }
    float *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
    blipc__linear_bf16(x, M, K, Wh, b, N, y);
    ref_linear(x, M, K, W, b, N, r);
    CHECK(th_max_abs_diff(y, r, (size_t)M * N) < tol_dot(K));
    free(x), free(W), free(b), free(Wh), free(y), free(r);
}

/* more than BLIPC_SMALL_M_BF16 rows: blocks of W upcast for sgemm; K wide
 * enough that N = 300 rows take three blocks (the last partial) */
TEST(linear_bf16_many_rows_blocked_sgemm) {
    int K = 10240 + 7, N = 300;
    float *W = rand_vec((size_t)N * K), *b = rand_vec(N);
    uint16_t *Wh = malloc(sizeof(uint16_t) * (size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        Wh[i] = blipc__f32_to_bf16(W[i]);
        W[i] = blipc__bf16_to_f32(Wh[i]);
    }
    int Ms[] = {BLIPC_SMALL_M_BF16 + 1, 64};
    for (int mi = 0; mi < 2; mi++) {
        int M = Ms[mi];
        float *x = rand_vec((size_t)M * K), *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
        for (int wb = 0; wb < 2; wb++) {
            for (size_t i = 0; i < (size_t)M * N; i++) y[i] = 1e9f; /* every output written */
            blipc__linear_bf16(x, M, K, Wh, wb ? b : NULL, N, y);
            ref_linear(x, M, K, W, wb ? b : NULL, N, r);
            double d = th_max_abs_diff(y, r, (size_t)M * N);
            CHECKF(d < tol_dot(K), "M=%d bias=%d diff %g", M, wb, d);
        }
        free(x), free(y), free(r);
    }
    free(W), free(b), free(Wh);
}

TEST(layernorm_matches_reference) {
    int M = 5, D = 384;
    float *x = rand_vec((size_t)M * D), *g = rand_vec(D), *bb = rand_vec(D), *y = malloc(sizeof(float) * M * D);
    for (int i = 0; i < D; i++) x[i] = x[i] * 0.01f + 3.0f; /* large mean, small variance */
    blipc__layernorm(y, x, g, bb, M, D, 1e-12f);
    for (int m = 0; m < M; m++) {
        double mean = 0, var = 0;
        for (int d = 0; d < D; d++) mean += x[m * D + d];
        mean /= D;
        for (int d = 0; d < D; d++) var += (x[m * D + d] - mean) * (x[m * D + d] - mean);
        var /= D;
        for (int d = 0; d < D; d++) {
            double want = (x[m * D + d] - mean) / sqrt(var + 1e-12) * g[d] + bb[d];
            CHECKF(fabs(y[m * D + d] - want) < 2e-6 * (1 + fabs(want)), "m=%d d=%d %g vs %g", m, d, y[m * D + d], want);
        }
    }
    free(x), free(g), free(bb), free(y);
}

TEST(gelu_is_exact_erf_form) {
    float v[] = {-6.0f, -3.0f, -1.0f, -0.5f, 0.0f, 0.1f, 0.7071f, 1.0f, 2.5f, 8.0f};
    float w[10];
    memcpy(w, v, sizeof v);
    blipc__gelu_erf(w, 10);
    for (int i = 0; i < 10; i++) {
        double want = 0.5 * v[i] * (1.0 + erf(v[i] / sqrt(2.0)));
        CHECKF(fabs(w[i] - want) < 1e-6, "gelu(%g) = %g, want %g", v[i], w[i], want);
    }
    /* and not the tanh approximation: they differ by ~1e-4 near x = 1.5 */
    float t = 1.5f;
    blipc__gelu_erf(&t, 1);
    double tanh_form = 0.5 * 1.5 * (1 + tanh(sqrt(2 / M_PI) * (1.5 + 0.044715 * 1.5 * 1.5 * 1.5)));
    CHECK(fabs(t - tanh_form) > 5e-5);
}

TEST(softmax_rows_sum_to_one_and_handle_masks) {
    float r[5] = {1000.0f, 999.0f, -INFINITY, 0.0f, 1000.0f};
    blipc__softmax_row(r, 5);
    double s = 0;
    for (int i = 0; i < 5; i++) s += r[i];
    CHECK(fabs(s - 1.0) < 1e-6);
    CHECK(r[2] == 0.0f);
    CHECK(fabs(r[0] - r[4]) < 1e-7);
    float m[3] = {-INFINITY, -INFINITY, -INFINITY};
    blipc__softmax_row(m, 3);
    CHECK(m[0] == 0.0f && m[1] == 0.0f && m[2] == 0.0f);
}

static void ref_attention(const float *q, const float *k, const float *v, float *o, int Tq, int Tk, int H, int dh,
                          float scale, const float *bias, int causal) {
    int D = H * dh;
    double *s = malloc(sizeof(double) * Tk);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++) {
            double mx = -INFINITY;
            for (int j = 0; j < Tk; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++) d += (double)q[i * D + h * dh + c] * k[j * D + h * dh + c];
                d = d * scale + (bias ? bias[j] : 0);
                if (causal >= 0 && j > i + causal) d = -INFINITY;
                s[j] = d;
                if (d > mx) mx = d;
            }
            double z = 0;
            for (int j = 0; j < Tk; j++) z += (s[j] = exp(s[j] - mx));
            for (int c = 0; c < dh; c++) {
                double acc = 0;
                for (int j = 0; j < Tk; j++) acc += s[j] / z * v[j * D + h * dh + c];
                o[i * D + h * dh + c] = (float)acc;
            }
        }
    free(s);
}

TEST(attention_matches_reference_with_bias_and_causal) {
    int Tq = 7, Tk = 11, H = 3, dh = 8, D = H * dh;
    float *q = rand_vec((size_t)Tq * D), *k = rand_vec((size_t)Tk * D), *v = rand_vec((size_t)Tk * D);
    float *o = malloc(sizeof(float) * Tq * D), *r = malloc(sizeof(float) * Tq * D), *scr = malloc(sizeof(float) * Tq * Tk);
    float bias[11] = {0};
    bias[3] = -INFINITY;
    bias[9] = -INFINITY;
    for (int causal = -1; causal <= Tk - Tq; causal += (Tk - Tq + 1)) {
        blipc__attention(q, D, k, D, v, D, o, D, Tq, Tk, H, dh, 0.35f, bias, causal, scr);
        ref_attention(q, k, v, r, Tq, Tk, H, dh, 0.35f, bias, causal);
        CHECKF(th_max_abs_diff(o, r, (size_t)Tq * D) < 1e-5, "causal=%d diff %g", causal,
               th_max_abs_diff(o, r, (size_t)Tq * D));
    }
    free(q), free(k), free(v), free(o), free(r), free(scr);
}

TEST(mean_pool_excludes_padding_and_l2_normalizes) {
    float x[4 * 2] = {1, 2, 3, 4, 100, 100, 100, 100};
    int32_t mask[4] = {1, 1, 0, 0};
    float out[2];
    blipc__mean_pool(x, mask, 4, 2, out);
    CHECK(out[0] == 2.0f && out[1] == 3.0f);
    blipc__l2_normalize(out, 2);
    CHECK(fabs(out[0] * out[0] + out[1] * out[1] - 1.0) < 1e-6);
    float z[2] = {0, 0};
    blipc__l2_normalize(z, 2); /* clamped norm: no NaN */
    CHECK(z[0] == 0.0f && z[1] == 0.0f);
}

TEST(arena_aligns_and_refuses_overflow) {
    blipc_arena a;
    blipc_err e;
    CHECK_STATUS(blipc__arena_init(&a, 1000, &e), BLIPC_OK, e.msg);
    void *p = blipc__arena_alloc(&a, 10), *q = blipc__arena_alloc(&a, 10);
    CHECK(p && q && ((uintptr_t)q & 63) == 0);
    CHECK(blipc__arena_alloc(&a, 2000) == NULL);
    size_t mark = blipc__arena_mark(&a);
    CHECK(blipc__arena_alloc(&a, 100) != NULL);
    blipc__arena_reset(&a, mark);
    CHECK(a.used == mark);
    blipc__arena_free(&a);
}

TEST(bf16_and_f16_conversions_are_exact) {
    CHECK(blipc__bf16_to_f32(0x3f80) == 1.0f);
    CHECK(blipc__bf16_to_f32(0xc040) == -3.0f);
    CHECK(blipc__f32_to_bf16(1.0f) == 0x3f80);
    CHECK(blipc__f32_to_bf16(1.00390625f) == 0x3f80);  /* tie -> even */
    CHECK(blipc__f32_to_bf16(1.01171875f) == 0x3f82);  /* tie -> even (up) */
    CHECK(blipc__f16_to_f32(0x3c00) == 1.0f);
    CHECK(blipc__f16_to_f32(0xc000) == -2.0f);
    CHECK(blipc__f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    CHECK(isinf(blipc__f16_to_f32(0x7c00)));
    for (uint32_t h = 0; h < 65536; h++) { /* every bf16 value round-trips */
        float f = blipc__bf16_to_f32((uint16_t)h);
        if (f == f) CHECK(blipc__f32_to_bf16(f) == h);
    }
}

int main(void) {
    blipc__threads_set(2);
    RUN(linear_sgemm_path_matches_reference);
    RUN(gemm_small_every_isa_f32_and_bf16);
    RUN(linear_bf16_many_rows_blocked_sgemm);
    RUN(linear_bf16_large_m_matches_reference);
    RUN(layernorm_matches_reference);
    RUN(gelu_is_exact_erf_form);
    RUN(softmax_rows_sum_to_one_and_handle_masks);
    RUN(attention_matches_reference_with_bias_and_causal);
    RUN(mean_pool_excludes_padding_and_l2_normalizes);
    RUN(arena_aligns_and_refuses_overflow);
    RUN(bf16_and_f16_conversions_are_exact);
    return th_finish();
}
