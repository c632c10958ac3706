/* image_jpeg.c — JPEG via libjpeg(-turbo) to RGB as Pillow converts it (gray,
 * RGB, Adobe CMYK), with the EXIF APP1 orientation. See image.h. */
#include "image_decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

static inline uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

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

blipc_status blipc__image_decode_jpeg(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                      int want_exif, blipc_image **out, int *orientation, blipc_err *e) {
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
    st = blipc__image_check_dims(name, "JPEG", ci->image_width, ci->image_height, limit, e);
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
