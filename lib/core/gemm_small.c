/* gemm_small.c — y[M, N] = x[M, K] . W[N, K]^T + b for few rows (M <= 16):
 * the decode-step shape. BLAS sgemm packs W first (a full extra pass over the
 * weights) and sgemv handles one row; this kernel streams every weight byte
 * exactly once per call for all M rows, split over threads by output rows.
 * W may be f32 or bf16 (upcast exactly: bits << 16). Runtime dispatch:
 * AVX-512F, AVX2+FMA, or portable C. */
#include "gemm_small.h"
#include "threads.h"

#include <stdlib.h>
#include <string.h>

/* Unroll hints for the register-blocked loops; GCC ignores them (with a warning) when not optimising. */
#if defined(__OPTIMIZE__) && defined(__GNUC__) && !defined(__clang__)
#define BLIPC_PRAGMA(x) _Pragma(#x)
#define BLIPC_UNROLL(n) BLIPC_PRAGMA(GCC unroll n)
#else
#define BLIPC_UNROLL(n)
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BLIPC_X86 1
#endif

typedef struct sm_job {
    const float *x;
    int M, K, ldx;
    const void *W;
    int bf16;
    const float *b;
    int N;
    float *y;
    int ldy;
    int isa; /* 2 = avx512, 1 = avx2, 0 = scalar */
    const float *xT; /* f32, 16 < M <= 64: x transposed [K][MP] (MP = M rounded up to 16), else NULL */
    int MP;
} sm_job;

