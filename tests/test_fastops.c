/* The AVX-512 threaded kernels (fastops.c, reached through kernels.c) at the
 * model shapes — ViT-g attention (257 tokens, dh 88), Q-Former cross-attention
 * (32 x 257, dh 64), OPT prefill (causal) and KV-cache steps (one query),
 * GELU / LayerNorm over a ViT MLP block — against double references; and the
 * streaming few-row GEMM at the decode shapes for M = 1..16 (f32 and bf16). */
#include "harness.h"
#include "fastops.h"
#include "gemm_small.h"
#include "kernels.h"
#include "safetensors.h"
#include "threads.h"

#include <stdint.h>

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

/* q/k/v with row strides; double reference of the same contract as blipc__attention */
static void ref_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *o, int ldo,
                          int Tq, int Tk, int H, int dh, float scale, const float *bias, int causal) {
    double *s = malloc(sizeof(double) * (size_t)Tk);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++) {
            double mx = -INFINITY;
            for (int j = 0; j < Tk; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++) d += (double)q[(size_t)i * ldq + h * dh + c] * k[(size_t)j * ldk + h * dh + c];
                d = d * scale + (bias ? bias[j] : 0);
                if (causal >= 0 && j > i + causal) d = -INFINITY;
                s[j] = d;
                if (d > mx) mx = d;
            }
            double z = 0;
            for (int j = 0; j < Tk; j++) z += (s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx));
            for (int c = 0; c < dh; c++) {
                double acc = 0;
                for (int j = 0; j < Tk; j++) acc += (z > 0 ? s[j] / z : 0) * v[(size_t)j * ldv + h * dh + c];
                o[(size_t)i * ldo + h * dh + c] = (float)acc;
            }
        }
    free(s);
}

/* One case: fused qkv layout (ld = 3D) when fused, else separate [T, D] tensors. */
static double attention_case(int Tq, int Tk, int H, int dh, int fused, int causal, int with_bias) {
    int D = H * dh, ld = fused ? 3 * D : D;
    float *q = rand_vec((size_t)Tq * ld, 1.5f), *kv = rand_vec((size_t)Tk * ld * (fused ? 1 : 2), 1.5f);
    const float *k = fused ? kv + D : kv, *v = fused ? kv + 2 * D : kv + (size_t)Tk * ld;
    float *bias = NULL;
    if (with_bias) {
        bias = calloc((size_t)Tk, sizeof *bias);
        for (int j = 0; j < Tk; j += 7) bias[j] = -INFINITY;
        bias[Tk - 1] = -1.0f;
    }
    int ldo = D + 5; /* a strided output */
    float *o = malloc(sizeof(float) * (size_t)Tq * ldo), *r = malloc(sizeof(float) * (size_t)Tq * ldo);
    float *scr = malloc(sizeof(float) * (size_t)Tq * Tk);
    for (size_t i = 0; i < (size_t)Tq * ldo; i++) o[i] = r[i] = 7.0f; /* padding columns untouched */
    float scale = 1.0f / sqrtf((float)dh);
    blipc__attention(q, ld, k, ld, v, ld, o, ldo, Tq, Tk, H, dh, scale, bias, causal, scr);
    ref_attention(q, ld, k, ld, v, ld, r, ldo, Tq, Tk, H, dh, scale, bias, causal);
    double d = th_max_abs_diff(o, r, (size_t)Tq * ldo);
    free(q), free(kv), free(bias), free(o), free(r), free(scr);
    return d;
}

TEST(attention_vit_shape_threaded) {
    double d = attention_case(257, 257, 4, 88, 1, -1, 0); /* 4 of ViT-g's 16 heads: same per-head work */
    CHECKF(d < 2e-5, "diff %g", d);
}

TEST(attention_qformer_cross_and_self) {
    double d = attention_case(32, 257, 12, 64, 0, -1, 0);
    CHECKF(d < 2e-5, "cross diff %g", d);
    d = attention_case(32, 32, 12, 64, 0, -1, 0);
    CHECKF(d < 2e-5, "self diff %g", d);
}

