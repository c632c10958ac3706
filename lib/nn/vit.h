/* vit.h — BLIP-2 vision tower (HF Blip2VisionModel, EVA ViT-g as ported):
 * patch conv as im2col + matmul, class token, position embeddings, pre-LN
 * blocks with the fused qkv weight/bias, exact-erf GELU MLP, post_layernorm
 * over all tokens. Batched over images; fp32 compute. */
#ifndef BLIPC_NN_VIT_H
#define BLIPC_NN_VIT_H

#include "err.h"
#include "hfconfig.h"
#include "safetensors.h"

typedef struct blipc_vit_layer {
    const float *ln1_w, *ln1_b;   /* [D] layer_norm1 */
    const float *qkv_w;           /* [3D, D] fused: rows 0..D-1 = q, D..2D-1 = k, 2D..3D-1 = v */
    const float *qkv_b;           /* [3D] (q_bias, 0, v_bias) as stored; NULL when qkv_bias is false */
    const float *proj_w, *proj_b; /* [D, D], [D] self_attn.projection */
    const float *ln2_w, *ln2_b;   /* [D] layer_norm2 */
    const float *fc1_w, *fc1_b;   /* [F, D], [F] mlp.fc1 */
    const float *fc2_w, *fc2_b;   /* [D, F], [D] mlp.fc2 */
} blipc_vit_layer;

typedef struct blipc_vit {
    blipc_blip2_vision_config cfg;
    int grid;                 /* image_size / patch_size (16) */
    int n_patches;            /* grid^2 (256) */
    int n_tokens;             /* n_patches + 1 (257) */
    int patch_dim;            /* 3 * P * P (588) */
    const float *patch_w;     /* [D, 3, P, P] = [D, patch_dim] embeddings.patch_embedding.weight */
    const float *patch_b;     /* [D] */
    const float *class_emb;   /* [1, 1, D] embeddings.class_embedding */
    const float *pos_emb;     /* [1, T, D] embeddings.position_embedding */
    const float *post_ln_w;   /* [D] post_layernorm */
    const float *post_ln_b;   /* [D] */
    blipc_vit_layer *layers;  /* [num_hidden_layers], malloc'd */
} blipc_vit;

/* Bind the weights (pointers into st, which must outlive the model). */
blipc_status blipc__vit_load(blipc_vit *m, const blipc_blip2_vision_config *cfg, blipc_safetensors *st, blipc_err *e);
void blipc__vit_free(blipc_vit *m);

/* Floats of scratch blipc__vit_forward needs for B images. */
size_t blipc__vit_scratch_floats(const blipc_vit *m, int B);

/* pixels [B, 3, S, S] -> out [B, T, D] (post-layernorm of every token).
 * scratch: blipc__vit_scratch_floats(m, B) floats. */
void blipc__vit_forward(const blipc_vit *m, const float *pixels, int B, float *out, float *scratch);

#endif
