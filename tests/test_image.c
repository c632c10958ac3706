/* test_image.c — image decoding, Pillow-exact resize and BLIP preprocessing
 * against the goldens in shared/fixtures/images (preprocess.safetensors) and
 * against Pillow itself (tests/tools/pil_reference.py) for more-images. */
#include "harness.h"

#include "image.h"
#include "preprocess.h"
#include "resize.h"
#include "safetensors.h"

#include <cJSON.h>
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SZ 224

static const char *img_dir(void) { return th_fixture("images"); }

static char *fixture_image(const char *name) {
    static char buf[4][4096];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", img_dir(), name);
    return b;
}

static blipc_image *load(const char *path, int exif, char *err, size_t errsz) {
    blipc_image_params p;
    blipc_image_default_params(&p);
    p.exif_transpose = exif;
    blipc_image *img = NULL;
    blipc_status st = blipc_image_load_file(path, &p, &img, err, errsz);
    if (st != BLIPC_OK) return NULL;
    return img;
}

static size_t count_diff(const uint8_t *a, const uint8_t *b, size_t n, int *maxd) {
    size_t c = 0;
    *maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d) c++;
        if (d > *maxd) *maxd = d;
    }
    return c;
}

/* ------------------------------------------------------------- goldens */

static blipc_safetensors *golden;

static const void *golden_tensor(const char *name, blipc_dtype dt, int64_t d0, int64_t d1, int64_t d2) {
    const blipc_st_tensor *t = blipc__st_find(golden, name);
    CHECKF(t != NULL, "missing golden tensor %s", name);
    if (!t) return NULL;
    CHECKF(t->dtype == dt && t->ndim == 3 && t->shape[0] == d0 && t->shape[1] == d1 && t->shape[2] == d2,
           "golden tensor %s has an unexpected dtype/shape", name);
    if (t->dtype != dt || t->ndim != 3 || t->shape[0] != d0 || t->shape[1] != d1 || t->shape[2] != d2) return NULL;
    return t->data;
}

/* decode + resize + normalise one fixture and compare bit for bit */
static void check_golden(const char *file, int exif) {
    char key[512], err[1024] = "";
    const char *suffix = exif ? "#exif_transposed" : "";
    blipc_image *img = load(fixture_image(file), exif, err, sizeof err);
    CHECKF(img != NULL, "%s: %s", file, err);
    if (!img) return;
    blipc_preproc_config cfg;
    blipc__preproc_config_default(&cfg);
    static float pv[3 * SZ * SZ];
    static uint8_t rgb[SZ * SZ * 3];
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st = blipc__preprocess_image(img, &cfg, pv, rgb, &e);
    CHECK_STATUS(st, BLIPC_OK, e.msg);
    snprintf(key, sizeof key, "%s%s/resized_rgb", file, suffix);
    const uint8_t *want_rgb = golden_tensor(key, BLIPC_DT_U8, SZ, SZ, 3);
    if (want_rgb) {
        int maxd;
        size_t nd = count_diff(rgb, want_rgb, sizeof rgb, &maxd);
        CHECKF(nd == 0, "%s%s: resized_rgb differs in %zu of %zu bytes (max %d)", file, suffix, nd, sizeof rgb, maxd);
    }
    snprintf(key, sizeof key, "%s%s/pixel_values", file, suffix);
    const float *want_pv = golden_tensor(key, BLIPC_DT_F32, 3, SZ, SZ);
    if (want_pv) {
        size_t nd = 0;
        for (size_t i = 0; i < 3 * SZ * SZ; i++) nd += memcmp(&pv[i], &want_pv[i], sizeof(float)) != 0;
        CHECKF(nd == 0, "%s%s: pixel_values differ in %zu values (max abs diff %g)", file, suffix, nd,
               th_max_abs_diff(pv, want_pv, 3 * SZ * SZ));
    }
    blipc_image_free(img);
}

TEST(golden_every_fixture_image_bit_exact) {
    /* the list of images comes from cases.json; the keys it names must all exist */
    size_t n;
    char *text = th_read_file(fixture_image("cases.json"), &n);
    CHECK(text != NULL);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    CHECK(cJSON_IsArray(images) && cJSON_GetArraySize(images) >= 24);
    int n_plain = 0, n_exif = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, images) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "file");
        if (!cJSON_IsString(f)) continue;
        check_golden(f->valuestring, 0);
        n_plain++;
        char key[512];
        snprintf(key, sizeof key, "%s#exif_transposed/resized_rgb", f->valuestring);
        if (blipc__st_find(golden, key)) {
            check_golden(f->valuestring, 1);
            n_exif++;
        } else {
            /* no orientation: exif_transpose must not change anything */
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "exif_orientation");
            CHECK(!cJSON_IsNumber(o) || o->valueint == 1);
        }
    }
    cJSON_Delete(root);
    CHECK_EQ_INT(n_plain, 24);
    CHECK_EQ_INT(n_exif, 2);
    /* and every golden key belongs to an image we checked */
    size_t keys = 0;
    for (size_t i = 0; i < blipc__st_count(golden); i++)
        if (strstr(blipc__st_at(golden, i)->name, "/resized_rgb")) keys++;
    CHECK_EQ_INT(keys, (size_t)(n_plain + n_exif));
}

