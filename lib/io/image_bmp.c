/* image_bmp.c — BMP through stb_image, refusing truncated bitmaps as Pillow does. */
#include "image_decode.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <stb_image.h>

blipc_status blipc__image_decode_stb(const uint8_t *data, size_t size, const char *name, const char *fmt,
                                     uint64_t limit, blipc_image **out, blipc_err *e) {
    if (size > INT_MAX) return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: %s file too large (%zu bytes)", name, fmt, size);
    if (strcmp(fmt, "BMP") == 0 && size >= 30) {
        /* stb_image zero-fills missing pixel data; Pillow refuses truncated
         * files, so check uncompressed bitmaps' sizes from the header */
        const uint32_t off = blipc__rd32(data + 10, 1), hsz = blipc__rd32(data + 14, 1);
        uint64_t bw = 0, bh = 0, bpp = 0, comp = 0;
        if (hsz == 12) {
            bw = blipc__rd16(data + 18, 1);
            bh = blipc__rd16(data + 20, 1);
            bpp = blipc__rd16(data + 24, 1);
        } else if (hsz >= 40 && size >= 34) {
            int32_t sh = (int32_t)blipc__rd32(data + 22, 1);
            bw = (uint32_t)(int32_t)blipc__rd32(data + 18, 1) & 0x7fffffffu;
            bh = sh < 0 ? (uint64_t)(-(int64_t)sh) : (uint64_t)sh;
            bpp = blipc__rd16(data + 28, 1);
            comp = blipc__rd32(data + 30, 1);
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
    blipc_status st = blipc__image_check_dims(name, fmt, (uint64_t)(w < 0 ? 0 : w), (uint64_t)(h < 0 ? 0 : h), limit, e);
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
