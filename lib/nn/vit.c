/* vit.c — BLIP-2 vision tower (see vit.h). */
#include "vit.h"
#include "blocks.h"
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* dims indices */
enum { DIM_D, DIM_3D, DIM_F, DIM_1, DIM_T, DIM_C, DIM_P, DIM_COUNT };

#define VL(f) offsetof(blipc_vit_layer, f)
#define VM(f) offsetof(blipc_vit, f)
#define LP "vision_model.encoder.layers.%d."

static const blipc_wspec vit_top[] = {
    {VM(patch_w), "vision_model.embeddings.patch_embedding.weight", 0, 4, {DIM_D, DIM_C, DIM_P, DIM_P}},
    {VM(patch_b), "vision_model.embeddings.patch_embedding.bias", 0, 1, {DIM_D}},
    {VM(class_emb), "vision_model.embeddings.class_embedding", 0, 3, {DIM_1, DIM_1, DIM_D}},
    {VM(pos_emb), "vision_model.embeddings.position_embedding", 0, 3, {DIM_1, DIM_T, DIM_D}},
    {VM(post_ln_w), "vision_model.post_layernorm.weight", 0, 1, {DIM_D}},
    {VM(post_ln_b), "vision_model.post_layernorm.bias", 0, 1, {DIM_D}},
};

static const blipc_wspec vit_layer[] = {
    {VL(ln1_w), LP "layer_norm1.weight", 0, 1, {DIM_D}},
    {VL(ln1_b), LP "layer_norm1.bias", 0, 1, {DIM_D}},
    {VL(qkv_w), LP "self_attn.qkv.weight", 0, 2, {DIM_3D, DIM_D}},
    {VL(proj_w), LP "self_attn.projection.weight", 0, 2, {DIM_D, DIM_D}},
    {VL(proj_b), LP "self_attn.projection.bias", 0, 1, {DIM_D}},
    {VL(ln2_w), LP "layer_norm2.weight", 0, 1, {DIM_D}},
    {VL(ln2_b), LP "layer_norm2.bias", 0, 1, {DIM_D}},
    {VL(fc1_w), LP "mlp.fc1.weight", 0, 2, {DIM_F, DIM_D}},
    {VL(fc1_b), LP "mlp.fc1.bias", 0, 1, {DIM_F}},
    {VL(fc2_w), LP "mlp.fc2.weight", 0, 2, {DIM_D, DIM_F}},
    {VL(fc2_b), LP "mlp.fc2.bias", 0, 1, {DIM_D}},
};
static const blipc_wspec vit_qkv_bias = {VL(qkv_b), LP "self_attn.qkv.bias", 0, 1, {DIM_3D}};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

blipc_status blipc__vit_load(blipc_vit *m, const blipc_blip2_vision_config *cfg, blipc_safetensors *st,
                             blipc_err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int P = cfg->patch_size, D = cfg->hidden_size;
    m->grid = cfg->image_size / P;
    m->n_patches = m->grid * m->grid;
    m->n_tokens = m->n_patches + 1;
    m->patch_dim = cfg->num_channels * P * P;
    int64_t dims[DIM_COUNT];
    dims[DIM_D] = D;
    dims[DIM_3D] = 3 * (int64_t)D;
    dims[DIM_F] = cfg->intermediate_size;
    dims[DIM_1] = 1;
    dims[DIM_T] = m->n_tokens;
    dims[DIM_C] = cfg->num_channels;
    dims[DIM_P] = P;
    BLIPC_TRY(blipc__load_table(st, m, vit_top, N_OF(vit_top), dims, 0, BLIPC_WMODE_F32, e));
    m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return blipc__errf(e, BLIPC_ERR_NOMEM, "vision tower: out of memory");
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        blipc_status rc = blipc__load_table(st, &m->layers[l], vit_layer, N_OF(vit_layer), dims, l, BLIPC_WMODE_F32, e);
        if (!rc && cfg->qkv_bias) rc = blipc__load_table(st, &m->layers[l], &vit_qkv_bias, 1, dims, l, BLIPC_WMODE_F32, e);
        if (rc) {
            blipc__vit_free(m);
            return rc;
        }
    }
    return BLIPC_OK;
}