static inline float w_at(const sm_job *j, size_t idx) {
    if (!j->bf16) return ((const float *)j->W)[idx];
    uint32_t u = (uint32_t)((const uint16_t *)j->W)[idx] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void rows_scalar(const sm_job *j, int n0, int n1) {
    for (int n = n0; n < n1; n++) {
        size_t base = (size_t)n * j->K;
        for (int m = 0; m < j->M; m++) {
            const float *xr = j->x + (size_t)m * j->ldx;
            float acc = 0.0f;
            for (int k = 0; k < j->K; k++) acc += xr[k] * w_at(j, base + k);
            j->y[(size_t)m * j->ldy + n] = acc + (j->b ? j->b[n] : 0.0f);
        }
    }
}

#ifdef BLIPC_X86
/* AVX-512 register block: NR weight rows x MR input rows (NR * MR <= 24
 * accumulators), 16 k at a time (the K tail masked). Every weight vector
 * loaded feeds MR FMAs, so up to 8 rows cost one pass over the weights with
 * the FMAs hidden under the stream; the weight rows are prefetched a little
 * ahead (the hardware streamer stops at 4 KiB pages and each row is its own
 * stream). Constant NR/MR after inlining. */
enum { SM_PF = 256 }; /* prefetch distance, elements */

__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void blk512(const sm_job *j, int n, int NR, int m0,
                                                                           int MR) {
    const int K = j->K;
    __m512 acc[3][8];
    if (NR > 3) { /* 4 x (<= 4) */
        __m512 a4[4][4];
BLIPC_UNROLL(4)
        for (int r = 0; r < 4; r++)
BLIPC_UNROLL(4)
            for (int m = 0; m < 4; m++) a4[r][m] = _mm512_setzero_ps();
        const float *xr[4];
BLIPC_UNROLL(4)
        for (int m = 0; m < 4; m++) xr[m] = j->x + (size_t)(m0 + (m < MR ? m : 0)) * j->ldx;
        for (int k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
            __m512 w[4];
            if (j->bf16) {
                const uint16_t *wb = (const uint16_t *)j->W + (size_t)n * K + k;
BLIPC_UNROLL(4)
                for (int r = 0; r < 4; r++) {
                    _mm_prefetch((const char *)(wb + (size_t)r * K + SM_PF), _MM_HINT_T0);
                    __m256i h = _mm256_maskz_loadu_epi16(mk, wb + (size_t)r * K);
                    w[r] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
                }
            } else {
                const float *wf = (const float *)j->W + (size_t)n * K + k;
BLIPC_UNROLL(4)
                for (int r = 0; r < 4; r++) {
                    _mm_prefetch((const char *)(wf + (size_t)r * K + SM_PF), _MM_HINT_T0);
                    w[r] = _mm512_maskz_loadu_ps(mk, wf + (size_t)r * K);
                }
            }
BLIPC_UNROLL(4)
            for (int m = 0; m < MR && m < 4; m++) {
                __m512 xv = _mm512_maskz_loadu_ps(mk, xr[m] + k);
BLIPC_UNROLL(4)
                for (int r = 0; r < 4; r++) a4[r][m] = _mm512_fmadd_ps(w[r], xv, a4[r][m]);
            }
        }
BLIPC_UNROLL(4)
        for (int r = 0; r < 4; r++) {
            float bias = j->b ? j->b[n + r] : 0.0f;
BLIPC_UNROLL(4)
            for (int m = 0; m < MR && m < 4; m++)
                j->y[(size_t)(m0 + m) * j->ldy + n + r] = _mm512_reduce_add_ps(a4[r][m]) + bias;
        }
        return;
    }
    /* NR <= 3 x MR <= 8 */
BLIPC_UNROLL(3)
    for (int r = 0; r < 3; r++)
BLIPC_UNROLL(8)
        for (int m = 0; m < 8; m++) acc[r][m] = _mm512_setzero_ps();
    const float *xr[8];
BLIPC_UNROLL(8)
    for (int m = 0; m < 8; m++) xr[m] = j->x + (size_t)(m0 + (m < MR ? m : 0)) * j->ldx;
    for (int k = 0; k < K; k += 16) {
        __mmask16 mk = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        __m512 w[3];
        if (j->bf16) {
            const uint16_t *wb = (const uint16_t *)j->W + (size_t)n * K + k;
BLIPC_UNROLL(3)
            for (int r = 0; r < NR && r < 3; r++) {
                _mm_prefetch((const char *)(wb + (size_t)r * K + SM_PF), _MM_HINT_T0);
                __m256i h = _mm256_maskz_loadu_epi16(mk, wb + (size_t)r * K);
                w[r] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            }
        } else {
            const float *wf = (const float *)j->W + (size_t)n * K + k;
BLIPC_UNROLL(3)
            for (int r = 0; r < NR && r < 3; r++) {
                _mm_prefetch((const char *)(wf + (size_t)r * K + SM_PF), _MM_HINT_T0);
                w[r] = _mm512_maskz_loadu_ps(mk, wf + (size_t)r * K);
            }
        }
BLIPC_UNROLL(8)
        for (int m = 0; m < MR && m < 8; m++) {
            __m512 xv = _mm512_maskz_loadu_ps(mk, xr[m] + k);
BLIPC_UNROLL(3)
            for (int r = 0; r < NR && r < 3; r++) acc[r][m] = _mm512_fmadd_ps(w[r], xv, acc[r][m]);
        }
    }
BLIPC_UNROLL(3)
    for (int r = 0; r < NR && r < 3; r++) {
        float bias = j->b ? j->b[n + r] : 0.0f;
BLIPC_UNROLL(8)
        for (int m = 0; m < MR && m < 8; m++)
            j->y[(size_t)(m0 + m) * j->ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]) + bias;
    }
}