TEST(attention_opt_prefill_causal_and_steps) {
    double d = attention_case(33, 33, 32, 80, 0, 0, 0);
    CHECKF(d < 2e-5, "prefill diff %g", d);
    d = attention_case(1, 47, 32, 80, 0, -1, 0); /* KV-cache step */
    CHECKF(d < 2e-5, "step diff %g", d);
    d = attention_case(2, 30, 8, 80, 0, 28, 1); /* two queries, direct path, with a key mask */
    CHECKF(d < 2e-5, "two-query diff %g", d);
    d = attention_case(3, 50, 8, 80, 0, 47, 0); /* a few new tokens against a cache */
    CHECKF(d < 2e-5, "causal offset diff %g", d);
}

TEST(attention_odd_sizes_bias_and_masked_rows) {
    for (int dh = 1; dh <= 130; dh += 43) {
        double d = attention_case(70, 67, 3, dh, 0, -1, 1);
        CHECKF(d < 2e-5, "dh=%d diff %g", dh, d);
        d = attention_case(70, 70, 3, dh, 1, 0, 1); /* causal + -inf keys: row 0 sees only key 0 (masked) */
        CHECKF(d < 2e-5, "dh=%d causal diff %g", dh, d);
    }
}

TEST(gelu_large_block_matches_erf) {
    size_t n = (size_t)257 * 612 + 13; /* threaded, with a tail */
    float *x = rand_vec(n, 6.0f), *y = malloc(n * sizeof(float));
    x[0] = 0.0f, x[1] = -12.0f, x[2] = 12.0f, x[3] = -0.0f, x[4] = 1e-30f, x[5] = -3.0f;
    memcpy(y, x, n * sizeof(float));
    blipc__gelu_erf(y, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        double err = fabs(y[i] - want) / (1e-6 + fabs(want));
        if (err > worst) worst = err;
    }
    CHECKF(worst < 2e-6, "worst relative error %g", worst);
    CHECK(y[0] == 0.0f);
    CHECK(y[2] == 12.0f);
    free(x), free(y);
}

TEST(layernorm_large_block_matches_reference) {
    int M = 257, D = 1408;
    float *x = rand_vec((size_t)M * D, 1.0f), *g = rand_vec(D, 1.0f), *b = rand_vec(D, 1.0f);
    float *y = malloc(sizeof(float) * (size_t)M * D);
    for (size_t i = 0; i < (size_t)D; i++) x[i] = 100.0f + x[i] * 1e-3f; /* row 0: large mean, tiny spread */
    blipc__layernorm(y, x, g, b, M, D, 1e-6f);
    double worst = 0;
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        double mean = 0, var = 0;
        for (int d = 0; d < D; d++) mean += xr[d];
        mean /= D;
        for (int d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        var /= D;
        for (int d = 0; d < D; d++) {
            double want = (xr[d] - mean) / sqrt(var + 1e-6) * g[d] + b[d];
            double err = fabs(y[(size_t)m * D + d] - want) / (1 + fabs(want));
            if (err > worst) worst = err;
        }
    }
    CHECKF(worst < 2e-6, "worst %g", worst);
    /* in place (y aliases x) gives the same */
    float *z = malloc(sizeof(float) * (size_t)M * D);
    memcpy(z, x, sizeof(float) * (size_t)M * D);
    blipc__layernorm(z, z, g, b, M, D, 1e-6f);
    CHECK(memcmp(z, y, sizeof(float) * (size_t)M * D) == 0);
    free(x), free(g), free(b), free(y), free(z);
}

/* gemm_small at a decode shape (K = 2560 -> N = 1000 rows of W) for every M it serves */
TEST(gemm_small_decode_shapes_all_m) {
    int K = 2560 + 3, N = 1000;
    float *W = rand_vec((size_t)N * K, 0.05f), *bias = rand_vec(N, 1.0f);
    uint16_t *Wh = malloc(sizeof(uint16_t) * (size_t)N * K);
    float *Wr = malloc(sizeof(float) * (size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        Wh[i] = blipc__f32_to_bf16(W[i]);
        Wr[i] = blipc__bf16_to_f32(Wh[i]);
    }
    int ldx = K + 16, ldy = N + 8;
    float *x = rand_vec((size_t)16 * ldx, 1.0f), *y = malloc(sizeof(float) * 16 * (size_t)ldy);
    for (int isa = 0; isa <= blipc__cpu_isa(); isa++)
        for (int M = 1; M <= 16; M++)
            for (int bf = 0; bf < 2; bf++) {
                for (size_t i = 0; i < (size_t)16 * ldy; i++) y[i] = 9.0f;
                blipc__gemm_small(x, M, K, ldx, bf ? (const void *)Wh : (const void *)W, bf, bias, N, y, ldy, 2, isa);
                double worst = 0;
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double s = bias[n];
                        const float *wr = (bf ? Wr : W) + (size_t)n * K;
                        for (int k = 0; k < K; k++) s += (double)x[(size_t)m * ldx + k] * wr[k];
                        double e = fabs(y[(size_t)m * ldy + n] - s);
                        if (e > worst) worst = e;
                    }
                CHECKF(worst < 2e-4, "isa %d M %d bf16 %d: %g", isa, M, bf, worst);
                if (M < 16) CHECK(y[(size_t)M * ldy] == 9.0f); /* rows past M untouched */
                CHECK(y[(size_t)(M - 1) * ldy + N] == 9.0f); /* columns past N untouched */
            }
    free(W), free(bias), free(Wh), free(Wr), free(x), free(y);
}

