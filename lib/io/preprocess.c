/* preprocess.c — preprocessor_config.json and the BLIP image processor
 * (resize -> rescale -> normalise -> CHW), bit-exact with transformers' PIL path. */
#include "preprocess.h"

#include "fileutil.h"
#include "resize.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

void blipc__preproc_config_default(blipc_preproc_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->do_convert_rgb = 1;
    cfg->do_resize = 1;
    cfg->height = 224;
    cfg->width = 224;
    cfg->resample = 3;
    cfg->do_rescale = 1;
    cfg->rescale_factor = 1.0 / 255.0;
    cfg->do_normalize = 1;
    /* OPENAI_CLIP_MEAN / OPENAI_CLIP_STD */
    cfg->mean[0] = 0.48145466f;
    cfg->mean[1] = 0.4578275f;
    cfg->mean[2] = 0.40821073f;
    cfg->std[0] = 0.26862954f;
    cfg->std[1] = 0.26130258f;
    cfg->std[2] = 0.27577711f;
}

static blipc_status get_bool(const cJSON *root, const char *field, int *out, const char *name, blipc_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return BLIPC_OK;
    if (!cJSON_IsBool(v)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be true or false", name, field);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return BLIPC_OK;
}

static blipc_status get_int(const cJSON *v, const char *field, int lo, int hi, int *out, const char *name,
                            blipc_err *e) {
    /* range before the cast: converting an out-of-range double to an integer is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(long long)v->valuedouble)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be an integer in [%d, %d]", name, field, lo, hi);
    *out = (int)v->valuedouble;
    return BLIPC_OK;
}

/* A number (replicated to 3 channels) or an array of 3 numbers. */
static blipc_status get_vec3(const cJSON *root, const char *field, int positive, float out[3], const char *name,
                             blipc_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return BLIPC_OK;
    double d[3];
    if (cJSON_IsNumber(v)) {
        d[0] = d[1] = d[2] = v->valuedouble;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3) {
        for (int i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(x))
                return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\"[%d] must be a number", name, field, i);
            d[i] = x->valuedouble;
        }
    } else {
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be a number or an array of 3 numbers (one per RGB channel)",
                           name, field);
    }
    for (int i = 0; i < 3; i++) {
        if (positive && !(d[i] > 0))
            return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\"[%d] = %g must be positive", name, field, i, d[i]);
        out[i] = (float)d[i];
    }
    return BLIPC_OK;
}

blipc_status blipc__preproc_config_parse(const char *json, size_t len, const char *name, blipc_preproc_config *cfg,
                                         blipc_err *e) {
    blipc__preproc_config_default(cfg);
    if (!name) name = "preprocessor_config.json";
    if (!json) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "%s: no JSON text", name);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: invalid JSON", name);
    blipc_status st = BLIPC_OK;
    if (!cJSON_IsObject(root)) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: top level must be a JSON object", name);
        goto done;
    }
    if ((st = get_bool(root, "do_convert_rgb", &cfg->do_convert_rgb, name, e))) goto done;
    if ((st = get_bool(root, "do_resize", &cfg->do_resize, name, e))) goto done;
    if ((st = get_bool(root, "do_rescale", &cfg->do_rescale, name, e))) goto done;
    if ((st = get_bool(root, "do_normalize", &cfg->do_normalize, name, e))) goto done;
    int crop = 0;
    if ((st = get_bool(root, "do_center_crop", &crop, name, e))) goto done;
    if (crop) {
        st = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: \"do_center_crop\": true is not supported (BLIP does not crop)", name);
        goto done;
    }

    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (size && !cJSON_IsNull(size)) {
        if (cJSON_IsNumber(size)) { /* old-style int size: square */
            if ((st = get_int(size, "size", 1, 16384, &cfg->height, name, e))) goto done;
            cfg->width = cfg->height;
        } else if (cJSON_IsObject(size)) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(size, "height");
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(size, "width");
            if (!h || !w) {
                st = blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                                 "%s: field \"size\" must have \"height\" and \"width\" (shortest_edge/longest_edge "
                                 "resizing is not supported)",
                                 name);
                goto done;
            }
            if ((st = get_int(h, "size.height", 1, 16384, &cfg->height, name, e))) goto done;
            if ((st = get_int(w, "size.width", 1, 16384, &cfg->width, name, e))) goto done;
        } else {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"size\" must be an object {\"height\", \"width\"}", name);
            goto done;
        }
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "resample");
    if (rs && !cJSON_IsNull(rs)) {
        if ((st = get_int(rs, "resample", 0, 5, &cfg->resample, name, e))) goto done;
        if (cfg->resample != 3) {
            st = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: \"resample\": %d is not supported (only 3 = BICUBIC)", name,
                             cfg->resample);
            goto done;
        }
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor");
    if (rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsNumber(rf) || !(rf->valuedouble > 0)) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"rescale_factor\" must be a positive number", name);
            goto done;
        }
        cfg->rescale_factor = rf->valuedouble;
    }
    if ((st = get_vec3(root, "image_mean", 0, cfg->mean, name, e))) goto done;
    if ((st = get_vec3(root, "image_std", 1, cfg->std, name, e))) goto done;
