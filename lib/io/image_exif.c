/* image_exif.c — EXIF orientation: found in a TIFF/EXIF block, applied to an
 * image as PIL.ImageOps.exif_transpose does (see image.h). */
#include "image_decode.h"

#include <stdlib.h>
#include <string.h>

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
    if (blipc__rd16(d + 2, le) != 42) return 0;
    uint32_t ifd = blipc__rd32(d + 4, le);
    if (ifd > n || n - ifd < 2) return 0;
    uint32_t count = blipc__rd16(d + ifd, le);
    size_t pos = (size_t)ifd + 2;
    for (uint32_t i = 0; i < count; i++, pos += 12) {
        if (pos > n || n - pos < 12) return 0;
        const uint8_t *ent = d + pos;
        if (blipc__rd16(ent, le) != 0x0112) continue;
        uint32_t type = blipc__rd16(ent + 2, le), cnt = blipc__rd32(ent + 4, le);
        if (cnt < 1) return 0;
        uint32_t v;
        if (type == 3) v = blipc__rd16(ent + 8, le);      /* SHORT (the standard type) */
        else if (type == 4) v = blipc__rd32(ent + 8, le); /* LONG */
        else if (type == 1) v = ent[8];                   /* BYTE */
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
