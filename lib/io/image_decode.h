/* image_decode.h — internal to the image decoder (lib/io/image*.c): the
 * per-format decoders blipc__image_decode() dispatches to and the helpers they
 * share. Each decoder checks the pixel limit from its header (via
 * blipc__image_check_dims) before allocating pixels, prefixes messages with
 * `name`, and on success stores a new RGB image in *out. */
#ifndef BLIPC_IO_IMAGE_DECODE_H
#define BLIPC_IO_IMAGE_DECODE_H

#include "image.h"

/* 16/32-bit integers, little-endian (le != 0) or big-endian */
static inline uint32_t blipc__rd16(const uint8_t *p, int le) {
    return le ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)(p[0] << 8 | p[1]);
}
static inline uint32_t blipc__rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A w x h image of format fmt ("JPEG", ...) is positive, within `limit` pixels
 * and addressable; otherwise a message naming the file. */
blipc_status blipc__image_check_dims(const char *name, const char *fmt, uint64_t w, uint64_t h, uint64_t limit,
                                     blipc_err *e);

/* image_jpeg.c; *orientation is set from the EXIF APP1 when want_exif */
blipc_status blipc__image_decode_jpeg(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                      int want_exif, blipc_image **out, int *orientation, blipc_err *e);
/* image_png.c; *orientation as Pillow's getexif() finds it when want_exif */
blipc_status blipc__image_decode_png(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                     int want_exif, blipc_image **out, int *orientation, blipc_err *e);
/* image_gif.c: the first frame */
blipc_status blipc__image_decode_gif(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                     blipc_image **out, blipc_err *e);
/* image_bmp.c: stb_image, with Pillow's truncation check (fmt "BMP") */
blipc_status blipc__image_decode_stb(const uint8_t *data, size_t size, const char *name, const char *fmt,
                                     uint64_t limit, blipc_image **out, blipc_err *e);

#endif