done:
    cJSON_Delete(root);
    return st;
}

blipc_status blipc__preproc_config_load(const char *path, blipc_preproc_config *cfg, blipc_err *e) {
    blipc__preproc_config_default(cfg);
    if (!path) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "preprocessor config: path is NULL");
    char buf[4096];
    const char *file = path;
    if (blipc__dir_exists(path)) {
        BLIPC_TRY(blipc__path_join(buf, sizeof buf, path, "preprocessor_config.json", e));
        file = buf;
    }
    char *text;
    size_t n;
    BLIPC_TRY(blipc__read_file(file, (size_t)1 << 20, &text, &n, e));
    blipc_status st = blipc__preproc_config_parse(text, n, file, cfg, e);
    free(text);
    return st;
}

void blipc__preproc_lut(const blipc_preproc_config *cfg, float lut[3][256]) {
    for (int c = 0; c < 3; c++) {
        for (int v = 0; v < 256; v++) {
            /* transformers: image.astype(float64) * rescale_factor -> float32 */
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            /* (image - mean) / std in float32: one subtraction, one division
             * (a reciprocal multiply would change some values) */
            if (cfg->do_normalize) x = (x - cfg->mean[c]) / cfg->std[c];
            lut[c][v] = x;
        }
    }
}

blipc_status blipc__preprocess_image(const blipc_image *img, const blipc_preproc_config *cfg, float *out_chw,
                                     uint8_t *resized_rgb_opt, blipc_err *e) {
    if (!img || !img->rgb || !cfg || !out_chw)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "preprocess: NULL image, config or output");
    const int H = cfg->height, W = cfg->width;
    if (H <= 0 || W <= 0) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "preprocess: target size %dx%d", W, H);
    if (cfg->do_resize && cfg->resample != 3)
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "preprocess: resample %d not supported (only 3 = BICUBIC)",
                           cfg->resample);
    if (!cfg->do_resize && (img->width != W || img->height != H))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG,
                           "preprocess: image is %dx%d but do_resize is false and the model needs %dx%d", img->width,
                           img->height, W, H);
    const size_t hw = (size_t)H * (size_t)W;
    uint8_t *rgb = resized_rgb_opt;
    if (!rgb) {
        rgb = malloc(hw * 3);
        if (!rgb) return blipc__errf(e, BLIPC_ERR_NOMEM, "preprocess: cannot allocate %dx%d RGB buffer", W, H);
    }
    blipc_status st = blipc__resize_bicubic_rgb(img->rgb, img->width, img->height, 0, rgb, W, H, e);
    if (st == BLIPC_OK) {
        float lut[3][256];
        blipc__preproc_lut(cfg, lut);
        float *r = out_chw, *g = out_chw + hw, *b = out_chw + 2 * hw;
        for (size_t i = 0; i < hw; i++) {
            r[i] = lut[0][rgb[3 * i]];
            g[i] = lut[1][rgb[3 * i + 1]];
            b[i] = lut[2][rgb[3 * i + 2]];
        }
    }
    if (rgb != resized_rgb_opt) free(rgb);
    return st;
}
