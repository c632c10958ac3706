/* image.h — image decoding to 8-bit RGB exactly as Pillow's Image.open(...).convert("RGB").
 *
 * JPEG: libjpeg-turbo at default settings (islow IDCT, fancy upsampling), gray and
 *       CMYK (Adobe-inverted, Pillow's CMYK->RGB formula) converted like Pillow.
 * PNG:  libpng; palette -> colours (tRNS ignored), alpha dropped (not composited),
 *       1/2/4-bit gray scaled to 0..255, 16-bit gray clamped to 255 (Pillow mode I),
 *       16-bit RGB(A)/LA keep the high byte.
 * BMP, GIF (first frame): stb_image.
 * EXIF orientation (JPEG APP1, PNG eXIf) is applied only when asked
 * (blipc_image_params.exif_transpose), as PIL.ImageOps.exif_transpose does.
 * The pixel limit is checked from the header before any pixel buffer is allocated. */
#ifndef BLIPC_IO_IMAGE_H
#define BLIPC_IO_IMAGE_H

#include "err.h"
#include <stddef.h>
#include <stdint.h>

#define BLIPC_IMAGE_DEFAULT_MAX_PIXELS 178956970ull

struct blipc_image {
    int width;
    int height;
    uint8_t *rgb; /* height * width * 3, HWC, owned */
};

/* Decode `size` bytes; `name` (file name or "<memory>") prefixes every message.
 * p may be NULL (defaults). */
blipc_status blipc__image_decode(const void *data, size_t size, const char *name, const blipc_image_params *p,
                                 blipc_image **out, blipc_err *e);
blipc_status blipc__image_load_file(const char *path, const blipc_image_params *p, blipc_image **out,
                                    blipc_err *e);
/* A new zero-filled width x height image. */
blipc_status blipc__image_new(int width, int height, blipc_image **out, blipc_err *e);

/* EXIF orientation (1..8) found in a TIFF/EXIF block (with or without the
 * "Exif\0\0" prefix); 0 when absent or malformed. Bounded, never reads past size. */
int blipc__exif_orientation(const uint8_t *data, size_t size);
/* Apply an EXIF orientation in place (as ImageOps.exif_transpose); 1 or an unknown
 * value leaves the image unchanged. */
blipc_status blipc__image_apply_orientation(blipc_image *img, int orientation, blipc_err *e);

#endif
