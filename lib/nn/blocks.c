/* blocks.c — table-driven weight loading and storage-agnostic linear layers. */
#include "blocks.h"
#include "gemm_small.h"
#include "kernels.h"

#include <stdio.h>
#include <string.h>

blipc_status blipc__load_table(blipc_safetensors *st, void *obj, const blipc_wspec *spec, size_t n,
                               const int64_t *dims, int layer, blipc_wmode mode, blipc_err *e) {
    for (size_t i = 0; i < n; i++) {
        const blipc_wspec *s = &spec[i];
        char name[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(name, sizeof name, s->name, layer);
#pragma GCC diagnostic pop
        int64_t shape[4];
        for (int d = 0; d < s->ndim; d++) shape[d] = dims[s->dims[d]];
        char *dst = (char *)obj + s->offset;
        if (s->kind == 0) {
            const float *p;
            BLIPC_TRY(blipc__st_get_f32(st, name, s->ndim, shape, &p, e));
            memcpy(dst, &p, sizeof p);
            continue;
        }
        blipc_wmat w = {NULL, NULL};
        int use_bf16 = mode == BLIPC_WMODE_BF16;
        if (mode == BLIPC_WMODE_AS_STORED) {
            const blipc_st_tensor *t = blipc__st_find(st, name);
            use_bf16 = t && t->dtype == BLIPC_DT_BF16;
        }
        if (use_bf16) BLIPC_TRY(blipc__st_get_bf16(st, name, s->ndim, shape, &w.h, e));
        else BLIPC_TRY(blipc__st_get_f32(st, name, s->ndim, shape, &w.f, e));
        memcpy(dst, &w, sizeof w);
    }
    return BLIPC_OK;
}

void blipc__linear_w(const float *x, int M, int K, int ldx, const blipc_wmat *W, const float *b, int N, float *y,
                     int ldy) {
    if (W->f) {
        blipc__linear(x, M, K, ldx, W->f, b, N, y, ldy);
        return;
    }
    if (ldx <= 0) ldx = K;
    if (ldy <= 0) ldy = N;
    if (ldx == K && ldy == N) {
        blipc__linear_bf16(x, M, K, W->h, b, N, y);
        return;
    }
    for (int m = 0; m < M; m++) blipc__linear_bf16(x + (size_t)m * ldx, 1, K, W->h, b, N, y + (size_t)m * ldy);
}

void blipc__linear_rows(const float *x, int M, int K, const blipc_wmat *W, const float *b, int N, float *y,
                        int n_threads) {
    if (W->f) blipc__gemm_small(x, M, K, K, W->f, 0, b, N, y, N, n_threads, -1);
    else blipc__gemm_small(x, M, K, K, W->h, 1, b, N, y, N, n_threads, -1);
}

void blipc__wmat_row(const blipc_wmat *W, int D, int64_t row, float *out) {
    if (W->f) {
        memcpy(out, W->f + (size_t)row * D, (size_t)D * sizeof(float));
        return;
    }
    const uint16_t *r = W->h + (size_t)row * D;
    for (int d = 0; d < D; d++) out[d] = blipc__bf16_to_f32(r[d]);
}
