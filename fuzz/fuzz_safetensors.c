/* fuzz_safetensors — the safetensors reader on arbitrary bytes held in memory.
 * Every tensor the header declares (and accepts) is then read back through
 * every accessor, so a header that lies about shapes/offsets/dtypes and still
 * passes validation would make ASan fire here. */
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy: the reader must never read past `size` (ASan sees the
     * exact bounds of a malloc'd block) and never write into the buffer. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);

    blipc_safetensors *st = NULL;
    blipc_err e = {0};
    blipc_status rc = blipc__st_open_memory(buf, size, "fuzz.safetensors", &st, &e);
    fuzz_check_status("st_open_memory", rc, &e);
    if (rc == BLIPC_OK) {
        if (!st) abort();
        (void)blipc__st_metadata(st, "format");
        (void)blipc__st_metadata(st, "");
        size_t n = blipc__st_count(st);
        for (size_t i = 0; i < n; i++) {
            const blipc_st_tensor *t = blipc__st_at(st, i);
            if (!t || !t->name || t->ndim < 0 || t->ndim > BLIPC_ST_MAX_DIMS || t->dtype >= BLIPC_DT_COUNT) abort();
            if (blipc__st_find(st, t->name) != t) abort();
            if (t->nbytes != (size_t)t->numel * blipc__dtype_size(t->dtype)) abort();
            if (t->nbytes && ((const uint8_t *)t->data < buf || (const uint8_t *)t->data + t->nbytes > buf + size))
                abort();
            (void)blipc__st_file_name(st, t->file);
            /* touch every byte so ASan checks the range */
            volatile uint8_t sink = 0;
            for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
            (void)sink;

            const float *f;
            blipc_err e2 = {0};
            rc = blipc__st_get_f32(st, t->name, t->ndim, t->shape, &f, &e2);
            fuzz_check_status("st_get_f32", rc, &e2);
            if (rc == BLIPC_OK && t->numel > 0) {
                volatile float s = 0;
                for (int64_t k = 0; k < t->numel; k++) s += f[k];
                (void)s;
            }
            /* a wrong expected shape must be an error naming the tensor */
            int64_t wrong[1] = {t->numel + 1};
            blipc_err e3 = {0};
            rc = blipc__st_get_f32(st, t->name, 1, wrong, &f, &e3);
            if (rc == BLIPC_OK || !e3.msg[0] || (strlen(t->name) < 200 && !strstr(e3.msg, t->name))) {
                fprintf(stderr, "wrong shape accepted or message without the name: %s\n", e3.msg);
                abort();
            }
            const uint16_t *h;
            blipc_err e4 = {0};
            rc = blipc__st_get_bf16(st, t->name, -1, NULL, &h, &e4);
            fuzz_check_status("st_get_bf16", rc, &e4);
            const int64_t *iv;
            const blipc_st_tensor *info;
            blipc_err e5 = {0};
            rc = blipc__st_get_i64(st, t->name, &iv, &info, &e5);
            fuzz_check_status("st_get_i64", rc, &e5);
            if (rc == BLIPC_OK && t->numel > 0) {
                volatile int64_t s = 0;
                for (int64_t k = 0; k < t->numel; k++) s ^= iv[k];
                (void)s;
            }
        }
        const float *f;
        blipc_err e6 = {0};
        rc = blipc__st_get_f32(st, "no such tensor \x01", -1, NULL, &f, &e6);
        if (rc == BLIPC_OK) abort();
        fuzz_check_status("st_get_f32(missing)", rc, &e6);
        blipc__st_free(st);
    } else if (st) {
        abort(); /* a failed open hands nothing out */
    }
    free(buf);
    return 0;
}
