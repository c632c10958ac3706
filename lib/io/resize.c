/* resize.c — Pillow's ImagingResample for 8-bit RGB with the BICUBIC filter,
 * reimplemented from the description in shared/fixtures/images/README.md. */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

void blipc__resize_coeffs_free(blipc_resize_coeffs *c) {
    if (!c) return;
    free(c->start);
    free(c->count);
    free(c->off);
    free(c->k);
    memset(c, 0, sizeof *c);
}

blipc_status blipc__resize_coeffs_init(blipc_resize_coeffs *c, int in, int out, blipc_err *e) {
    memset(c, 0, sizeof *c);
    if (in <= 0 || out <= 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "resize %d -> %d: sizes must be positive", in, out);
    const double scale = (double)in / (double)out;
    const double fs = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * fs; /* bicubic support 2, stretched when downscaling */
    const double inv = 1.0 / fs;
    /* largest window: xmax - xmin <= 2 * support + 1, and never more than `in` */
    const double kmax_d = ceil(support) * 2.0 + 1.0;
    const size_t per = kmax_d < (double)in ? (size_t)kmax_d : (size_t)in;
    c->in = in;
    c->out = out;
    c->start = malloc(sizeof *c->start * (size_t)out);
    c->count = malloc(sizeof *c->count * (size_t)out);
    c->off = malloc(sizeof *c->off * (size_t)out);
    double *w = malloc(sizeof *w * per);
    size_t total = per; /* taps of all outputs <= out * per */
    int nomem = !c->start || !c->count || !c->off || !w;
    if (!nomem) {
        if (per > SIZE_MAX / sizeof(int32_t) / (size_t)out) nomem = 1;
        else total = per * (size_t)out;
    }
    if (!nomem) c->k = malloc(sizeof *c->k * total);
    if (nomem || !c->k) {
        free(w);
        blipc__resize_coeffs_free(c);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "resize %d -> %d: cannot allocate weights", in, out);
    }
    size_t off = 0;
    for (int i = 0; i < out; i++) {
        const double center = ((double)i + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        int n = xmax - xmin;
        if (n < 0) n = 0;
        if ((size_t)n > per) n = (int)per; /* cannot happen; keeps writes in bounds */
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            w[j] = bicubic(((double)(j + xmin) - center + 0.5) * inv);
            sum += w[j];
        }
        if (sum != 0.0)
            for (int j = 0; j < n; j++) w[j] /= sum;
        for (int j = 0; j < n; j++) {
            const double v = w[j] * (double)(1 << BLIPC_RESIZE_PRECISION_BITS);
            c->k[off + (size_t)j] = (int32_t)(w[j] < 0.0 ? v - 0.5 : v + 0.5);
        }
        c->start[i] = xmin;
        c->count[i] = n;
        c->off[i] = off;
        off += (size_t)n;
    }
    free(w);
    return BLIPC_OK;
}

static inline uint8_t clip_fixed(int32_t acc) {
    acc >>= BLIPC_RESIZE_PRECISION_BITS;
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* rows [y0, y1) of src, horizontally resampled into dst rows 0.. */
static void pass_h(const blipc_resize_coeffs *c, const uint8_t *src, size_t sstride, int y0, int y1, uint8_t *dst) {
    const int dw = c->out;
    for (int y = y0; y < y1; y++) {
        const uint8_t *s = src + (size_t)y * sstride;
        uint8_t *d = dst + (size_t)(y - y0) * dw * 3;
        for (int x = 0; x < dw; x++) {
            const int32_t *k = c->k + c->off[x];
            const uint8_t *p = s + (size_t)c->start[x] * 3;
            int32_t r = 1 << (BLIPC_RESIZE_PRECISION_BITS - 1), g = r, b = r;
            for (int j = 0, n = c->count[x]; j < n; j++, p += 3) {
                r += p[0] * k[j];
                g += p[1] * k[j];
                b += p[2] * k[j];
            }
            d[3 * x] = clip_fixed(r);
            d[3 * x + 1] = clip_fixed(g);
            d[3 * x + 2] = clip_fixed(b);
        }
    }
}

/* vertical pass; src row 0 corresponds to input row `base` of the coefficients */
static void pass_v(const blipc_resize_coeffs *c, const uint8_t *src, size_t sstride, int base, size_t rowlen,
                   uint8_t *dst, int32_t *acc) {
    for (int y = 0; y < c->out; y++) {
        for (size_t i = 0; i < rowlen; i++) acc[i] = 1 << (BLIPC_RESIZE_PRECISION_BITS - 1);
        const int32_t *k = c->k + c->off[y];
        const uint8_t *s = src + (size_t)(c->start[y] - base) * sstride;
        for (int j = 0, n = c->count[y]; j < n; j++, s += sstride) {
            const int32_t kj = k[j];
            for (size_t i = 0; i < rowlen; i++) acc[i] += s[i] * kj;
        }
        uint8_t *d = dst + (size_t)y * rowlen;
        for (size_t i = 0; i < rowlen; i++) d[i] = clip_fixed(acc[i]);
    }
}

blipc_status blipc__resize_bicubic_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, uint8_t *dst, int dw,
                                       int dh, blipc_err *e) {
    if (!src || !dst || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "resize %dx%d -> %dx%d: bad arguments", sw, sh, dw, dh);
    const size_t srow = (size_t)sw * 3, drow = (size_t)dw * 3;
    if (src_stride == 0) src_stride = srow;
    if (src_stride < srow) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "resize: stride %zu < %zu", src_stride, srow);
    const int need_h = sw != dw, need_v = sh != dh;
    if (!need_h && !need_v) {
        for (int y = 0; y < sh; y++) memcpy(dst + (size_t)y * drow, src + (size_t)y * src_stride, srow);
        return BLIPC_OK;
    }
    blipc_resize_coeffs ch = {0}, cv = {0};
    blipc_status st = BLIPC_OK;
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    if (need_h) st = blipc__resize_coeffs_init(&ch, sw, dw, e);
    if (!st && need_v) st = blipc__resize_coeffs_init(&cv, sh, dh, e);
    if (st) goto done;
    if (need_h && !need_v) {
        pass_h(&ch, src, src_stride, 0, sh, dst);
        goto done;
    }
    acc = malloc(sizeof *acc * drow);
    if (!acc) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", sw, sh, dw, dh);
        goto done;
    }
    if (!need_h) {
        pass_v(&cv, src, src_stride, 0, drow, dst, acc);
        goto done;
    }
    /* Both passes: only the input rows the vertical pass reads are resampled
     * horizontally (as Pillow does; the result is the same either way). */
    const int y0 = cv.start[0];
    const int y1 = cv.start[dh - 1] + cv.count[dh - 1];
    tmp = malloc(drow * (size_t)(y1 - y0 > 0 ? y1 - y0 : 1));
    if (!tmp) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", sw, sh, dw, dh);
        goto done;
    }
    pass_h(&ch, src, src_stride, y0, y1, tmp);
    pass_v(&cv, tmp, drow, y0, drow, dst, acc);
done:
    free(tmp);
    free(acc);
    blipc__resize_coeffs_free(&ch);
    blipc__resize_coeffs_free(&cv);
    return st;
}
