/* image.c — decode JPEG/PNG/BMP/GIF into 8-bit RGB the way Pillow's
 * Image.open(f).convert("RGB") does, plus the public blipc_image_* API.
 * See image.h for the per-format rules. */
#include "image.h"

#include "fileutil.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <stb_image.h>

/* ------------------------------------------------------------------ helpers */

static uint64_t effective_limit(const blipc_image_params *p) {
    return (p && p->max_pixels) ? p->max_pixels : BLIPC_IMAGE_DEFAULT_MAX_PIXELS;
}

static blipc_status check_dims(const char *name, const char *fmt, uint64_t w, uint64_t h, uint64_t limit,
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

static inline uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* ------------------------------------------------------------------ EXIF */

static uint32_t rd16(const uint8_t *p, int le) { return le ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int blipc__exif_orientation(const uint8_t *d, size_t n) {
    if (!d) return 0;
    if (n >= 6 && memcmp(d, "Exif\0\0", 6) == 0) {
        d += 6;
        n -= 6;
    }
    if (n < 8) return 0;
    int le;
    if (d[0] == 'I' && d[1] == 'I') le = 1;
    else if (d[0] == 'M' && d[1] == 'M') le = 0;
    else return 0;
    if (rd16(d + 2, le) != 42) return 0;
    uint32_t ifd = rd32(d + 4, le);
    if (ifd > n || n - ifd < 2) return 0;
    uint32_t count = rd16(d + ifd, le);
    size_t pos = (size_t)ifd + 2;
    for (uint32_t i = 0; i < count; i++, pos += 12) {
        if (pos > n || n - pos < 12) return 0;
        const uint8_t *ent = d + pos;
        if (rd16(ent, le) != 0x0112) continue;
        uint32_t type = rd16(ent + 2, le), cnt = rd32(ent + 4, le);
        if (cnt < 1) return 0;
        uint32_t v;
        if (type == 3) v = rd16(ent + 8, le);      /* SHORT (the standard type) */
        else if (type == 4) v = rd32(ent + 8, le); /* LONG */
        else if (type == 1) v = ent[8];            /* BYTE */
        else return 0;
        return (v >= 1 && v <= 8) ? (int)v : 0;
    }
    return 0;
}

blipc_status blipc__image_apply_orientation(blipc_image *img, int orientation, blipc_err *e) {
    if (orientation < 2 || orientation > 8) return BLIPC_OK;
    const int W = img->width, H = img->height;
    const int swap = orientation >= 5; /* TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90 */
    const int DW = swap ? H : W, DH = swap ? W : H;
    uint8_t *dst = malloc((size_t)W * (size_t)H * 3);
    if (!dst) return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot allocate %dx%d image for EXIF orientation", W, H);
    const uint8_t *src = img->rgb;
    for (int y = 0; y < DH; y++) {
        uint8_t *o = dst + (size_t)y * DW * 3;
        for (int x = 0; x < DW; x++) {
            int sx, sy;
            switch (orientation) {
            case 2: sx = W - 1 - x; sy = y; break;             /* FLIP_LEFT_RIGHT */
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;     /* ROTATE_180 */
            case 4: sx = x; sy = H - 1 - y; break;             /* FLIP_TOP_BOTTOM */
            case 5: sx = y; sy = x; break;                     /* TRANSPOSE */
            case 6: sx = y; sy = H - 1 - x; break;             /* ROTATE_270 (90 degrees clockwise) */
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;     /* TRANSVERSE */
            default: sx = W - 1 - y; sy = x; break;            /* 8: ROTATE_90 (counter-clockwise) */
            }
            const uint8_t *s = src + ((size_t)sy * W + (size_t)sx) * 3;
            o[3 * x] = s[0];
            o[3 * x + 1] = s[1];
            o[3 * x + 2] = s[2];
        }
    }
    free(img->rgb);
    img->rgb = dst;
    img->width = DW;
    img->height = DH;
    return BLIPC_OK;
}

/* ------------------------------------------------------------------ JPEG */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us this pointer */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int code;
    int finishing; /* in jpeg_finish_decompress: running out of data is fine */
    struct jpeg_decompress_struct cinfo;
    uint8_t *row;
    blipc_image *img;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    c->code = cinfo->err->msg_code;
    cinfo->err->format_message(cinfo, c->msg);
    longjmp(c->jb, 1);
}

/* Warnings are silent, except running out of data: Pillow refuses truncated
 * files ("image file is truncated") and so do we. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF && !((jpeg_ctx *)cinfo->err)->finishing)
        jpeg_on_error(cinfo);
}

static void jpeg_silent_output(j_common_ptr cinfo) { (void)cinfo; }

static blipc_status decode_jpeg(const uint8_t *data, size_t size, const char *name, uint64_t limit, int want_exif,
                                blipc_image **out, int *orientation, blipc_err *e) {
    jpeg_ctx *c = calloc(1, sizeof *c);
    if (!c) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", name);
    blipc_status st = BLIPC_OK;
    c->cinfo.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpeg_on_error;
    c->pub.emit_message = jpeg_on_message;
    c->pub.output_message = jpeg_silent_output;
    if (setjmp(c->jb)) {
        if (c->code == JWRN_JPEG_EOF)
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated JPEG data (premature end of file)", name);
        else if (c->code == JERR_EMPTY_IMAGE)
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: 0x0 image: JPEG width or height is zero", name);
        else if (c->code == JERR_OUT_OF_MEMORY)
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory decoding JPEG (%s)", name, c->msg);
        else
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt JPEG data: %s", name, c->msg);
        goto done;
    }
    jpeg_create_decompress(&c->cinfo);
    jpeg_mem_src(&c->cinfo, data, (unsigned long)size);
    if (want_exif) jpeg_save_markers(&c->cinfo, JPEG_APP0 + 1, 0xFFFF);
    if (jpeg_read_header(&c->cinfo, TRUE) != JPEG_HEADER_OK) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: JPEG has tables but no image", name);
        goto done;
    }
    struct jpeg_decompress_struct *ci = &c->cinfo;
    st = check_dims(name, "JPEG", ci->image_width, ci->image_height, limit, e);
    if (st) goto done;
    int nc = ci->num_components;
    if (nc == 1) ci->out_color_space = JCS_GRAYSCALE;
    else if (nc == 3) ci->out_color_space = JCS_RGB;
    else if (nc == 4) ci->out_color_space = JCS_CMYK;
    else {
        st = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported", name, nc);
        goto done;
    }
    if (want_exif) {
        for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
            /* Pillow keeps the first APP1 that starts with "Exif\0" */
            if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && memcmp(m->data, "Exif\0", 5) == 0) {
                *orientation = blipc__exif_orientation(m->data, m->data_length);
                break;
            }
        }
    }
    jpeg_start_decompress(ci);
    const int W = (int)ci->output_width, H = (int)ci->output_height, oc = ci->output_components;
    if (oc != nc || W != (int)ci->image_width || H != (int)ci->image_height) {
        st = blipc__errf(e, BLIPC_ERR_INTERNAL, "%s: libjpeg returned %d components %dx%d", name, oc, W, H);
        goto done;
    }
    st = blipc__image_new(W, H, &c->img, e);
    if (st) {
        blipc__err_prefix(e, "%s", name);
        goto done;
    }
    if (nc != 3) {
        c->row = malloc((size_t)W * (size_t)nc);
        if (!c->row) {
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
    }
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = c->img->rgb + (size_t)ci->output_scanline * W * 3;
        JSAMPROW rp = nc == 3 ? dst : c->row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated JPEG data", name);
            goto done;
        }
        if (nc == 1) {
            for (int x = 0; x < W; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = c->row[x];
        } else if (nc == 4) {
            /* Pillow: rawmode "CMYK;I" (Adobe polarity: C = 255 - stored), then
             * cmyk2rgb: nk = 255 - K; R = clip(nk - MULDIV255(C, nk)) ... */
            for (int x = 0; x < W; x++) {
                const uint8_t *s = c->row + 4 * x;
                int nk = s[3]; /* 255 - (255 - stored K) */
                for (int k = 0; k < 3; k++) {
                    int cc = 255 - s[k];
                    int t = cc * nk + 128;
                    dst[3 * x + k] = clip8(nk - (((t >> 8) + t) >> 8));
                }
            }
        }
    }
    /* Like Pillow: markers after the image are still read (a corrupt one is
     * an error) but a missing EOI does not matter. */
    c->finishing = 1;
    jpeg_finish_decompress(ci);
    *out = c->img;
    c->img = NULL;