/* 17..64 rows with f32 weights: the transposed-x kernel (a prefill), strided x and y */
TEST(gemm_small_prefill_rows_transposed) {
    int Ms[] = {17, 33, 48, 64}, K = 2563, N = 45, ldx = K + 3, ldy = N + 2;
    float *W = rand_vec((size_t)N * K, 0.05f), *x = rand_vec((size_t)64 * ldx, 1.0f), *bias = rand_vec(N, 1.0f);
    float *y = malloc(sizeof(float) * (size_t)65 * ldy);
    for (unsigned mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int M = Ms[mi];
        for (size_t i = 0; i < (size_t)65 * ldy; i++) y[i] = 9.0f;
        blipc__gemm_small(x, M, K, ldx, W, 0, mi & 1 ? bias : NULL, N, y, ldy, 2, -1);
        double worst = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double sum = mi & 1 ? bias[n] : 0;
                for (int k = 0; k < K; k++) sum += (double)x[(size_t)m * ldx + k] * W[(size_t)n * K + k];
                double e = fabs(y[(size_t)m * ldy + n] - sum);
                if (e > worst) worst = e;
            }
        CHECKF(worst < 2e-4, "M %d: %g", M, worst);
        CHECK(y[(size_t)M * ldy] == 9.0f);
        CHECK(y[(size_t)(M - 1) * ldy + N] == 9.0f);
    }
    free(W), free(x), free(bias), free(y);
}

/* many rows whose x exceeds L2: the kernel takes them in chunks (a batched prefill) */
TEST(gemm_small_many_rows_chunked) {
    int M = 70, K = 8192 + 5, N = 37;
    float *W = rand_vec((size_t)N * K, 0.05f), *x = rand_vec((size_t)M * K, 1.0f), *bias = rand_vec(N, 1.0f);
    uint16_t *Wh = malloc(sizeof(uint16_t) * (size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) Wh[i] = blipc__f32_to_bf16(W[i]);
    float *y = malloc(sizeof(float) * (size_t)M * N);
    for (int bf = 0; bf < 2; bf++) {
        blipc__gemm_small(x, M, K, 0, bf ? (const void *)Wh : (const void *)W, bf, bias, N, y, 0, 2, -1);
        double worst = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double sum = bias[n];
                for (int k = 0; k < K; k++)
                    sum += (double)x[(size_t)m * K + k] *
                           (bf ? blipc__bf16_to_f32(Wh[(size_t)n * K + k]) : W[(size_t)n * K + k]);
                double e = fabs(y[(size_t)m * N + n] - sum);
                if (e > worst) worst = e;
            }
        CHECKF(worst < 5e-4, "bf16 %d: %g", bf, worst);
    }
    free(W), free(x), free(bias), free(Wh), free(y);
}

int main(void) {
    blipc__threads_set(2);
    RUN(attention_vit_shape_threaded);
    RUN(attention_qformer_cross_and_self);
    RUN(attention_opt_prefill_causal_and_steps);
    RUN(attention_odd_sizes_bias_and_masked_rows);
    RUN(gelu_large_block_matches_erf);
    RUN(layernorm_large_block_matches_reference);
    RUN(gemm_small_decode_shapes_all_m);
    RUN(gemm_small_prefill_rows_transposed);
    RUN(gemm_small_many_rows_chunked);
    return th_finish();
}
