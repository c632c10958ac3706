/* preprocess.h — the BLIP image processor (transformers' BlipImageProcessor, PIL
 * backend): RGB -> Pillow bicubic resize -> rescale -> normalise -> CHW float32.
 * Settings come from the checkpoint's preprocessor_config.json. */
#ifndef BLIPC_IO_PREPROCESS_H
#define BLIPC_IO_PREPROCESS_H

#include "err.h"
#include "image.h"
#include <stdint.h>

typedef struct blipc_preproc_config {
    int do_convert_rgb;     /* images are always RGB here; kept for completeness */
    int do_resize;
    int height, width;      /* size.height / size.width */
    int resample;           /* PIL filter id; only 3 (BICUBIC) is supported */
    int do_rescale;
    double rescale_factor;  /* x = (float)((double)v * rescale_factor) */
    int do_normalize;
    float mean[3];          /* image_mean */
    float std[3];           /* image_std */
} blipc_preproc_config;

/* BLIP-2 defaults: 224x224 bicubic, 1/255, OpenAI CLIP mean/std. */
void blipc__preproc_config_default(blipc_preproc_config *cfg);

/* Read preprocessor_config.json (`path` is the file or a model directory that
 * holds it). Fields that are absent keep the BLIP defaults; fields of the wrong
 * type, or values this library does not implement, are errors naming the field. */
blipc_status blipc__preproc_config_load(const char *path, blipc_preproc_config *cfg, blipc_err *e);
/* Same from JSON text; `name` is used in messages. */
blipc_status blipc__preproc_config_parse(const char *json, size_t len, const char *name, blipc_preproc_config *cfg,
                                         blipc_err *e);

/* lut[c][v]: the normalised value of byte v in channel c (exactly as the
 * float32 pipeline computes it: one float32 subtraction and one division). */
void blipc__preproc_lut(const blipc_preproc_config *cfg, float lut[3][256]);

/* img -> out_chw [3][cfg->height][cfg->width]. resized_rgb_opt (may be NULL)
 * receives the resized HWC RGB bytes (height * width * 3). With do_resize = 0 the
 * image must already be height x width. */
blipc_status blipc__preprocess_image(const blipc_image *img, const blipc_preproc_config *cfg, float *out_chw,
                                     uint8_t *resized_rgb_opt, blipc_err *e);

#endif