done:
    jpeg_destroy_decompress(&c->cinfo);
    if (c->img) blipc_image_free(c->img);
    free(c->row);
    free(c);
    return st;
}

/* ------------------------------------------------------------------ PNG */

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

static uint32_t be32(const uint8_t *p) { return rd32(p, 0); }

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

static blipc_status decode_png(const uint8_t *data, size_t size, const char *name, uint64_t limit, int want_exif,
                               blipc_image **out, int *orientation, blipc_err *e) {
    /* Validate IHDR ourselves first: clear 0x0 / limit messages before libpng
     * allocates anything. */
    if (size < 33) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated PNG data (%zu bytes)", name, size);
    if (memcmp(data + 12, "IHDR", 4) != 0)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt PNG data: first chunk is not IHDR", name);
    BLIPC_TRY(check_dims(name, "PNG", be32(data + 16), be32(data + 20), limit, e));
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

/* ------------------------------------------------------------------ GIF */

/* First frame of a GIF as Pillow 9.4 loads it: the canvas (screen size, grown
 * to hold the frame) starts as the frame's transparency index if it has one,
 * else index 0; the frame is decoded over it with every index written
 * (transparency is ignored by convert("RGB")); data that stops before the last
 * pixel is an error ("image file is truncated"); indices map through the local
 * or global colour table, and indices past the table are gray (i, i, i). */
typedef struct gif_reader {
    const uint8_t *d;
    size_t n, pos;
} gif_reader;

static int gif_byte(gif_reader *r) { return r->pos < r->n ? r->d[r->pos++] : -1; }

/* skip data sub-blocks up to and including the terminator; -1 if truncated */
static int gif_skip_blocks(gif_reader *r) {
    for (;;) {
        int len = gif_byte(r);
        if (len < 0) return -1;
        if (len == 0) return 0;
        if (r->n - r->pos < (size_t)len) return -1;
        r->pos += (size_t)len;
    }
}

static blipc_status decode_gif(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                               blipc_image **out, blipc_err *e) {
    gif_reader r = {data, size, 13};
    if (size < 13) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data (%zu bytes)", name, size);
    uint32_t sw = rd16(data + 6, 1), sh = rd16(data + 8, 1);
    const uint8_t *gct = NULL;
    int ngct = 0;
    if (data[10] & 0x80) {
        ngct = 1 << ((data[10] & 7) + 1);
        if (size - r.pos < (size_t)ngct * 3) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
        gct = data + r.pos;
        r.pos += (size_t)ngct * 3;
    }
    int transparency = -1;
    for (;;) {
        int c = gif_byte(&r);
        if (c < 0) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data (no image)", name);
        if (c == ';') return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: GIF has no image frame", name);
        if (c == '!') {
            int label = gif_byte(&r);
            if (label < 0) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
            if (label == 0xF9 && r.pos + 5 <= r.n && r.d[r.pos] >= 4) { /* graphic control extension */
                const uint8_t *b = r.d + r.pos + 1;
                transparency = (b[0] & 1) ? b[3] : -1;
            }
            if (gif_skip_blocks(&r)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
            continue;
        }
        if (c == ',') break;
        /* Pillow skips unknown bytes between blocks */
    }
    if (r.n - r.pos < 9) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
    const uint8_t *id = r.d + r.pos;
    r.pos += 9;
    const uint32_t fx = rd16(id, 1), fy = rd16(id + 2, 1), fw = rd16(id + 4, 1), fh = rd16(id + 6, 1);
    const int interlaced = (id[8] & 0x40) != 0;
    const uint8_t *pal = gct;
    int npal = ngct;
    if (id[8] & 0x80) {
        npal = 1 << ((id[8] & 7) + 1);
        if (r.n - r.pos < (size_t)npal * 3) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
        pal = r.d + r.pos;
        r.pos += (size_t)npal * 3;
    }
    /* Pillow grows the image to hold the frame */
    const uint32_t W = fx + fw > sw ? fx + fw : sw, H = fy + fh > sh ? fy + fh : sh;
    BLIPC_TRY(check_dims(name, "GIF", W, H, limit, e));
    int minbits = gif_byte(&r);
    if (minbits < 0) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
    if (minbits < 1 || minbits > 11)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt GIF data: LZW code size %d", name, minbits);

    blipc_image *img = NULL;
    uint8_t *canvas = malloc((size_t)W * H);
    uint16_t *prefix = malloc(sizeof *prefix * 4096);
    uint8_t *suffix = malloc(4096), *stack = malloc(4097);
    blipc_status st = BLIPC_OK;
    if (!canvas || !prefix || !suffix || !stack) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory for %ux%u GIF", name, (unsigned)W, (unsigned)H);
        goto done;
    }
    memset(canvas, transparency >= 0 ? transparency : 0, (size_t)W * H);

    /* LZW over the data sub-blocks */
    const int clear = 1 << minbits, eoi = clear + 1;
    int codesize = minbits + 1, next = clear + 2, prev = -1;
    uint8_t first = 0;
    uint32_t bitbuf = 0;
    int nbits = 0, blockleft = 0, ended = 0;
    const uint64_t total = (uint64_t)fw * fh;
    uint64_t npx = 0;
    uint32_t row = 0, col = 0;
    int pass = 0;
    static const int pass_start[4] = {0, 4, 2, 1}, pass_step[4] = {8, 8, 4, 2};
    for (int i = 0; i < clear; i++) {
        prefix[i] = 0xFFFF;
        suffix[i] = (uint8_t)i;
    }
    while (npx < total && !ended) {
        while (nbits < codesize) {
            if (blockleft == 0) {
                int len = gif_byte(&r);
                if (len < 0) {
                    st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
                    goto done;
                }
                if (len == 0) { /* image data ended early */
                    ended = 2;
                    break;
                }
                blockleft = len;
            }
            int b = gif_byte(&r);
            if (b < 0) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
                goto done;
            }
            blockleft--;
            bitbuf |= (uint32_t)b << nbits;
            nbits += 8;
        }
        if (ended) break;
        int code = (int)(bitbuf & ((1u << codesize) - 1));
        bitbuf >>= codesize;
        nbits -= codesize;
        if (code == clear) {
            codesize = minbits + 1;
            next = clear + 2;
            prev = -1;
            continue;
        }
        if (code == eoi) {
            ended = 1;
            break;
        }
        int sp = 0, cur;
        if (prev < 0) {
            if (code >= clear) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt GIF data: bad LZW code %d", name, code);
                goto done;
            }
            stack[sp++] = (uint8_t)code;
            first = (uint8_t)code;
        } else {
            if (code > next || (code == next && next >= 4096)) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt GIF data: bad LZW code %d", name, code);
                goto done;
            }
            cur = code;
            if (code == next) { /* KwKwK */
                stack[sp++] = first;
                cur = prev;
            }
            while (cur >= clear) {
                stack[sp++] = suffix[cur];
                cur = prefix[cur];
            }
            stack[sp++] = (uint8_t)cur;
            first = (uint8_t)cur;
            if (next < 4096) {
                prefix[next] = (uint16_t)prev;
                suffix[next] = first;
                next++;
                if (next == (1 << codesize) && codesize < 12) codesize++;
            }
        }
        prev = code;
        while (sp > 0 && npx < total) { /* stack holds the string reversed */
            canvas[(size_t)(fy + row) * W + fx + col] = stack[--sp];
            npx++;
            if (++col == fw) {
                col = 0;
                if (!interlaced) row++;
                else {
                    row += (uint32_t)pass_step[pass];
                    while (row >= fh && pass < 3) row = (uint32_t)pass_start[++pass];
                }
                if (row >= fh) npx = total;
            }
        }
    }
    /* Pillow refuses a frame whose data ends (end code or block terminator)
     * before every pixel is set, and reads the data up to its terminator. */
    if (npx < total) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data (image data ends after %llu of %llu pixels)", name,
                         (unsigned long long)npx, (unsigned long long)total);
        goto done;
    }
    if (ended != 2) {
        while (blockleft > 0) {
            if (gif_byte(&r) < 0) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
                goto done;
            }
            blockleft--;
        }
        if (gif_skip_blocks(&r)) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data", name);
            goto done;
        }
    }
    st = blipc__image_new((int)W, (int)H, &img, e);
    if (st) {
        blipc__err_prefix(e, "%s", name);
        goto done;
    }
    for (size_t i = 0, n = (size_t)W * H; i < n; i++) {
        int v = canvas[i];
        uint8_t *o = img->rgb + 3 * i;
        if (pal && v < npal) {
            o[0] = pal[3 * v];
            o[1] = pal[3 * v + 1];
            o[2] = pal[3 * v + 2];
        } else {
            o[0] = o[1] = o[2] = (uint8_t)v;
        }
    }
    *out = img;