TEST(exif_transpose_swaps_dimensions) {
    /* exif_transpose with orientation 6 swaps the dimensions */
    char err[1024] = "";
    blipc_image *a = load(fixture_image("exif_orient6.jpg"), 0, err, sizeof err);
    blipc_image *b = load(fixture_image("exif_orient6.jpg"), 1, err, sizeof err);
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ_INT(blipc_image_width(a), 320);
        CHECK_EQ_INT(blipc_image_height(a), 200);
        CHECK_EQ_INT(blipc_image_width(b), 200);
        CHECK_EQ_INT(blipc_image_height(b), 320);
    }
    blipc_image_free(a);
    blipc_image_free(b);
}

TEST(lut_matches_pixel_value_per_byte) {
    blipc_preproc_config cfg;
    blipc_err e;
    blipc__err_clear(&e);
    CHECK_STATUS(blipc__preproc_config_load(img_dir(), &cfg, &e), BLIPC_OK, e.msg);
    const blipc_st_tensor *t = blipc__st_find(golden, "lut/pixel_value_per_byte");
    CHECK(t && t->dtype == BLIPC_DT_F32 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 256);
    if (!t) return;
    float lut[3][256];
    blipc__preproc_lut(&cfg, lut);
    CHECK(memcmp(lut, t->data, sizeof lut) == 0);
    /* the defaults are the same numbers as the checkpoint's file */
    blipc_preproc_config def;
    blipc__preproc_config_default(&def);
    float lut2[3][256];
    blipc__preproc_lut(&def, lut2);
    CHECK(memcmp(lut2, t->data, sizeof lut2) == 0);
}

/* ------------------------------------------------------------- Pillow */