#define BLK_M8(NR_)                                              \
    switch (MR) {                                                \
    case 8: blk512(j, n, NR_, m0, 8); break;                     \
    case 7: blk512(j, n, NR_, m0, 7); break;                     \
    case 6: blk512(j, n, NR_, m0, 6); break;                     \
    case 5: blk512(j, n, NR_, m0, 5); break;                     \
    case 4: blk512(j, n, NR_, m0, 4); break;                     \
    case 3: blk512(j, n, NR_, m0, 3); break;                     \
    case 2: blk512(j, n, NR_, m0, 2); break;                     \
    default: blk512(j, n, NR_, m0, 1); break;                    \
    }

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void rows_avx512(const sm_job *j, int n0, int n1) {
    /* up to 4 rows of x: 4 weight rows per block; more: 3 weight rows x 8 */
    const int MB = j->M <= 4 ? 4 : 8, NB = j->M <= 4 ? 4 : 3;
    for (int n = n0; n < n1; n += NB) {
        int NR = n1 - n < NB ? n1 - n : NB;
        for (int m0 = 0; m0 < j->M; m0 += MB) {
            int MR = j->M - m0 < MB ? j->M - m0 : MB;
            switch (NR) {
            case 4:
                switch (MR) {
                case 4: blk512(j, n, 4, m0, 4); break;
                case 3: blk512(j, n, 4, m0, 3); break;
                case 2: blk512(j, n, 4, m0, 2); break;
                default: blk512(j, n, 4, m0, 1); break;
                }
                break;
            case 3: BLK_M8(3) break;
            case 2: BLK_M8(2) break;
            default: BLK_M8(1) break;
            }
        }
    }
}

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static void rows_avx2(const sm_job *j, int n0, int n1) {
    const int K = j->K, K8 = K & ~7;
    for (int n = n0; n < n1; n++) {
        for (int m0 = 0; m0 < j->M; m0 += 8) {
            int mc = j->M - m0 < 8 ? j->M - m0 : 8;
            __m256 acc[8];
            for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
            const float *xb = j->x + (size_t)m0 * j->ldx;
            for (int k = 0; k < K8; k += 8) {
                __m256 w;
                if (j->bf16) {
                    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)j->W + (size_t)n * K + k));
                    w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
                } else {
                    w = _mm256_loadu_ps((const float *)j->W + (size_t)n * K + k);
                }
                for (int i = 0; i < mc; i++)
                    acc[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xb + (size_t)i * j->ldx + k), acc[i]);
            }
            for (int i = 0; i < mc; i++) {
                float s = hsum256(acc[i]);
                const float *xr = xb + (size_t)i * j->ldx;
                for (int k = K8; k < K; k++) s += xr[k] * w_at(j, (size_t)n * K + k);
                j->y[(size_t)(m0 + i) * j->ldy + n] = s + (j->b ? j->b[n] : 0.0f);
            }
        }
    }
}
#endif

#ifdef BLIPC_X86
/* 17..64 rows, f32 weights: vectorised over the rows instead of over k, so no
 * horizontal sums. xT[k][0..MP) holds column k of x; a block of NR weight rows
 * x MC row-vectors accumulates bcast(W[n][k]) * xT[k] (NR * MC <= 24). Each
 * weight element is read once (a scalar broadcast), x^T streams from L2. */
__attribute__((target("avx512f"), always_inline)) static inline void xt_blk(const sm_job *j, int n, int NR, int MC) {
    const int K = j->K, MP = j->MP;
    __m512 acc[8][4];
BLIPC_UNROLL(8)
    for (int r = 0; r < 8; r++)
BLIPC_UNROLL(4)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    const float *w0 = (const float *)j->W + (size_t)n * K;
    for (int k = 0; k < K; k++) {
        const float *xk = j->xT + (size_t)k * MP;
        __m512 xv[4];
BLIPC_UNROLL(4)
        for (int c = 0; c < MC && c < 4; c++) xv[c] = _mm512_load_ps(xk + 16 * c);
        if ((k & 15) == 0)
BLIPC_UNROLL(8)
            for (int r = 0; r < NR && r < 8; r++) _mm_prefetch((const char *)(w0 + (size_t)r * K + k + SM_PF), _MM_HINT_T0);
BLIPC_UNROLL(8)
        for (int r = 0; r < NR && r < 8; r++) {
            __m512 w = _mm512_set1_ps(w0[(size_t)r * K + k]);
BLIPC_UNROLL(4)
            for (int c = 0; c < MC && c < 4; c++) acc[r][c] = _mm512_fmadd_ps(w, xv[c], acc[r][c]);
        }
    }
    /* scatter: y[m][n + r] = acc[r][m / 16][m % 16] + b */
    float tmp[64] __attribute__((aligned(64)));
BLIPC_UNROLL(8)
    for (int r = 0; r < NR && r < 8; r++) {
BLIPC_UNROLL(4)
        for (int c = 0; c < MC && c < 4; c++) _mm512_store_ps(tmp + 16 * c, acc[r][c]);
        float bias = j->b ? j->b[n + r] : 0.0f;
        for (int m = 0; m < j->M; m++) j->y[(size_t)m * j->ldy + n + r] = tmp[m] + bias;
    }
}