void blipc__vit_free(blipc_vit *m) {
    if (!m) return;
    free(m->layers);
    m->layers = NULL;
}

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

size_t blipc__vit_scratch_floats(const blipc_vit *m, int B) {
    size_t BT = (size_t)B * m->n_tokens, D = (size_t)m->cfg.hidden_size, F = (size_t)m->cfg.intermediate_size;
    size_t im2col = (size_t)B * m->n_patches * m->patch_dim;
    size_t big = maxz(3 * D, F) * BT;
    size_t T = (size_t)m->n_tokens;
    /* h + tmp + big + scores, and im2col overlaps big (used before it) */
    return 2 * BT * D + maxz(big, im2col) + T * T + 64;
}

/* im2col of one CHW image: rows = patches (row-major grid), cols = (c, ky, kx). */
static void im2col(const blipc_vit *m, const float *img, float *cols) {
    int P = m->cfg.patch_size, S = m->cfg.image_size, G = m->grid, C = m->cfg.num_channels;
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            float *row = cols + (size_t)(gy * G + gx) * m->patch_dim;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < P; ky++) {
                    const float *src = img + ((size_t)c * S + (size_t)(gy * P + ky)) * S + (size_t)gx * P;
                    memcpy(row + (size_t)(c * P + ky) * P, src, (size_t)P * sizeof(float));
                }
        }
}

void blipc__vit_forward(const blipc_vit *m, const float *pixels, int B, float *out, float *scratch) {
    const int D = m->cfg.hidden_size, F = m->cfg.intermediate_size, H = m->cfg.num_attention_heads;
    const int T = m->n_tokens, NP = m->n_patches, dh = D / H, BT = B * T;
    const float eps = m->cfg.layer_norm_eps, scale = 1.0f / sqrtf((float)dh);
    const size_t img_floats = (size_t)m->cfg.num_channels * m->cfg.image_size * m->cfg.image_size;
    float *x = out; /* the residual stream lives in the output buffer */
    float *h = scratch;                          /* [BT, D] */
    float *tmp = h + (size_t)BT * D;             /* [BT, D] */
    float *big = tmp + (size_t)BT * D;           /* [BT, max(3D, F)] or im2col */
    size_t big_n = maxz(maxz((size_t)3 * D, (size_t)F) * BT, (size_t)B * NP * m->patch_dim);
    float *scores = big + big_n;                 /* [T, T] */

    /* embeddings */
    for (int b = 0; b < B; b++) im2col(m, pixels + (size_t)b * img_floats, big + (size_t)b * NP * m->patch_dim);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        memcpy(xb, m->class_emb, (size_t)D * sizeof(float));
        blipc__linear(big + (size_t)b * NP * m->patch_dim, NP, m->patch_dim, 0, m->patch_w, m->patch_b, D, xb + D, D);
        blipc__add(xb, m->pos_emb, (size_t)T * D);
    }

    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const blipc_vit_layer *L = &m->layers[l];
        /* x += proj(attn(LN1(x))) */
        blipc__layernorm(h, x, L->ln1_w, L->ln1_b, BT, D, eps);
        blipc__linear(h, BT, D, 0, L->qkv_w, L->qkv_b, 3 * D, big, 0);
        for (int b = 0; b < B; b++) {
            const float *q = big + (size_t)b * T * 3 * D;
            blipc__attention(q, 3 * D, q + D, 3 * D, q + 2 * D, 3 * D, h + (size_t)b * T * D, D, T, T, H, dh, scale,
                             NULL, -1, scores);
        }
        blipc__linear(h, BT, D, 0, L->proj_w, L->proj_b, D, tmp, 0);
        blipc__add(x, tmp, (size_t)BT * D);
        /* x += fc2(gelu(fc1(LN2(x)))) */
        blipc__layernorm(h, x, L->ln2_w, L->ln2_b, BT, D, eps);
        blipc__linear(h, BT, D, 0, L->fc1_w, L->fc1_b, F, big, 0);
        blipc__gelu_erf(big, (size_t)BT * F);
        blipc__linear(big, BT, F, 0, L->fc2_w, L->fc2_b, D, tmp, 0);
        blipc__add(x, tmp, (size_t)BT * D);
    }
    blipc__layernorm(x, x, m->post_ln_w, m->post_ln_b, BT, D, eps);
}