/* Runs tests/tools/pil_reference.py over files into outdir; 0 ok, 77 no Pillow. */
static int run_pil(const char *outdir, int exif, char **files, int n) {
    const char *py = getenv("BLIPC_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    const char *tool = th_testdata("../tools/pil_reference.py");
    size_t cap = 8192;
    for (int i = 0; i < n; i++) cap += strlen(files[i]) + 4;
    char *cmd = malloc(cap);
    if (!cmd) return -1;
    int pos = snprintf(cmd, cap, "'%s' '%s' '%s'%s", py, tool, outdir, exif ? " --exif" : "");
    for (int i = 0; i < n; i++) pos += snprintf(cmd + pos, cap - (size_t)pos, " '%s'", files[i]);
    int rc = system(cmd);
    free(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

/* compares our decode of `path` with OUTDIR/basename.ref */
static void compare_with_ref(const char *path, const char *outdir, int exif) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char refp[4096];
    snprintf(refp, sizeof refp, "%s/%s.ref", outdir, base);
    size_t n;
    char *ref = th_read_file(refp, &n);
    CHECKF(ref != NULL, "no Pillow reference for %s", path);
    if (!ref) return;
    char err[1024] = "";
    blipc_image *img = load(path, exif, err, sizeof err);
    if (strncmp(ref, "error", 5) == 0) {
        CHECKF(img == NULL, "%s: Pillow refuses it (%s) but we decoded it", path, ref);
        blipc_image_free(img);
        free(ref);
        return;
    }
    CHECKF(img != NULL, "%s: %s", path, err);
    int w, h, dw, dh;
    char *nl = memchr(ref, '\n', n);
    if (!img || !nl || sscanf(ref, "%d %d %d %d", &w, &h, &dw, &dh) != 4) {
        CHECK(nl != NULL);
        blipc_image_free(img);
        free(ref);
        return;
    }
    const uint8_t *dec = (const uint8_t *)nl + 1;
    const uint8_t *res = dec + (size_t)w * h * 3;
    CHECKF((size_t)(nl + 1 - ref) + (size_t)w * h * 3 + (size_t)dw * dh * 3 == n, "%s: bad reference file", refp);
    CHECKF(blipc_image_width(img) == w && blipc_image_height(img) == h, "%s%s: %dx%d, Pillow %dx%d", base,
           exif ? " (exif)" : "", blipc_image_width(img), blipc_image_height(img), w, h);
    if (blipc_image_width(img) == w && blipc_image_height(img) == h) {
        int maxd;
        size_t nd = count_diff(blipc_image_rgb(img), dec, (size_t)w * h * 3, &maxd);
        CHECKF(nd == 0, "%s%s: decoded RGB differs from Pillow in %zu bytes (max %d)", base, exif ? " (exif)" : "",
               nd, maxd);
        uint8_t *out = malloc((size_t)dw * dh * 3);
        blipc_err e;
        blipc__err_clear(&e);
        CHECK_STATUS(blipc__resize_bicubic_rgb(blipc_image_rgb(img), w, h, 0, out, dw, dh, &e), BLIPC_OK, e.msg);
        nd = count_diff(out, res, (size_t)dw * dh * 3, &maxd);
        CHECKF(nd == 0, "%s%s: resized RGB differs from Pillow in %zu bytes (max %d)", base, exif ? " (exif)" : "", nd,
               maxd);
        free(out);
    }
    blipc_image_free(img);
    free(ref);
}

static int list_dir(const char *dir, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 64;
    char **v = malloc(sizeof *v * cap);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *x = strrchr(de->d_name, '.');
        if (!x || !(strcmp(x, ".png") == 0 || strcmp(x, ".jpg") == 0 || strcmp(x, ".gif") == 0 ||
                    strcmp(x, ".bmp") == 0))
            continue;
        if (n == cap) v = realloc(v, sizeof *v * (cap *= 2));
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        v[n] = malloc(len);
        snprintf(v[n], len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    *out = v;
    return n;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void compare_dir_with_pillow(const char *dir, int min_files) {
    char **files = NULL;
    int n = list_dir(dir, &files);
    CHECKF(n >= min_files, "only %d images in %s", n, dir);
    for (int exif = 0; exif <= 1; exif++) {
        char outdir[4200];
        static int k;
        snprintf(outdir, sizeof outdir, "%s/pil%d_%d", th_tmpdir(), exif, k++);
        mkdir(outdir, 0700);
        int rc = run_pil(outdir, exif, files, n);
        if (rc == 77) {
            fprintf(stderr, "  note: python3-pil absent, Pillow comparison skipped\n");
            break;
        }
        CHECKF(rc == 0, "pil_reference.py failed (%d)", rc);
        if (rc) break;
        for (int i = 0; i < n; i++) compare_with_ref(files[i], outdir, exif);
    }
    free_list(files, n);
}

TEST(more_images_decode_and_resize_like_pillow) { compare_dir_with_pillow(th_fixture("more-images"), 20); }

/* small GIFs made with Pillow: transparency index, interlace + full LZW table,
 * bilevel (no palette needed), a frame smaller than the screen, animation */
TEST(gifs_decode_like_pillow) { compare_dir_with_pillow(th_testdata("gif"), 6); }

/* small BMPs made with Pillow: 24-bit, 32-bit, 8-bit gray, 4/8-bit palette, 1-bit, top-down */
TEST(bmps_decode_like_pillow) { compare_dir_with_pillow(th_testdata("bmp"), 7); }

/* PNG variants: 1/2/4/16-bit gray, 16-bit LA/RGBA, tRNS, short palettes, Adam7 */
TEST(pngs_decode_like_pillow) { compare_dir_with_pillow(th_testdata("png"), 11); }

/* PNGs carrying an EXIF orientation, written with libpng: how = 0 eXIf chunk,
 * 1 "Raw profile type exif" text (hex), 2 XMP text with tiff:Orientation.
 * exif_transpose must give Pillow's ImageOps.exif_transpose result. */
static int write_png_with_orientation(const char *path, int w, int h, int orientation, int how) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* big-endian TIFF: IFD0 with one entry, Orientation SHORT = orientation */
    png_byte exif[26] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (png_byte)orientation,
                         0, 0, 0, 0, 0, 0};
    char text[256];
    png_text t;
    memset(&t, 0, sizeof t);
    if (how == 0) {
        png_set_eXIf_1(png, info, sizeof exif, exif);
    } else if (how == 1) {
        int pos = snprintf(text, sizeof text, "\nexif\n      32\n457869660000");
        for (size_t i = 0; i < sizeof exif; i++) pos += snprintf(text + pos, sizeof text - (size_t)pos, "%02x", exif[i]);
        t.compression = PNG_TEXT_COMPRESSION_NONE;
        t.key = (char *)"Raw profile type exif";
        t.text = text;
        png_set_text(png, info, &t, 1);
    } else {
        snprintf(text, sizeof text,
                 "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF><rdf:Description tiff:Orientation=\"%d\"/>"
                 "</rdf:RDF></x:xmpmeta>",
                 orientation);
        t.compression = PNG_ITXT_COMPRESSION_NONE;
        t.key = (char *)"XML:com.adobe.xmp";
        t.text = text;
        png_set_text(png, info, &t, 1);
    }
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)w * 3);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            row[3 * x] = (uint8_t)(x * 37 + y * 11);
            row[3 * x + 1] = (uint8_t)(y * 53);
            row[3 * x + 2] = (uint8_t)(x * y * 7 + orientation);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return fclose(f);
}