done:
    free(canvas);
    free(prefix);
    free(suffix);
    free(stack);
    return st;
}

/* ------------------------------------------------------------------ BMP */

static blipc_status decode_stb(const uint8_t *data, size_t size, const char *name, const char *fmt, uint64_t limit,
                               blipc_image **out, blipc_err *e) {
    if (size > INT_MAX) return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: %s file too large (%zu bytes)", name, fmt, size);
    if (strcmp(fmt, "BMP") == 0 && size >= 30) {
        /* stb_image zero-fills missing pixel data; Pillow refuses truncated
         * files, so check uncompressed bitmaps' sizes from the header */
        const uint32_t off = rd32(data + 10, 1), hsz = rd32(data + 14, 1);
        uint64_t bw = 0, bh = 0, bpp = 0, comp = 0;
        if (hsz == 12) {
            bw = rd16(data + 18, 1);
            bh = rd16(data + 20, 1);
            bpp = rd16(data + 24, 1);
        } else if (hsz >= 40 && size >= 34) {
            int32_t sh = (int32_t)rd32(data + 22, 1);
            bw = (uint32_t)(int32_t)rd32(data + 18, 1) & 0x7fffffffu;
            bh = sh < 0 ? (uint64_t)(-(int64_t)sh) : (uint64_t)sh;
            bpp = rd16(data + 28, 1);
            comp = rd32(data + 30, 1);
        }
        if (bpp && (comp == 0 || comp == 3) && bw <= INT_MAX && bh <= INT_MAX) {
            const uint64_t stride = ((bw * bpp + 31) / 32) * 4, need = (uint64_t)off + stride * bh;
            if (need > size)
                return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated BMP data (%zu of %llu bytes)", name, size,
                                   (unsigned long long)need);
        }
    }
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(data, (int)size, &w, &h, &comp))
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt %s data: %s", name, fmt, stbi_failure_reason());
    /* stb reports a top-down bitmap's height as negative */
    if (h < 0 && h != INT_MIN) h = -h;
    blipc_status st = check_dims(name, fmt, (uint64_t)(w < 0 ? 0 : w), (uint64_t)(h < 0 ? 0 : h), limit, e);
    if (st) return st;
    uint8_t *px = stbi_load_from_memory(data, (int)size, &w, &h, &comp, 3);
    if (!px) {
        const char *why = stbi_failure_reason();
        if (why && strcmp(why, "outofmem") == 0)
            return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory decoding %s", name, fmt);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: corrupt %s data: %s", name, fmt, why ? why : "unknown error");
    }
    blipc_image *img;
    st = blipc__image_new(w, h, &img, e);
    if (st) {
        stbi_image_free(px);
        return blipc__err_prefix(e, "%s", name);
    }
    memcpy(img->rgb, px, (size_t)w * h * 3);
    stbi_image_free(px);
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
        st = decode_jpeg(d, size, name, limit, want_exif, out, &orientation, e);
    } else if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) {
        st = decode_png(d, size, name, limit, want_exif, out, &orientation, e);
    } else if (size >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) {
        st = decode_gif(d, size, name, limit, out, e);
    } else if (size >= 2 && d[0] == 'B' && d[1] == 'M') {
        st = decode_stb(d, size, name, "BMP", limit, out, e);
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
