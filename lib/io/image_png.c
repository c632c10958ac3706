/* image_png.c — PNG via libpng to RGB as Pillow converts it (palette, gray
 * and 16-bit rules in image.h), Pillow's tolerance of a missing tail, and the
 * orientation Pillow's getexif() finds (eXIf, raw profile text, XMP). */
#include "image_decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct png_ctx {
    jmp_buf jb;
    char msg[256];
    const uint8_t *data;
    size_t size, pos;
    int phase; /* 2 = image complete: later errors are ignored */
    /* image layout (kept here, not in locals, so it survives a longjmp) */
    png_uint_32 W, H;
    int color_type, bd, ch, direct;
    /* rows libpng has decoded (counted by a user transform, which runs before
     * the row is stored) vs. rows the image has: once equal, a missing tail
     * (zlib checksum, IDAT CRC, IEND) does not matter, as with Pillow */
    uint64_t rows_seen, rows_expected;
    png_structp png;
    png_infop info;
    uint8_t *raw;
    png_bytep *rows;
    blipc_image *img;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep buf, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (c->size - c->pos < len) png_error(png, "truncated PNG data");
    memcpy(buf, c->data + c->pos, len);
    c->pos += len;
}

static uint32_t be32(const uint8_t *p) { return blipc__rd32(p, 0); }

static void png_count_row(png_structp png, png_row_infop info, png_bytep data) {
    (void)info;
    (void)data;
    png_ctx *c = png_get_user_transform_ptr(png);
    c->rows_seen++;
}

/* Raw libpng rows -> RGB as Pillow's convert("RGB") (see image.h). */
static void png_convert(png_ctx *c) {
    const png_uint_32 W = c->W, H = c->H;
    const int color_type = c->color_type, bd = c->bd, ch = c->ch;
    png_colorp pal = NULL;
    int npal = 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_get_PLTE(c->png, c->info, &pal, &npal);
    uint8_t *o = c->img->rgb;
    for (png_uint_32 y = 0; y < H; y++) {
        const uint8_t *r = c->rows[y];
        for (png_uint_32 x = 0; x < W; x++, o += 3) {
            if (color_type == PNG_COLOR_TYPE_PALETTE) {
                int i = r[x];
                if (i < npal) {
                    o[0] = pal[i].red;
                    o[1] = pal[i].green;
                    o[2] = pal[i].blue;
                } else { /* Pillow's palette starts as a gray ramp */
                    o[0] = o[1] = o[2] = (uint8_t)i;
                }
            } else if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
                int v;
                if (bd == 8) v = r[(size_t)x * ch];
                else if (color_type == PNG_COLOR_TYPE_GRAY) { /* mode I: clamp, not scale */
                    int s = r[(size_t)x * 2] << 8 | r[(size_t)x * 2 + 1];
                    v = s > 255 ? 255 : s;
                } else {
                    v = r[(size_t)x * 4]; /* LA;16B: high byte */
                }
                o[0] = o[1] = o[2] = (uint8_t)v;
            } else { /* RGB / RGBA, 8 or 16 bit: (high) byte of each sample, alpha dropped */
                const int step = bd / 8;
                const uint8_t *s = r + (size_t)x * ch * step;
                o[0] = s[0];
                o[1] = s[step];
                o[2] = s[2 * step];
            }
        }
    }
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Orientation of a PNG as Pillow's getexif() finds it: the eXIf chunk, else
 * the ImageMagick-style "Raw profile type exif" text (hex after 3 lines), and
 * when that has no orientation, "tiff:Orientation" in the XMP text. */
static int png_orientation(png_structp png, png_infop info) {
    png_bytep ex = NULL;
    png_uint_32 nex = 0;
    png_textp txt = NULL;
    int ntxt = 0, o = 0;
    png_get_text(png, info, &txt, &ntxt);
    if (png_get_eXIf_1(png, info, &nex, &ex) && ex) {
        o = blipc__exif_orientation(ex, nex);
    } else {
        for (int i = 0; i < ntxt; i++) {
            if (!txt[i].key || !txt[i].text || strcmp(txt[i].key, "Raw profile type exif") != 0) continue;
            const char *t = txt[i].text;
            for (int nl = 0; nl < 3 && t; nl++) { /* skip "\nexif\n   <len>\n" */
                t = strchr(t, '\n');
                if (t) t++;
            }
            if (!t) break;
            size_t len = strlen(t);
            uint8_t *buf = malloc(len / 2 + 1);
            if (!buf) break;
            size_t nb = 0;
            int hi = -1, bad = 0;
            for (const char *q = t; *q && !bad; q++) {
                if (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t') {
                    if (hi >= 0 && *q != '\n') bad = 1; /* a space inside a byte */
                    continue;
                }
                int v = hexval((unsigned char)*q);
                if (v < 0) bad = 1;
                else if (hi < 0) hi = v;
                else {
                    buf[nb++] = (uint8_t)(hi << 4 | v);
                    hi = -1;
                }
            }
            if (!bad && hi < 0) o = blipc__exif_orientation(buf, nb);
            free(buf);
            break;
        }
    }
    if (o == 0) {
        for (int i = 0; i < ntxt; i++) {
            if (!txt[i].key || !txt[i].text || strcmp(txt[i].key, "XML:com.adobe.xmp") != 0) continue;
            for (const char *q = strstr(txt[i].text, "tiff:Orientation"); q; q = strstr(q + 1, "tiff:Orientation")) {
                const char *v = q + 16;
                if (v[0] == '=' && v[1] == '"') v += 2;
                else if (v[0] == '>') v += 1;
                else continue;
                if (*v >= '0' && *v <= '9') {
                    o = *v - '0';
                    break;
                }
            }
            break;
        }
    }
    return (o >= 1 && o <= 8) ? o : 0;
}