#define XT_NR(MC_, NRMAX)                                                 \
    for (int n = n0; n < n1; n += NRMAX) {                                \
        int NR = n1 - n < NRMAX ? n1 - n : NRMAX;                         \
        switch (NR) {                                                     \
        case 8: xt_blk(j, n, 8, MC_); break;                              \
        case 7: xt_blk(j, n, 7, MC_); break;                              \
        case 6: xt_blk(j, n, 6, MC_); break;                              \
        case 5: xt_blk(j, n, 5, MC_); break;                              \
        case 4: xt_blk(j, n, 4, MC_); break;                              \
        case 3: xt_blk(j, n, 3, MC_); break;                              \
        case 2: xt_blk(j, n, 2, MC_); break;                              \
        default: xt_blk(j, n, 1, MC_); break;                             \
        }                                                                 \
    }

__attribute__((target("avx512f"))) static void rows_xt_avx512(const sm_job *j, int n0, int n1) {
    switch (j->MP / 16) {
    case 2: XT_NR(2, 8) break;
    case 3: XT_NR(3, 8) break;
    default: XT_NR(4, 6) break;
    }
}
#endif

static void sm_part(void *arg, int i, int n) {
    const sm_job *j = arg;
    /* split output rows in blocks of 16 so threads touch disjoint cache lines of y */
    int blocks = (j->N + 15) / 16;
    int per = (blocks + n - 1) / n;
    int n0 = i * per * 16, n1 = (i + 1) * per * 16;
    if (n1 > j->N) n1 = j->N;
    if (n0 >= n1) return;
#ifdef BLIPC_X86
    if (j->isa == 2 && j->xT) {
        rows_xt_avx512(j, n0, n1);
        return;
    }
    if (j->isa == 2) {
        rows_avx512(j, n0, n1);
        return;
    }
    if (j->isa == 1) {
        rows_avx2(j, n0, n1);
        return;
    }
#endif
    rows_scalar(j, n0, n1);
}

int blipc__cpu_isa(void) {
#ifdef BLIPC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

void blipc__gemm_small(const float *x, int M, int K, int ldx, const void *W, int w_is_bf16, const float *b, int N,
                       float *y, int ldy, int n_threads, int isa) {
    if (M <= 0 || N <= 0) return;
    sm_job j = {x, M, K, ldx > 0 ? ldx : K, W, w_is_bf16, b, N, y, ldy > 0 ? ldy : N, isa < 0 ? blipc__cpu_isa() : isa,
                NULL, 0};
    if (n_threads < 1) n_threads = 1;
    if ((size_t)N * K < 65536) n_threads = 1; /* too small to be worth a thread */
    if (j.isa == 2 && !w_is_bf16 && M > 16 && M <= 64 && (size_t)K * (size_t)((M + 15) & ~15) * 4 <= ((size_t)2 << 20)) {
        /* f32 weights, 17..64 rows (a prefill): the transposed-x kernel; if its
         * buffer cannot be had, the row kernel below does the same work */
        int MP = (M + 15) & ~15;
        float *xT = NULL;
        if (posix_memalign((void **)&xT, 64, (size_t)K * MP * sizeof(float)) == 0) {
            for (int k = 0; k < K; k++) {
                float *d = xT + (size_t)k * MP;
                for (int m = 0; m < M; m++) d[m] = x[(size_t)m * j.ldx + k];
                for (int m = M; m < MP; m++) d[m] = 0.0f;
            }
            j.xT = xT;
            j.MP = MP;
            blipc__parallel_for(n_threads, sm_part, &j);
            free(xT);
            return;
        }
    }
    /* Many rows whose x would not stay in L2: take them in chunks of ~1 MiB of
     * x (at least 64 rows) while the weights stream past. Each chunk is one
     * more pass over W: a win when W sits in cache (1.3x at 264 rows), a loss
     * when it streams from DRAM, so only for weights up to 16 MiB. */
    int chunk = M;
    size_t wbytes = (size_t)N * K * (w_is_bf16 ? 2 : 4);
    if ((size_t)M * K * sizeof(float) > ((size_t)2 << 20) && wbytes <= ((size_t)16 << 20)) {
        chunk = (int)(((size_t)1 << 20) / ((size_t)K * sizeof(float))) & ~7;
        if (chunk < 64) chunk = 64;
        if (chunk > M) chunk = M;
    }
    for (int m0 = 0; m0 < M; m0 += chunk) {
        sm_job c = j;
        c.x = x + (size_t)m0 * j.ldx;
        c.y = y + (size_t)m0 * j.ldy;
        c.M = M - m0 < chunk ? M - m0 : chunk;
        blipc__parallel_for(n_threads, sm_part, &c);
    }
}