TEST(exif_all_eight_orientations_like_pillow) {
    /* 0..7: eXIf with orientation 1..8; 8, 9: raw-profile text; 10, 11: XMP */
    char *files[12];
    const int orient[12] = {1, 2, 3, 4, 5, 6, 7, 8, 3, 6, 5, 8}, how[12] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2};
    for (int k = 0; k < 12; k++) {
        files[k] = malloc(4200);
        snprintf(files[k], 4200, "%s/orient%d_%d.png", th_tmpdir(), orient[k], how[k]);
        CHECK(write_png_with_orientation(files[k], 7, 4, orient[k], how[k]) == 0);
    }
    char outdir[4200];
    snprintf(outdir, sizeof outdir, "%s/pil_orient", th_tmpdir());
    mkdir(outdir, 0700);
    int rc = run_pil(outdir, 1, files, 12);
    if (rc == 77) {
        fprintf(stderr, "  note: python3-pil absent, skipped\n");
    } else {
        CHECKF(rc == 0, "pil_reference.py failed (%d)", rc);
        for (int k = 0; k < 12 && rc == 0; k++) compare_with_ref(files[k], outdir, 1);
    }
    /* without exif_transpose the stored layout is kept */
    char err[1024];
    blipc_image *img = load(files[5], 0, err, sizeof err);
    CHECK(img && blipc_image_width(img) == 7 && blipc_image_height(img) == 4);
    blipc_image_free(img);
    img = load(files[5], 1, err, sizeof err);
    CHECK(img && blipc_image_width(img) == 4 && blipc_image_height(img) == 7);
    blipc_image_free(img);
    /* the text forms were really used (not just orientation 1) */
    for (int k = 9; k < 12; k++) {
        img = load(files[k], 1, err, sizeof err);
        CHECK(img && blipc_image_width(img) == 4 && blipc_image_height(img) == 7);
        blipc_image_free(img);
    }
    for (int k = 0; k < 12; k++) free(files[k]);
}

TEST(exif_parser_rejects_malformed_blocks) {
    const uint8_t good[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0};
    CHECK_EQ_INT(blipc__exif_orientation(good, sizeof good), 6);
    /* every truncation is handled without reading out of bounds */
    for (size_t n = 0; n < sizeof good; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, good, n);
        CHECK_EQ_INT(blipc__exif_orientation(cut, n), 0);
        free(cut);
    }
    uint8_t bad[sizeof good];
    memcpy(bad, good, sizeof good);
    bad[10] = 0xF0; /* IFD offset far past the end */
    CHECK_EQ_INT(blipc__exif_orientation(bad, sizeof bad), 0);
    memcpy(bad, good, sizeof good);
    bad[14] = 0xFF; /* entry count larger than the data, and no orientation entry */
    bad[16] = 0x13;
    CHECK_EQ_INT(blipc__exif_orientation(bad, sizeof bad), 0);
    memcpy(bad, good, sizeof good);
    bad[24] = 9; /* out of range value */
    CHECK_EQ_INT(blipc__exif_orientation(bad, sizeof bad), 0);
    memcpy(bad, good, sizeof good);
    bad[6] = 'X'; /* bad byte order mark */
    CHECK_EQ_INT(blipc__exif_orientation(bad, sizeof bad), 0);
    CHECK_EQ_INT(blipc__exif_orientation(NULL, 10), 0);
}

/* ------------------------------------------------------------- bad input */

static blipc_status load_bytes(const void *d, size_t n, const char *fname, uint64_t max_pixels, char *err, size_t errsz) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", th_tmpdir(), fname);
    if (th_write_file(path, d, n) != 0) return BLIPC_ERR_INTERNAL;
    blipc_image_params p;
    blipc_image_default_params(&p);
    p.max_pixels = max_pixels;
    blipc_image *img = NULL;
    blipc_status st = blipc_image_load_file(path, &p, &img, err, errsz);
    if (st == BLIPC_OK) CHECK(img != NULL);
    else CHECK(img == NULL);
    blipc_image_free(img);
    return st;
}

