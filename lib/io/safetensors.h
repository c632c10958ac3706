/* safetensors.h — validated, memory-mapped safetensors reader (single file or
 * sharded via model.safetensors.index.json) and a small writer for dumps.
 *
 * Everything in the header is validated before it is trusted: header length
 * bound, well-formed JSON, known dtype, shape product x dtype size == byte range,
 * ranges inside the file and not overlapping. F32 tensors are used in place
 * (zero-copy); F16/BF16/F64 are converted exactly into buffers the reader owns. */
#ifndef BLIPC_IO_SAFETENSORS_H
#define BLIPC_IO_SAFETENSORS_H

#include "err.h"
#include "fileutil.h"
#include <stdint.h>

typedef enum blipc_dtype {
    BLIPC_DT_F32 = 0,
    BLIPC_DT_F16,
    BLIPC_DT_BF16,
    BLIPC_DT_F64,
    BLIPC_DT_I64,
    BLIPC_DT_I32,
    BLIPC_DT_I16,
    BLIPC_DT_I8,
    BLIPC_DT_U8,
    BLIPC_DT_BOOL,
    BLIPC_DT_COUNT
} blipc_dtype;

#define BLIPC_ST_MAX_DIMS 8

typedef struct blipc_st_tensor {
    char *name;
    blipc_dtype dtype;
    int ndim;
    int64_t shape[BLIPC_ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;   /* inside the mapping (read-only) */
    int file;           /* index into the reader's files */
} blipc_st_tensor;

typedef struct blipc_safetensors blipc_safetensors;

size_t blipc__dtype_size(blipc_dtype dt);
const char *blipc__dtype_name(blipc_dtype dt);

/* Open one .safetensors file (mmap). */
blipc_status blipc__st_open_file(const char *path, blipc_safetensors **out, blipc_err *e);
/* Parse a safetensors image held in memory (not copied: must outlive the reader).
 * `name` is used in messages. */
blipc_status blipc__st_open_memory(const void *data, size_t size, const char *name, blipc_safetensors **out,
                                   blipc_err *e);
/* Open the weights of a HF model directory: model.safetensors, or
 * model.safetensors.index.json + the shards its weight_map names. When `prefix`
 * is not NULL, also accepts <prefix>.safetensors (e.g. "model"). */
blipc_status blipc__st_open_dir(const char *dir, blipc_safetensors **out, blipc_err *e);
void blipc__st_free(blipc_safetensors *st);

size_t blipc__st_count(const blipc_safetensors *st);
const blipc_st_tensor *blipc__st_at(const blipc_safetensors *st, size_t i);
const blipc_st_tensor *blipc__st_find(const blipc_safetensors *st, const char *name);
/* The file a tensor lives in (for messages). */
const char *blipc__st_file_name(const blipc_safetensors *st, int file);
/* Value of a __metadata__ key (NULL if absent). First file only. */
const char *blipc__st_metadata(const blipc_safetensors *st, const char *key);

/* Fetch a tensor as float32 with an exact expected shape (ndim dims; pass
 * ndim = -1 to accept any shape). F32 data is returned in place when aligned;
 * F16/BF16/F64 (and unaligned F32) are converted into a buffer owned by the
 * reader. Errors name the tensor and file ("missing tensor X in DIR",
 * "tensor X: shape [a,b], expected [c,d]"). */
blipc_status blipc__st_get_f32(blipc_safetensors *st, const char *name, int ndim, const int64_t *shape,
                               const float **out, blipc_err *e);
/* Same with a printf-style name: blipc__st_get_f32f(st, &p, e, 2, (int64_t[]){N,K}, "layer.%d.w", i) */
blipc_status blipc__st_get_f32f(blipc_safetensors *st, const float **out, blipc_err *e, int ndim,
                                const int64_t *shape, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Like get_f32 but keeps 16-bit weights as bf16 (F32 is rounded to nearest even,
 * F16 converted) into a reader-owned buffer; used for bf16 weight storage. */
blipc_status blipc__st_get_bf16(blipc_safetensors *st, const char *name, int ndim, const int64_t *shape,
                                const uint16_t **out, blipc_err *e);
/* Integer tensor as int64 (I64/I32/I16/I8/U8/BOOL), converted into a reader-owned buffer. */
blipc_status blipc__st_get_i64(blipc_safetensors *st, const char *name, const int64_t **out, const blipc_st_tensor **info,
                               blipc_err *e);

/* exact conversions */
float blipc__bf16_to_f32(uint16_t h);
uint16_t blipc__f32_to_bf16(float f); /* round to nearest even, NaN kept */
float blipc__f16_to_f32(uint16_t h);

/* ---- writer ---- */
typedef struct blipc_st_write_tensor {
    const char *name;
    blipc_dtype dtype;
    int ndim;
    int64_t shape[BLIPC_ST_MAX_DIMS];
    const void *data;
} blipc_st_write_tensor;

/* Write tensors (in any order; stored sorted by name) + optional string metadata
 * (meta_kv = {k0, v0, k1, v1, ...}, n_meta pairs) to path atomically (tmp + rename). */
blipc_status blipc__st_write(const char *path, const blipc_st_write_tensor *t, size_t n, const char *const *meta_kv,
                             size_t n_meta, blipc_err *e);

#endif