/* One decoding attempt. bytewise = feed the compressed data to zlib one byte
 * at a time (slow; used only to re-check a truncated file). *truncated is set
 * when the data ran out before the image was complete. */
static blipc_status decode_png_once(const uint8_t *data, size_t size, const char *name, int want_exif, int bytewise,
                                    blipc_image **out, int *orientation, int *truncated, blipc_err *e) {
    blipc_status st = BLIPC_OK;
    *truncated = 0;
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", name);
    c->data = data;
    c->size = size;
    if (setjmp(c->jb)) {
        if (c->phase == 1 && c->rows_expected && c->rows_seen == c->rows_expected) c->phase = 2;
        if (c->phase == 2) { /* trailing chunks are optional for us (Pillow too) */
            st = BLIPC_OK;
            goto finished;
        }
        if (strcmp(c->msg, "truncated PNG data") == 0) {
            *truncated = 1;
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated PNG data", name);
        }
        else if (strstr(c->msg, "memory"))
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory decoding PNG (%s)", name, c->msg);
        else
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt PNG data: %s", name, c->msg);
        goto done;
    }
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    if (!c->png) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot create PNG reader", name);
        goto done;
    }
    c->info = png_create_info_struct(c->png);
    if (!c->info) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot create PNG reader", name);
        goto done;
    }
    png_set_read_fn(c->png, c, png_on_read);
    /* Pillow verifies the CRC of every chunk before the image data */
    png_set_crc_action(c->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    if (bytewise) png_set_compression_buffer_size(c->png, 1); /* IDAT read size */
    png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff); /* our own pixel limit was applied above */
    png_read_info(c->png, c->info);
    int bit_depth, interlace;
    png_get_IHDR(c->png, c->info, &c->W, &c->H, &bit_depth, &c->color_type, &interlace, NULL, NULL);
    const png_uint_32 W = c->W, H = c->H;
    const int color_type = c->color_type;
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(c->png); /* 0/255, x85, x17 */
    if (color_type == PNG_COLOR_TYPE_PALETTE && bit_depth < 8) png_set_packing(c->png);       /* one index per byte */
    const int passes = png_set_interlace_handling(c->png);
    png_set_read_user_transform_fn(c->png, png_count_row);
    png_set_user_transform_info(c->png, c, 0, 0);
    png_read_update_info(c->png, c->info);
    size_t rowbytes = png_get_rowbytes(c->png, c->info);
    const int ch = c->ch = png_get_channels(c->png, c->info);
    const int bd = c->bd = png_get_bit_depth(c->png, c->info);
    if (bd != 8 && bd != 16) {
        st = blipc__errf(e, BLIPC_ERR_INTERNAL, "%s: unexpected PNG bit depth %d after transforms", name, bd);
        goto done;
    }
    if (rowbytes != (size_t)W * ch * (bd / 8)) {
        st = blipc__errf(e, BLIPC_ERR_INTERNAL, "%s: unexpected PNG row size %zu", name, rowbytes);
        goto done;
    }
    st = blipc__image_new((int)W, (int)H, &c->img, e);
    if (st) {
        blipc__err_prefix(e, "%s", name);
        goto done;
    }
    const int direct = c->direct = (color_type == PNG_COLOR_TYPE_RGB && bd == 8);
    if (!direct) {
        if (rowbytes > SIZE_MAX / H || !(c->raw = malloc(rowbytes * H))) {
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory for %ux%u PNG", name, (unsigned)W, (unsigned)H);
            goto done;
        }
    }
    c->rows = malloc(sizeof *c->rows * H);
    if (!c->rows) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (png_uint_32 y = 0; y < H; y++) c->rows[y] = direct ? c->img->rgb + (size_t)y * rowbytes : c->raw + (size_t)y * rowbytes;
    if (passes > 1) {
        for (int pass = 0; pass < 7; pass++)
            if (PNG_PASS_COLS(W, pass) > 0) c->rows_expected += PNG_PASS_ROWS(H, pass);
    } else {
        c->rows_expected = H;
    }
    c->phase = 1;
    png_read_image(c->png, c->rows);
    c->phase = 2;
    if (want_exif) png_read_end(c->png, c->info); /* an eXIf chunk may follow the image data */
finished:
    if (want_exif) *orientation = png_orientation(c->png, c->info);
    if (!c->direct) png_convert(c);
    *out = c->img;
    c->img = NULL;
done:
    if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
    if (c->img) blipc_image_free(c->img);
    free(c->raw);
    free(c->rows);
    free(c);
    return st;
}

blipc_status blipc__image_decode_png(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                     int want_exif, blipc_image **out, int *orientation, blipc_err *e) {
    /* Validate IHDR ourselves first: clear 0x0 / limit messages before libpng
     * allocates anything. */
    if (size < 33) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated PNG data (%zu bytes)", name, size);
    if (memcmp(data + 12, "IHDR", 4) != 0)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt PNG data: first chunk is not IHDR", name);
    BLIPC_TRY(blipc__image_check_dims(name, "PNG", be32(data + 16), be32(data + 20), limit, e));
    int truncated = 0;
    blipc_status st = decode_png_once(data, size, name, want_exif, 0, out, orientation, &truncated, e);
    /* libpng reads whole IDAT chunks before inflating them, Pillow streams: a
     * file cut inside its last IDAT may still hold every row (only the zlib
     * checksum / CRC / IEND missing), which Pillow accepts. Re-check bytewise. */
    if (st != BLIPC_OK && truncated)
        if (decode_png_once(data, size, name, want_exif, 1, out, orientation, &truncated, NULL) == BLIPC_OK) {
            blipc__err_clear(e);
            return BLIPC_OK;
        }
    return st;
}