TEST(rejects_text_file_naming_it) {
    char err[1024];
    const char txt[] = "<!DOCTYPE html><html>not an image</html>";
    CHECK_STATUS(load_bytes(txt, sizeof txt - 1, "photo.jpg", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "photo.jpg");
    CHECK_CONTAINS(err, "not a JPEG/PNG/BMP/GIF image");
    CHECK_CONTAINS(err, "3c 21 44 4f");
}

TEST(rejects_empty_and_missing_files) {
    char err[1024];
    CHECK_STATUS(load_bytes("", 0, "empty.png", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "empty.png");
    CHECK_CONTAINS(err, "empty");
    blipc_image *img = (blipc_image *)1;
    CHECK_STATUS(blipc_image_load_file("/nonexistent/dir/x.jpg", NULL, &img, err, sizeof err), BLIPC_ERR_IO, err);
    CHECK(img == NULL);
    CHECK_CONTAINS(err, "/nonexistent/dir/x.jpg");
    CHECK_STATUS(blipc_image_load_memory(NULL, 0, NULL, &img, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_STATUS(blipc_image_load_file(NULL, NULL, &img, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    CHECK_STATUS(blipc_image_load_file("x", NULL, NULL, NULL, 0), BLIPC_ERR_INVALID_ARG, "");
}

TEST(rejects_truncated_files) {
    const char *names[] = {"images/hopper.jpg", "images/progressive.jpg", "images/chelsea.png", "images/tiny_7x5.png",
                           "more-images/palette.gif", "more-images/bmp_24.bmp"};
    char cutdir[4200];
    snprintf(cutdir, sizeof cutdir, "%s/cuts", th_tmpdir());
    mkdir(cutdir, 0700);
    for (int i = 0; i < 6; i++) {
        size_t n;
        char *d = th_read_file(th_fixture(names[i]), &n);
        CHECK(d != NULL);
        if (!d) continue;
        const size_t cuts[] = {n / 2, n * 9 / 10, 40, 12};
        for (int c = 0; c < 4; c++) {
            char err[1024] = "", fname[64];
            snprintf(fname, sizeof fname, "cut%d_%s", c, strchr(names[i], '/') + 1);
            blipc_status st = load_bytes(d, cuts[c], fname, 0, err, sizeof err);
            char cutpath[4200];
            snprintf(cutpath, sizeof cutpath, "%s/cuts/%s", th_tmpdir(), fname);
            CHECK(th_write_file(cutpath, d, cuts[c]) == 0);
            if (c == 1) continue; /* 90%: Pillow decides (a PNG may lose only its zlib checksum + IEND) */
            CHECKF(st == BLIPC_ERR_FORMAT, "%s cut at %zu: status %d (%s)", names[i], cuts[c], st, err);
            CHECK_CONTAINS(err, fname);
            if (c == 0) CHECK_CONTAINS(err, "truncated");
        }
        free(d);
    }
    /* Pillow agrees on every cut: refuses the same ones, same pixels otherwise */
    compare_dir_with_pillow(cutdir, 24);
}

TEST(rejects_corrupt_data) {
    char err[1024];
    size_t n;
    /* PNG whose IHDR CRC is wrong */
    char *d = th_read_file(fixture_image("tiny_7x5.png"), &n);
    CHECK(d && n > 40);
    if (d) {
        d[29] ^= 0x55;
        CHECK_STATUS(load_bytes(d, n, "badcrc.png", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
        CHECK_CONTAINS(err, "badcrc.png: corrupt PNG data");
        free(d);
    }
    /* JPEG with its entropy-coded data replaced by a marker storm / garbage header */
    d = th_read_file(fixture_image("hopper.jpg"), &n);
    CHECK(d != NULL);
    if (d) {
        memset(d + 4, 0xFF, 40); /* destroys the first segments */
        CHECK_STATUS(load_bytes(d, n, "garbage.jpg", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
        CHECK_CONTAINS(err, "garbage.jpg");
        free(d);
    }
    /* GIF and BMP signatures followed by nonsense */
    /* a 2x2 GIF whose LZW data starts with a code that is not a literal */
    const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
                           ',', 0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 1, 0x07, 0, ';'};
    CHECK_STATUS(load_bytes(gif, sizeof gif, "bad.gif", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "bad.gif: corrupt GIF data");
    CHECK_STATUS(load_bytes("GIF89a\x01\x00", 8, "short.gif", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "short.gif: truncated GIF data");
    CHECK_STATUS(load_bytes("BM\x00\x00\x00\x00\x00", 7, "bad.bmp", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "bad.bmp");
    CHECK_STATUS(load_bytes("RIFF\0\0\0\0WEBPVP8 ", 16, "x.webp", 0, err, sizeof err), BLIPC_ERR_UNSUPPORTED, err);
    CHECK_CONTAINS(err, "WebP");
}

/* Corrupting random bytes of real files never crashes or leaks (run under
 * ASan), and we accept / refuse exactly the variants Pillow accepts / refuses,
 * with the same pixels when accepted. */
TEST(random_corruption_agrees_with_pillow) {
    const char *names[] = {"images/hopper.jpg",        "images/tiny_7x5.png",      "images/gray16.png",
                           "images/palette_trns.png",  "images/bilevel_1bit.png",  "images/progressive.jpg",
                           "images/pil_sample_cmyk.jpg", "images/exif_orient6.jpg", "more-images/palette.gif",
                           "more-images/bmp_24.bmp"};
    const int nnames = (int)(sizeof names / sizeof names[0]);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/fuzz", th_tmpdir());
    mkdir(dir, 0700);
    uint32_t seed = 12345;
    int files = 0;
    for (int i = 0; i < nnames; i++) {
        size_t n;
        char *orig = th_read_file(th_fixture(names[i]), &n);
        CHECK(orig != NULL);
        if (!orig) continue;
        /* GIF/BMP: corrupt the headers and the first data blocks */
        const size_t span = (n > 2000 && strstr(names[i], "more-images")) ? 2000 : n;
        char *d = malloc(n);
        for (int it = 0; it < 30; it++) {
            memcpy(d, orig, n);
            int flips = 1 + it % 4;
            for (int f = 0; f < flips; f++) {
                seed = seed * 1664525u + 1013904223u;
                size_t pos = 2 + (seed >> 8) % (span - 2);
                seed = seed * 1664525u + 1013904223u;
                d[pos] = (char)(seed >> 24);
            }
            blipc_image_params p;
            blipc_image_default_params(&p);
            p.exif_transpose = it & 1;
            blipc_image *img = NULL;
            char err[1024] = "";
            blipc_status st = blipc_image_load_memory(d, n, &p, &img, err, sizeof err);
            if (st == BLIPC_OK) CHECK(img && blipc_image_width(img) > 0 && blipc_image_height(img) > 0);
            else CHECK(img == NULL && strstr(err, "<memory>") != NULL);
            blipc_image_free(img);
            char path[4300];
            snprintf(path, sizeof path, "%s/%02d_%s", dir, it, strchr(names[i], '/') + 1);
            CHECK(th_write_file(path, d, n) == 0);
            files++;
        }
        free(d);
        free(orig);
    }
    compare_dir_with_pillow(dir, files);
}

/* PNG / JPEG headers claiming a 0-pixel dimension */
TEST(rejects_zero_sized_images) {
    char err[1024];
    size_t n;
    char *d = th_read_file(fixture_image("tiny_7x5.png"), &n);
    CHECK(d != NULL);
    if (d) {
        memset(d + 16, 0, 4); /* IHDR width = 0 */
        CHECK_STATUS(load_bytes(d, n, "zero.png", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
        CHECK_CONTAINS(err, "zero.png: 0x5 image");
        free(d);
    }
    d = th_read_file(fixture_image("hopper.jpg"), &n);
    CHECK(d != NULL);
    if (d) {
        /* find SOF0 (FFC0) and zero its height */
        int found = 0;
        for (size_t i = 2; i + 9 < n; i++) {
            if ((uint8_t)d[i] == 0xFF && (uint8_t)d[i + 1] == 0xC0) {
                d[i + 5] = d[i + 6] = 0;
                found = 1;
                break;
            }
        }
        CHECK(found);
        CHECK_STATUS(load_bytes(d, n, "zero.jpg", 0, err, sizeof err), BLIPC_ERR_FORMAT, err);
        CHECK_CONTAINS(err, "zero.jpg: 0x0 image");
        free(d);
    }
}

TEST(refuses_images_over_the_pixel_limit) {
    const char *names[] = {"hopper.jpg", "astronaut.png"};
    const int dims[][2] = {{128, 128}, {512, 512}};
    for (int i = 0; i < 2; i++) {
        size_t n;
        char *d = th_read_file(fixture_image(names[i]), &n);
        CHECK(d != NULL);
        if (!d) continue;
        char err[1024], want[64];
        uint64_t px = (uint64_t)dims[i][0] * dims[i][1];
        CHECK_STATUS(load_bytes(d, n, names[i], px - 1, err, sizeof err), BLIPC_ERR_LIMIT, err);
        snprintf(want, sizeof want, "%dx%d", dims[i][0], dims[i][1]);
        CHECK_CONTAINS(err, want);
        CHECK_CONTAINS(err, names[i]);
        CHECK_CONTAINS(err, "limit");
        CHECK_STATUS(load_bytes(d, n, names[i], px, err, sizeof err), BLIPC_OK, err);
        free(d);
    }
    /* a PNG header claiming 100000 x 100000 is refused before allocating anything */
    size_t n;
    char *d = th_read_file(fixture_image("tiny_7x5.png"), &n);
    if (d) {
        const uint8_t big[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};
        memcpy(d + 16, big, 8);
        char err[1024];
        CHECK_STATUS(load_bytes(d, n, "bomb.png", 0, err, sizeof err), BLIPC_ERR_LIMIT, err);
        CHECK_CONTAINS(err, "100000x100000");
        free(d);
    }
}

/* ------------------------------------------------------------- API */

TEST(from_rgb_copies_with_stride_and_accessors) {
    uint8_t buf[2 * 16];
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    blipc_image *img = NULL;
    char err[256];
    CHECK_STATUS(blipc_image_from_rgb(buf, 3, 2, 16, &img, err, sizeof err), BLIPC_OK, err);
    CHECK(img && blipc_image_width(img) == 3 && blipc_image_height(img) == 2);
    if (img) {
        const uint8_t *p = blipc_image_rgb(img);
        CHECK(memcmp(p, buf, 9) == 0 && memcmp(p + 9, buf + 16, 9) == 0);
    }
    blipc_image_free(img);
    CHECK_STATUS(blipc_image_from_rgb(buf, 3, 2, 5, &img, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    CHECK_CONTAINS(err, "stride");
    CHECK_STATUS(blipc_image_from_rgb(buf, 0, 2, 0, &img, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    CHECK_CONTAINS(err, "0x2");
    CHECK_STATUS(blipc_image_from_rgb(NULL, 3, 2, 0, &img, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    blipc_image_free(NULL);
    CHECK(blipc_image_width(NULL) == 0 && blipc_image_rgb(NULL) == NULL);
    blipc_image_params p;
    blipc_image_default_params(&p);
    CHECK(p.max_pixels == 178956970u && p.exif_transpose == 0);
}

TEST(load_memory_equals_load_file) {
    size_t n;
    char *d = th_read_file(fixture_image("rocket.jpg"), &n);
    CHECK(d != NULL);
    if (!d) return;
    blipc_image *a = NULL, *b = NULL;
    char err[1024];
    CHECK_STATUS(blipc_image_load_memory(d, n, NULL, &a, err, sizeof err), BLIPC_OK, err);
    CHECK_STATUS(blipc_image_load_file(fixture_image("rocket.jpg"), NULL, &b, err, sizeof err), BLIPC_OK, err);
    CHECK(a && b && blipc_image_width(a) == 640 && blipc_image_height(a) == 427);
    if (a && b) CHECK(memcmp(blipc_image_rgb(a), blipc_image_rgb(b), 640 * 427 * 3) == 0);
    blipc_image_free(a);
    blipc_image_free(b);
    free(d);
}

/* resized_rgb of an image from from_rgb equals the golden too (no decoder involved) */
TEST(preprocess_from_rgb_and_no_resize_path) {
    char err[1024];
    blipc_image *img = load(fixture_image("exact_224.png"), 0, err, sizeof err);
    CHECK(img != NULL);
    if (!img) return;
    blipc_preproc_config cfg;
    blipc__preproc_config_default(&cfg);
    cfg.do_resize = 0;
    static float pv[3 * SZ * SZ];
    blipc_err e;
    blipc__err_clear(&e);
    CHECK_STATUS(blipc__preprocess_image(img, &cfg, pv, NULL, &e), BLIPC_OK, e.msg);
    const float *want = golden_tensor("exact_224.png/pixel_values", BLIPC_DT_F32, 3, SZ, SZ);
    if (want) CHECK(memcmp(pv, want, sizeof pv) == 0);
    blipc_image_free(img);
    /* a non-224 image with do_resize = false is an error naming both sizes */
    img = load(fixture_image("hopper.jpg"), 0, err, sizeof err);
    CHECK(img != NULL);
    CHECK_STATUS(blipc__preprocess_image(img, &cfg, pv, NULL, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK_CONTAINS(e.msg, "128x128");
    blipc_image_free(img);
}

TEST(preproc_config_parse_defaults_and_errors) {
    blipc_preproc_config c, def;
    blipc__preproc_config_default(&def);
    blipc_err e;
    blipc__err_clear(&e);
    CHECK_STATUS(blipc__preproc_config_parse("{}", 2, "p.json", &c, &e), BLIPC_OK, e.msg);
    CHECK(memcmp(&c, &def, sizeof c) == 0);
    const char *j1 = "{\"size\": {\"height\": 364, \"width\": 300}, \"image_mean\": 0.5, \"image_std\": [1, 2, 4],"
                     " \"do_normalize\": false, \"rescale_factor\": 0.5}";
    CHECK_STATUS(blipc__preproc_config_parse(j1, strlen(j1), "p.json", &c, &e), BLIPC_OK, e.msg);
    CHECK(c.height == 364 && c.width == 300 && c.mean[2] == 0.5f && c.std[1] == 2.0f && !c.do_normalize &&
          c.rescale_factor == 0.5 && c.do_resize);
    struct {
        const char *json;
        blipc_status st;
        const char *needle;
    } bad[] = {
        {"{\"do_resize\": 1}", BLIPC_ERR_FORMAT, "\"do_resize\""},
        {"{\"image_mean\": [0.1, 0.2]}", BLIPC_ERR_FORMAT, "\"image_mean\""},
        {"{\"image_std\": [0.1, 0, 0.2]}", BLIPC_ERR_FORMAT, "\"image_std\"[1]"},
        {"{\"image_std\": [0.1, \"x\", 0.2]}", BLIPC_ERR_FORMAT, "\"image_std\"[1]"},
        {"{\"size\": {\"shortest_edge\": 224}}", BLIPC_ERR_UNSUPPORTED, "shortest_edge"},
        {"{\"size\": {\"height\": 22.5, \"width\": 3}}", BLIPC_ERR_FORMAT, "size.height"},
        {"{\"size\": \"224\"}", BLIPC_ERR_FORMAT, "\"size\""},
        {"{\"resample\": 2}", BLIPC_ERR_UNSUPPORTED, "resample"},
        {"{\"resample\": \"bicubic\"}", BLIPC_ERR_FORMAT, "resample"},
        {"{\"rescale_factor\": -1}", BLIPC_ERR_FORMAT, "rescale_factor"},
        {"{\"do_center_crop\": true}", BLIPC_ERR_UNSUPPORTED, "do_center_crop"},
        {"[1, 2]", BLIPC_ERR_FORMAT, "object"},
        {"{\"size\": ", BLIPC_ERR_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        blipc__err_clear(&e);
        blipc_status st = blipc__preproc_config_parse(bad[i].json, strlen(bad[i].json), "p.json", &c, &e);
        CHECKF(st == bad[i].st, "%s: status %d (%s)", bad[i].json, st, e.msg);
        CHECK_CONTAINS(e.msg, "p.json");
        CHECK_CONTAINS(e.msg, bad[i].needle);
    }
    /* file and directory forms; a missing file is an I/O error naming it */
    CHECK_STATUS(blipc__preproc_config_load(fixture_image("preprocessor_config.json"), &c, &e), BLIPC_OK, e.msg);
    CHECK(c.height == 224 && c.width == 224 && c.resample == 3 && c.mean[0] == 0.48145466f);
    CHECK_STATUS(blipc__preproc_config_load("/nonexistent-dir/preprocessor_config.json", &c, &e), BLIPC_ERR_IO, e.msg);
    CHECK_CONTAINS(e.msg, "/nonexistent-dir/preprocessor_config.json");
    CHECK_STATUS(blipc__preproc_config_load(th_tmpdir(), &c, &e), BLIPC_ERR_IO, e.msg);
    CHECK_CONTAINS(e.msg, "preprocessor_config.json");
}

TEST(resize_coefficients_are_normalised) {
    const int cases[][2] = {{640, 224}, {7, 224}, {2400, 224}, {224, 224}, {1, 224}, {225, 224}, {100000, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        blipc_resize_coeffs c;
        blipc_err e;
        blipc__err_clear(&e);
        CHECK_STATUS(blipc__resize_coeffs_init(&c, cases[i][0], cases[i][1], &e), BLIPC_OK, e.msg);
        for (int o = 0; o < c.out; o++) {
            int64_t s = 0;
            for (int j = 0; j < c.count[o]; j++) s += c.k[c.off[o] + (size_t)j];
            /* each weight is rounded separately: the sum is 2^22 within count/2 */
            CHECKF(llabs(s - (1 << 22)) <= c.count[o], "%d->%d out %d: sum %lld", c.in, c.out, o, (long long)s);
            CHECK(c.start[o] >= 0 && c.start[o] + c.count[o] <= c.in);
        }
        blipc__resize_coeffs_free(&c);
    }
    blipc_resize_coeffs c;
    CHECK_STATUS(blipc__resize_coeffs_init(&c, 0, 5, NULL), BLIPC_ERR_INVALID_ARG, "");
}

int main(void) {
    const char *st_path = fixture_image("preprocess.safetensors");
    th_require_file(st_path);
    blipc_err e;
    blipc__err_clear(&e);
    if (blipc__st_open_file(st_path, &golden, &e) != BLIPC_OK) {
        fprintf(stderr, "cannot open %s: %s\n", st_path, e.msg);
        return 1;
    }
    RUN(golden_every_fixture_image_bit_exact);
    RUN(exif_transpose_swaps_dimensions);
    RUN(lut_matches_pixel_value_per_byte);
    RUN(more_images_decode_and_resize_like_pillow);
    RUN(gifs_decode_like_pillow);
    RUN(bmps_decode_like_pillow);
    RUN(pngs_decode_like_pillow);
    RUN(exif_all_eight_orientations_like_pillow);
    RUN(exif_parser_rejects_malformed_blocks);
    RUN(rejects_text_file_naming_it);
    RUN(rejects_empty_and_missing_files);
    RUN(rejects_truncated_files);
    RUN(rejects_corrupt_data);
    RUN(random_corruption_agrees_with_pillow);
    RUN(rejects_zero_sized_images);
    RUN(refuses_images_over_the_pixel_limit);
    RUN(from_rgb_copies_with_stride_and_accessors);
    RUN(load_memory_equals_load_file);
    RUN(preprocess_from_rgb_and_no_resize_path);
    RUN(preproc_config_parse_defaults_and_errors);
    RUN(resize_coefficients_are_normalised);
    blipc__st_free(golden);
    return th_finish();
}
