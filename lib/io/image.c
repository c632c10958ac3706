/* image.c — decode JPEG/PNG/BMP/GIF into 8-bit RGB the way Pillow's
 * Image.open(f).convert("RGB") does, plus the public blipc_image_* API.
 * See image.h for the per-format rules. This file: the pixel limit, format
 * sniffing and dispatch, EXIF orientation applied after decoding, the public
 * API. Decoders: image_jpeg.c, image_png.c, image_gif.c, image_bmp.c (stb);
 * EXIF parsing and orientation: image_exif.c. */
#include "image_decode.h"

#include "fileutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

static uint64_t effective_limit(const blipc_image_params *p) {
    return (p && p->max_pixels) ? p->max_pixels : BLIPC_IMAGE_DEFAULT_MAX_PIXELS;
}

blipc_status blipc__image_check_dims(const char *name, const char *fmt, uint64_t w, uint64_t h, uint64_t limit,
                                     blipc_err *e) {
    if (w == 0 || h == 0)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: %llux%llu image: %s width and height must be positive", name,
                           (unsigned long long)w, (unsigned long long)h, fmt);
    if (w > INT_MAX || h > INT_MAX || w * h > limit)
        return blipc__errf(e, BLIPC_ERR_LIMIT,
                           "%s: %s image is %llux%llu = %llu pixels, over the limit of %llu pixels "
                           "(possible decompression bomb; raise max_pixels to allow it)",
                           name, fmt, (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                           (unsigned long long)limit);
    if (w * h > SIZE_MAX / 8)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: %llux%llu image is too large for this machine", name,
                           (unsigned long long)w, (unsigned long long)h);
    return BLIPC_OK;
}

blipc_status blipc__image_new(int width, int height, blipc_image **out, blipc_err *e) {
    *out = NULL;
    if (width <= 0 || height <= 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "image size %dx%d: width and height must be positive", width,
                           height);
    size_t n = (size_t)width * (size_t)height;
    if (n > SIZE_MAX / 3) return blipc__errf(e, BLIPC_ERR_LIMIT, "image size %dx%d too large", width, height);
    blipc_image *img = malloc(sizeof *img);
    uint8_t *px = calloc(n, 3);
    if (!img || !px) {
        free(img);
        free(px);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot allocate a %dx%d RGB image (%zu bytes)", width, height, n * 3);
    }
    img->width = width;
    img->height = height;
    img->rgb = px;
    *out = img;
    return BLIPC_OK;
}

/* ------------------------------------------------------------------ dispatch */

blipc_status blipc__image_decode(const void *vdata, size_t size, const char *name, const blipc_image_params *p,
                                 blipc_image **out, blipc_err *e) {
    if (!out) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "image decode: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!vdata && size) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "%s: data is NULL", name);
    const uint8_t *d = vdata;
    if (size == 0) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: empty file (0 bytes): not an image", name);
    const uint64_t limit = effective_limit(p);
    const int want_exif = p && p->exif_transpose;
    int orientation = 0;
    blipc_status st;
    if (size >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        st = blipc__image_decode_jpeg(d, size, name, limit, want_exif, out, &orientation, e);
    } else if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) {
        st = blipc__image_decode_png(d, size, name, limit, want_exif, out, &orientation, e);
    } else if (size >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) {
        st = blipc__image_decode_gif(d, size, name, limit, out, e);
    } else if (size >= 2 && d[0] == 'B' && d[1] == 'M') {
        st = blipc__image_decode_stb(d, size, name, "BMP", limit, out, e);
    } else if (size >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) {
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: WebP images are not supported (use JPEG/PNG/BMP/GIF)", name);
    } else if (size >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) {
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: TIFF images are not supported (use JPEG/PNG/BMP/GIF)", name);
    } else {
        char hex[64] = "", txt[16] = "";
        size_t k = size < 8 ? size : 8, pos = 0;
        for (size_t i = 0; i < k; i++) {
            pos += (size_t)snprintf(hex + pos, sizeof hex - pos, "%s%02x", i ? " " : "", d[i]);
            txt[i] = (d[i] >= 0x20 && d[i] < 0x7f) ? (char)d[i] : '.';
        }
        txt[k] = 0;
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not a JPEG/PNG/BMP/GIF image (starts with %s \"%s\")", name, hex,
                           txt);
    }
    if (st) return st;
    if (want_exif && orientation > 1) {
        st = blipc__image_apply_orientation(*out, orientation, e);
        if (st) {
            blipc__err_prefix(e, "%s", name);
            blipc_image_free(*out);
            *out = NULL;
            return st;
        }
    }
    return BLIPC_OK;
}

blipc_status blipc__image_load_file(const char *path, const blipc_image_params *p, blipc_image **out,
                                    blipc_err *e) {
    if (!out) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "image load: out is NULL");
    *out = NULL;
    if (!path) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "image load: path is NULL");
    char *data;
    size_t size;
    BLIPC_TRY(blipc__read_file(path, (size_t)1 << 31, &data, &size, e));
    blipc_status st = blipc__image_decode(data, size, path, p, out, e);
    free(data);
    return st;
}

/* ------------------------------------------------------------------ public API */

void blipc_image_default_params(blipc_image_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->max_pixels = BLIPC_IMAGE_DEFAULT_MAX_PIXELS;
    p->exif_transpose = 0;
}

blipc_status blipc_image_load_file(const char *path, const blipc_image_params *p, blipc_image **out, char *errbuf,
                                   size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st = blipc__image_load_file(path, p, out, &e);
    blipc__err_copy(&e, errbuf, errbuf_size);
    return st;
}

blipc_status blipc_image_load_memory(const void *data, size_t size, const blipc_image_params *p, blipc_image **out,
                                     char *errbuf, size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st = blipc__image_decode(data, size, "<memory>", p, out, &e);
    blipc__err_copy(&e, errbuf, errbuf_size);
    return st;
}

blipc_status blipc_image_from_rgb(const uint8_t *rgb, int width, int height, size_t stride, blipc_image **out,
                                  char *errbuf, size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st = BLIPC_OK;
    if (!out) {
        st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_image_from_rgb: out is NULL");
    } else {
        *out = NULL;
        if (!rgb) st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_image_from_rgb: rgb is NULL");
        else if (width <= 0 || height <= 0)
            st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_image_from_rgb: %dx%d image: width and height must be positive",
                             width, height);
        else if (stride != 0 && stride < (size_t)width * 3)
            st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_image_from_rgb: stride %zu < width*3 = %zu", stride,
                             (size_t)width * 3);
        else {
            blipc_image *img;
            st = blipc__image_new(width, height, &img, &e);
            if (st == BLIPC_OK) {
                const size_t row = (size_t)width * 3, s = stride ? stride : row;
                for (int y = 0; y < height; y++) memcpy(img->rgb + (size_t)y * row, rgb + (size_t)y * s, row);
                *out = img;
            }
        }
    }
    blipc__err_copy(&e, errbuf, errbuf_size);
    return st;
}

void blipc_image_free(blipc_image *img) {
    if (!img) return;
    free(img->rgb);
    free(img);
}

int blipc_image_width(const blipc_image *img) { return img ? img->width : 0; }
int blipc_image_height(const blipc_image *img) { return img ? img->height : 0; }
const uint8_t *blipc_image_rgb(const blipc_image *img) { return img ? img->rgb : NULL; }
