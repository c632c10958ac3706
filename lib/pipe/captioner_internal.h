/* captioner_internal.h — internal entry points of the BLIP-2 captioner for the
 * benchmark and tests: open from an already-open config + weights (e.g. random
 * real-shape weights built in memory with blipc__st_open_memory), caption from
 * token ids or pixel tensors, and per-stage timings of the last call. */
#ifndef BLIPC_PIPE_CAPTIONER_INTERNAL_H
#define BLIPC_PIPE_CAPTIONER_INTERNAL_H

#include "blipc.h"
#include "err.h"
#include "hfconfig.h"
#include "preprocess.h"
#include "safetensors.h"

/* Wall-clock milliseconds of the stages of the last caption_* call (summed
 * over its batches). */
typedef struct blipc_caption_timings {
    double preprocess_ms; /* decode excluded: resize + normalise */
    double vision_ms;
    double qformer_ms;    /* Q-Former + language_projection */
    double prefill_ms;
    double decode_ms;     /* every step after the prefill */
    int decode_steps;     /* number of batched decoder steps */
    int n_images;         /* images that went through the model */
    size_t kv_bytes;      /* KV cache + decoder scratch held by the session */
} blipc_caption_timings;

/* Open from parts. Takes ownership of st and tok (both freed by
 * blipc_captioner_free, also on failure). tok may be NULL: then prompts must be
 * given as ids (blipc__captioner_caption_ids) and results carry no text.
 * pp NULL = BLIP defaults; gen_defaults NULL = HF defaults with eos from cfg. */
blipc_status blipc__captioner_open_from(const blipc_blip2_config *cfg, blipc_safetensors *st, blipc_tokenizer *tok,
                                        const blipc_preproc_config *pp, const blipc_captioner_params *p,
                                        blipc_captioner **out, blipc_err *e);

/* Caption already-normalised pixel tensors pixels[n, 3, S, S] with a prompt
 * given as ids (BOS first; NULL/0 = just BOS). */
blipc_status blipc__captioner_caption_pixels(blipc_captioner *c, const float *pixels, size_t n,
                                             const int32_t *prompt_ids, size_t n_ids, const blipc_gen_params *gp);

const blipc_caption_timings *blipc__captioner_timings(const blipc_captioner *c);

#endif
