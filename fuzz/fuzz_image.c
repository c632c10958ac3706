/* fuzz_image — the public image decoder (JPEG/PNG/BMP/GIF + EXIF) on arbitrary
 * bytes, then the BLIP preprocessing (bicubic resize + normalise) of what it
 * accepts. The pixel limit is lowered so one input cannot take seconds. */
#include "fuzz_common.h"
#include "image.h"
#include "preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PIXELS (1u << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);

    if (size) (void)blipc__exif_orientation(buf, size);

    blipc_image_params p;
    blipc_image_default_params(&p);
    p.max_pixels = FUZZ_MAX_PIXELS;
    /* EXIF handling only runs when asked for: let one input bit choose, so the
     * corpus keeps inputs for both paths */
    p.exif_transpose = size > 0 && (buf[size - 1] & 1);

    blipc_image *img = NULL;
    char err[512];
    err[0] = 0;
    blipc_status rc = blipc_image_load_memory(buf, size, &p, &img, err, sizeof err);
    fuzz_check_msg("image_load_memory", rc, err);
    if (rc == BLIPC_OK) {
        int w = blipc_image_width(img), h = blipc_image_height(img);
        const uint8_t *rgb = blipc_image_rgb(img);
        if (w <= 0 || h <= 0 || !rgb || (uint64_t)w * (uint64_t)h > FUZZ_MAX_PIXELS) abort();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) sink ^= rgb[i];
        (void)sink;

        /* small outputs keep the resize cheap while still running every filter tap */
        blipc_preproc_config cfg;
        blipc__preproc_config_default(&cfg);
        cfg.height = 1 + (h % 17);
        cfg.width = 1 + (w % 19);
        float *chw = malloc(sizeof(float) * 3 * (size_t)cfg.height * (size_t)cfg.width);
        uint8_t *resized = malloc(3 * (size_t)cfg.height * (size_t)cfg.width);
        if (chw && resized) {
            blipc_err e = {0};
            rc = blipc__preprocess_image(img, &cfg, chw, resized, &e);
            fuzz_check_status("preprocess_image", rc, &e);
        }
        free(chw);
        free(resized);
        blipc_image_free(img);
    } else if (img) {
        abort();
    }
    free(buf);
    return 0;
}
