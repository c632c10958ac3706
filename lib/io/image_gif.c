/* image_gif.c — the first frame of a GIF (own LZW decoder), as Pillow 9.4 loads it. */
#include "image_decode.h"

#include <stdlib.h>
#include <string.h>

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

blipc_status blipc__image_decode_gif(const uint8_t *data, size_t size, const char *name, uint64_t limit,
                                     blipc_image **out, blipc_err *e) {
    gif_reader r = {data, size, 13};
    if (size < 13) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated GIF data (%zu bytes)", name, size);
    uint32_t sw = blipc__rd16(data + 6, 1), sh = blipc__rd16(data + 8, 1);
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
    const uint32_t fx = blipc__rd16(id, 1), fy = blipc__rd16(id + 2, 1), fw = blipc__rd16(id + 4, 1), fh = blipc__rd16(id + 6, 1);
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
    BLIPC_TRY(blipc__image_check_dims(name, "GIF", W, H, limit, e));
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
