/* resize.h — Pillow-exact 8-bit bicubic resize (Image.resize(size, BICUBIC,
 * reducing_gap=None), Pillow 9.4 .. current): separable, horizontal pass first
 * into a uint8 intermediate, 22-bit fixed-point weights, window truncated and
 * renormalised at the edges, a pass skipped when its dimension is unchanged. */
#ifndef BLIPC_IO_RESIZE_H
#define BLIPC_IO_RESIZE_H

#include "err.h"
#include <stddef.h>
#include <stdint.h>

/* Fixed-point weights for one pass from `in` to `out` samples. Output i reads
 * input samples start[i] .. start[i] + count[i] - 1 with weights
 * k[off[i] .. off[i] + count[i] - 1] (sum ~ 1 << 22). */
typedef struct blipc_resize_coeffs {
    int in, out;
    int *start;   /* [out] */
    int *count;   /* [out] */
    size_t *off;  /* [out] */
    int32_t *k;   /* [sum of count] */
} blipc_resize_coeffs;

#define BLIPC_RESIZE_PRECISION_BITS 22

/* Compute the weights once per (in, out) pair; free with blipc__resize_coeffs_free. */
blipc_status blipc__resize_coeffs_init(blipc_resize_coeffs *c, int in, int out, blipc_err *e);
void blipc__resize_coeffs_free(blipc_resize_coeffs *c);

/* Resize an HWC RGB image (src_stride bytes per row; 0 = sw * 3) to dw x dh into
 * dst (dw * dh * 3 bytes, tightly packed). Same size = plain copy. */
blipc_status blipc__resize_bicubic_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, uint8_t *dst, int dw,
                                       int dh, blipc_err *e);

#endif
