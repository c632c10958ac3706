/* safetensors.c — validated reader (mmap, zero-copy F32, exact F16/BF16
 * conversion, sharded index) and a small atomic writer. */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* the format's own limit */
#define ST_MAX_FILES 1024

typedef struct st_file {
    char *path;
    blipc_mmap map;  /* map.data == NULL when opened from memory */
    const uint8_t *base;
    size_t size;
    char **meta_kv;  /* __metadata__ (first file is what callers see) */
    size_t n_meta;
} st_file;

struct blipc_safetensors {
    st_file *files;
    int n_files;
    blipc_st_tensor *t;
    size_t n, cap;
    /* open-addressing hash: name -> index+1 */
    uint32_t *slots;
    size_t n_slots;
    /* converted buffers owned by the reader */
    void **owned;
    size_t n_owned, cap_owned;
};

static const struct {
    const char *name;
    size_t size;
} dtype_info[BLIPC_DT_COUNT] = {
    [BLIPC_DT_F32] = {"F32", 4}, [BLIPC_DT_F16] = {"F16", 2}, [BLIPC_DT_BF16] = {"BF16", 2},
    [BLIPC_DT_F64] = {"F64", 8}, [BLIPC_DT_I64] = {"I64", 8}, [BLIPC_DT_I32] = {"I32", 4},
    [BLIPC_DT_I16] = {"I16", 2}, [BLIPC_DT_I8] = {"I8", 1},   [BLIPC_DT_U8] = {"U8", 1},
    [BLIPC_DT_BOOL] = {"BOOL", 1},
};

size_t blipc__dtype_size(blipc_dtype dt) { return dt < BLIPC_DT_COUNT ? dtype_info[dt].size : 0; }
const char *blipc__dtype_name(blipc_dtype dt) { return dt < BLIPC_DT_COUNT ? dtype_info[dt].name : "?"; }

static int dtype_from_name(const char *s) {
    for (int i = 0; i < BLIPC_DT_COUNT; i++)
        if (!strcmp(s, dtype_info[i].name)) return i;
    return -1;
}

float blipc__bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t blipc__f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float blipc__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Returns the index of a tensor whose name is already indexed (a duplicate key in
 * one header: cJSON keeps both), or SIZE_MAX. */
static size_t st_index_rebuild(blipc_safetensors *st) {
    memset(st->slots, 0, st->n_slots * sizeof *st->slots);
    for (size_t i = 0; i < st->n; i++) {
        size_t j = hash_str(st->t[i].name) & (st->n_slots - 1);
        while (st->slots[j]) {
            if (!strcmp(st->t[st->slots[j] - 1].name, st->t[i].name)) return i;
            j = (j + 1) & (st->n_slots - 1);
        }
        st->slots[j] = (uint32_t)(i + 1);
    }
    return SIZE_MAX;
}

const blipc_st_tensor *blipc__st_find(const blipc_safetensors *st, const char *name) {
    if (!st || !st->n_slots) return NULL;
    size_t j = hash_str(name) & (st->n_slots - 1);
    while (st->slots[j]) {
        const blipc_st_tensor *t = &st->t[st->slots[j] - 1];
        if (!strcmp(t->name, name)) return t;
        j = (j + 1) & (st->n_slots - 1);
    }
    return NULL;
}

size_t blipc__st_count(const blipc_safetensors *st) { return st ? st->n : 0; }
const blipc_st_tensor *blipc__st_at(const blipc_safetensors *st, size_t i) {
    return st && i < st->n ? &st->t[i] : NULL;
}
const char *blipc__st_file_name(const blipc_safetensors *st, int file) {
    return st && file >= 0 && file < st->n_files ? st->files[file].path : "?";
}

const char *blipc__st_metadata(const blipc_safetensors *st, const char *key) {
    if (!st || st->n_files == 0) return NULL;
    const st_file *f = &st->files[0];
    for (size_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_kv[2 * i], key)) return f->meta_kv[2 * i + 1];
    return NULL;
}

void blipc__st_free(blipc_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->n_files; i++) {
        blipc__munmap(&st->files[i].map);
        free(st->files[i].path);
        for (size_t k = 0; k < 2 * st->files[i].n_meta; k++) free(st->files[i].meta_kv[k]);
        free(st->files[i].meta_kv);
    }
    free(st->files);
    free(st->slots);
    for (size_t i = 0; i < st->n_owned; i++) free(st->owned[i]);
    free(st->owned);
    free(st);
}

static int cmp_range(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] < y[1] ? -1 : x[1] > y[1]);
}

/* Parse and validate the header of file `fi` (already mapped) and append its tensors. */
static blipc_status st_parse_file(blipc_safetensors *st, int fi, blipc_err *e) {
    st_file *f = &st->files[fi];
    const char *path = f->path;
    if (f->size < 8) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes, no header)", path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen > ST_MAX_HEADER)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: safetensors header length %llu is over the 100 MB limit", path,
                           (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: truncated safetensors file: header says %llu bytes, file has %zu",
                           path, (unsigned long long)hlen, f->size - 8);
    if (hlen < 2) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: safetensors header is empty", path);
    const uint8_t *data = f->base + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen;

    cJSON *root = cJSON_ParseWithLength((const char *)f->base + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    }
    blipc_status rc = BLIPC_OK;
    size_t first = st->n, count = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            if (f->meta_kv) { /* cJSON keeps repeated keys: a second table would overflow the first */
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: __metadata__ appears twice", path);
                break;
            }
            size_t nm = (size_t)cJSON_GetArraySize(it);
            f->meta_kv = calloc(2 * nm + 1, sizeof(char *));
            if (!f->meta_kv) {
                rc = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            cJSON *m;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: __metadata__.%s is not a string", path, m->string);
                    break;
                }
                f->meta_kv[2 * f->n_meta] = strdup(m->string);
                f->meta_kv[2 * f->n_meta + 1] = strdup(m->valuestring);
                f->n_meta++;
                if (!f->meta_kv[2 * f->n_meta - 2] || !f->meta_kv[2 * f->n_meta - 1]) {
                    rc = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
            }
            if (rc) break;
            continue;
        }
        count++;
    }
    if (!rc && st->n + count > st->cap) {
        size_t nc = st->cap ? st->cap : 64;
        while (nc < st->n + count) nc *= 2;
        blipc_st_tensor *nt = realloc(st->t, nc * sizeof *nt);
        if (!nt) rc = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
        else {
            st->t = nt;
            st->cap = nc;
        }
    }
    uint64_t *ranges = NULL;
    if (!rc && count) {
        ranges = malloc(count * 2 * sizeof *ranges);
        if (!ranges) rc = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    if (!rc) {
        cJSON_ArrayForEach(it, root) {
            if (!strcmp(it->string, "__metadata__")) continue;
            const char *name = it->string;
            cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
            cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
            cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
            if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
                cJSON_GetArraySize(offs) != 2) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT,
                                 "%s: tensor %s: header entry needs dtype (string), shape (array) and data_offsets [begin, end]",
                                 path, name);
                break;
            }
            int dtype = dtype_from_name(dt->valuestring);
            if (dtype < 0) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s: unknown dtype \"%s\"", path, name, dt->valuestring);
                break;
            }
            blipc_st_tensor *t = &st->t[st->n];
            memset(t, 0, sizeof *t);
            t->dtype = (blipc_dtype)dtype;
            t->file = fi;
            t->ndim = cJSON_GetArraySize(shape);
            if (t->ndim > BLIPC_ST_MAX_DIMS) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s: %d dimensions (max %d)", path, name, t->ndim,
                                 BLIPC_ST_MAX_DIMS);
                break;
            }
            uint64_t numel = 1;
            int d = 0, bad = 0;
            cJSON *s;
            cJSON_ArrayForEach(s, shape) {
                double v = cJSON_IsNumber(s) ? s->valuedouble : -1;
                if (v < 0 || v > 9.0e15 || v != (double)(int64_t)v) { /* range before the cast (UB) */
                    bad = 1;
                    break;
                }
                t->shape[d++] = (int64_t)v;
                if (t->shape[d - 1] != 0 && numel > UINT64_MAX / (uint64_t)t->shape[d - 1]) {
                    bad = 2;
                    break;
                }
                numel *= (uint64_t)t->shape[d - 1];
            }
            if (bad) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s: %s", path, name,
                                 bad == 1 ? "shape entries must be non-negative integers" : "shape product overflows");
                break;
            }
            double b0 = cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) ? cJSON_GetArrayItem(offs, 0)->valuedouble : -1;
            double b1 = cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ? cJSON_GetArrayItem(offs, 1)->valuedouble : -1;
            /* range first: converting a double >= 2^64 to uint64_t is undefined */
            if (b0 < 0 || b1 < 0 || b0 >= 0x1p64 || b1 >= 0x1p64 || b0 != (double)(uint64_t)b0 ||
                b1 != (double)(uint64_t)b1) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s: data_offsets must be non-negative integers", path, name);
                break;
            }
            uint64_t begin = (uint64_t)b0, end = (uint64_t)b1;
            uint64_t esz = dtype_info[dtype].size;
            if (end < begin) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s: data_offsets end %llu < begin %llu", path, name,
                                 (unsigned long long)end, (unsigned long long)begin);
                break;
            }
            if (numel > UINT64_MAX / esz || numel * esz != end - begin) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT,
                                 "%s: tensor %s: byte range is %llu bytes but shape x %s size needs %llu", path, name,
                                 (unsigned long long)(end - begin), dtype_info[dtype].name,
                                 (unsigned long long)(numel <= UINT64_MAX / esz ? numel * esz : 0));
                break;
            }
            if (end > data_size) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT,
                                 "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data (%llu bytes): truncated file?",
                                 path, name, (unsigned long long)begin, (unsigned long long)end,
                                 (unsigned long long)data_size);
                break;
            }
            if (blipc__st_find(st, name) || 0) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s appears twice", path, name);
                break;
            }
            t->name = strdup(name);
            if (!t->name) {
                rc = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            t->numel = (int64_t)numel;
            t->nbytes = (size_t)(end - begin);
            t->data = data + begin;
            ranges[2 * k] = begin;
            ranges[2 * k + 1] = end;
            k++;
            st->n++;
        }
    }
    if (!rc && k > 1) {
        qsort(ranges, k, 2 * sizeof *ranges, cmp_range);
        /* compare each non-empty range with the furthest-reaching earlier one
           (not just its sorted neighbour, which may be an empty tensor) */
        size_t prev = SIZE_MAX;
        for (size_t i = 0; i < k; i++) {
            if (ranges[2 * i] == ranges[2 * i + 1]) continue; /* empty tensors occupy no bytes */
            if (prev != SIZE_MAX && ranges[2 * i] < ranges[2 * prev + 1]) {
                rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor data ranges overlap ([%llu, %llu] and [%llu, %llu])",
                                 path, (unsigned long long)ranges[2 * prev], (unsigned long long)ranges[2 * prev + 1],
                                 (unsigned long long)ranges[2 * i], (unsigned long long)ranges[2 * i + 1]);
                break;
            }
            if (prev == SIZE_MAX || ranges[2 * i + 1] > ranges[2 * prev + 1]) prev = i;
        }
    }
    free(ranges);
    cJSON_Delete(root);
    if (rc) {
        for (size_t i = first; i < st->n; i++) free(st->t[i].name);
        st->n = first;
        return rc;
    }
    /* (re)build the hash index */
    size_t want = 16;
    while (want < st->n * 2) want *= 2;
    if (want != st->n_slots) {
        uint32_t *ns = calloc(want, sizeof *ns);
        if (!ns) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
        free(st->slots);
        st->slots = ns;
        st->n_slots = want;
    }
    size_t dup = st_index_rebuild(st);
    if (dup != SIZE_MAX) {
        rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s appears twice", path, st->t[dup].name);
        for (size_t i = first; i < st->n; i++) free(st->t[i].name);
        st->n = first;
        st_index_rebuild(st);
        return rc;
    }
    return BLIPC_OK;
}

static blipc_status st_add_file(blipc_safetensors *st, const char *path, const void *mem, size_t memsize, blipc_err *e) {
    if (st->n_files >= ST_MAX_FILES) return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: too many shards", path);
    st_file *nf = realloc(st->files, (size_t)(st->n_files + 1) * sizeof *nf);
    if (!nf) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
    st->files = nf;
    st_file *f = &st->files[st->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
    st->n_files++;
    if (mem) {
        f->base = mem;
        f->size = memsize;
    } else {
        BLIPC_TRY(blipc__mmap_file(path, &f->map, e));
        f->base = f->map.data;
        f->size = f->map.size;
    }
    return st_parse_file(st, st->n_files - 1, e);
}

blipc_status blipc__st_open_file(const char *path, blipc_safetensors **out, blipc_err *e) {
    *out = NULL;
    blipc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory");
    blipc_status rc = st_add_file(st, path, NULL, 0, e);
    if (rc) {
        blipc__st_free(st);
        return rc;
    }
    *out = st;
    return BLIPC_OK;
}

blipc_status blipc__st_open_memory(const void *data, size_t size, const char *name, blipc_safetensors **out,
                                   blipc_err *e) {
    *out = NULL;
    if (!data) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "%s: NULL buffer", name ? name : "(memory)");
    blipc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory");
    blipc_status rc = st_add_file(st, name ? name : "(memory)", data, size, e);
    if (rc) {
        blipc__st_free(st);
        return rc;
    }
    *out = st;
    return BLIPC_OK;
}

blipc_status blipc__st_open_dir(const char *dir, blipc_safetensors **out, blipc_err *e) {
    *out = NULL;
    char path[4096];
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: model directory does not exist", dir);
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "model.safetensors.index.json", e));
    if (!blipc__file_exists(path)) {
        BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "model.safetensors", e));
        if (!blipc__file_exists(path))
            return blipc__errf(e, BLIPC_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
        return blipc__st_open_file(path, out, e);
    }
    char *json;
    size_t len;
    BLIPC_TRY(blipc__read_file(path, 64u << 20, &json, &len, e));
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not valid JSON with a \"weight_map\" object", path);
    }
    blipc_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        cJSON_Delete(root);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory");
    }
    blipc_status rc = BLIPC_OK;
    /* unique shard names, in order of first appearance */
    cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || !strcmp(it->valuestring, "..")) {
            rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: weight_map.%s: bad shard file name", path, it->string);
            break;
        }
        char shard[4096];
        if ((rc = blipc__path_join(shard, sizeof shard, dir, it->valuestring, e))) break;
        int seen = 0;
        for (int i = 0; i < st->n_files; i++)
            if (!strcmp(st->files[i].path, shard)) seen = 1;
        if (seen) continue;
        if (!blipc__file_exists(shard)) {
            rc = blipc__errf(e, BLIPC_ERR_IO, "%s: shard %s named in %s is missing (incomplete download?)", dir,
                             it->valuestring, "model.safetensors.index.json");
            break;
        }
        if ((rc = st_add_file(st, shard, NULL, 0, e))) break;
    }
    /* every tensor named in the weight_map must exist in its shard */
    if (!rc) {
        cJSON_ArrayForEach(it, wm) {
            const blipc_st_tensor *t = blipc__st_find(st, it->string);
            if (!t) {
                rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: tensor %s is in weight_map but not in shard %s", dir,
                                 it->string, it->valuestring);
                break;
            }
        }
    }
    cJSON_Delete(root);
    if (rc) {
        blipc__st_free(st);
        return rc;
    }
    *out = st;
    return BLIPC_OK;
}

static void *st_own(blipc_safetensors *st, size_t bytes) {
    if (st->n_owned == st->cap_owned) {
        size_t nc = st->cap_owned ? 2 * st->cap_owned : 64;
        void **no = realloc(st->owned, nc * sizeof *no);
        if (!no) return NULL;
        st->owned = no;
        st->cap_owned = nc;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    st->owned[st->n_owned++] = p;
    return p;
}

static blipc_status st_lookup(blipc_safetensors *st, const char *name, int ndim, const int64_t *shape,
                              const blipc_st_tensor **out, blipc_err *e) {
    const blipc_st_tensor *t = blipc__st_find(st, name);
    if (!t)
        return blipc__errf(e, BLIPC_ERR_MODEL, "missing tensor %s in %s", name,
                           st->n_files ? st->files[0].path : "checkpoint");
    if (ndim >= 0) {
        int ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
        if (!ok) {
            char got[160] = "", want[160] = "";
            size_t g = 0, w = 0;
            for (int i = 0; i < t->ndim; i++)
                g += (size_t)snprintf(got + g, sizeof got - g, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
            for (int i = 0; i < ndim; i++)
                w += (size_t)snprintf(want + w, sizeof want - w, "%s%lld", i ? ", " : "", (long long)shape[i]);
            return blipc__errf(e, BLIPC_ERR_MODEL, "tensor %s in %s has shape [%s], expected [%s] (from config.json)",
                               name, st->files[t->file].path, got, want);
        }
    }
    *out = t;
    return BLIPC_OK;
}

blipc_status blipc__st_get_f32(blipc_safetensors *st, const char *name, int ndim, const int64_t *shape,
                               const float **out, blipc_err *e) {
    const blipc_st_tensor *t;
    *out = NULL;
    BLIPC_TRY(st_lookup(st, name, ndim, shape, &t, e));
    size_t n = (size_t)t->numel;
    if (t->dtype == BLIPC_DT_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = t->data;
        return BLIPC_OK;
    }
    if (t->dtype != BLIPC_DT_F32 && t->dtype != BLIPC_DT_F16 && t->dtype != BLIPC_DT_BF16 && t->dtype != BLIPC_DT_F64)
        return blipc__errf(e, BLIPC_ERR_MODEL, "tensor %s in %s has dtype %s, expected a float type", name,
                           st->files[t->file].path, blipc__dtype_name(t->dtype));
    float *buf = st_own(st, n * sizeof(float));
    if (!buf) return blipc__errf(e, BLIPC_ERR_NOMEM, "tensor %s: cannot allocate %zu bytes", name, n * 4);
    const uint8_t *src = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case BLIPC_DT_F32: memcpy(&buf[i], src + 4 * i, 4); break;
        case BLIPC_DT_F16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            buf[i] = blipc__f16_to_f32(h);
        } break;
        case BLIPC_DT_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            buf[i] = blipc__bf16_to_f32(h);
        } break;
        default: {
            double dv;
            memcpy(&dv, src + 8 * i, 8);
            buf[i] = (float)dv;
        } break;
        }
    }
    *out = buf;
    return BLIPC_OK;
}

blipc_status blipc__st_get_f32f(blipc_safetensors *st, const float **out, blipc_err *e, int ndim,
                                const int64_t *shape, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return blipc__st_get_f32(st, name, ndim, shape, out, e);
}

blipc_status blipc__st_get_bf16(blipc_safetensors *st, const char *name, int ndim, const int64_t *shape,
                                const uint16_t **out, blipc_err *e) {
    const blipc_st_tensor *t;
    *out = NULL;
    BLIPC_TRY(st_lookup(st, name, ndim, shape, &t, e));
    if (t->dtype == BLIPC_DT_BF16 && ((uintptr_t)t->data & 1) == 0) {
        *out = t->data;
        return BLIPC_OK;
    }
    const float *f;
    BLIPC_TRY(blipc__st_get_f32(st, name, ndim, shape, &f, e));
    size_t n = (size_t)t->numel;
    uint16_t *buf = st_own(st, n * 2);
    if (!buf) return blipc__errf(e, BLIPC_ERR_NOMEM, "tensor %s: cannot allocate %zu bytes", name, n * 2);
    for (size_t i = 0; i < n; i++) buf[i] = blipc__f32_to_bf16(f[i]);
    *out = buf;
    return BLIPC_OK;
}

blipc_status blipc__st_get_i64(blipc_safetensors *st, const char *name, const int64_t **out,
                               const blipc_st_tensor **info, blipc_err *e) {
    const blipc_st_tensor *t;
    *out = NULL;
    BLIPC_TRY(st_lookup(st, name, -1, NULL, &t, e));
    if (info) *info = t;
    size_t n = (size_t)t->numel;
    int64_t *buf = st_own(st, n * 8);
    if (!buf) return blipc__errf(e, BLIPC_ERR_NOMEM, "tensor %s: out of memory", name);
    const uint8_t *s = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case BLIPC_DT_I64: memcpy(&buf[i], s + 8 * i, 8); break;
        case BLIPC_DT_I32: { int32_t v; memcpy(&v, s + 4 * i, 4); buf[i] = v; } break;
        case BLIPC_DT_I16: { int16_t v; memcpy(&v, s + 2 * i, 2); buf[i] = v; } break;
        case BLIPC_DT_I8: buf[i] = (int8_t)s[i]; break;
        case BLIPC_DT_U8: case BLIPC_DT_BOOL: buf[i] = s[i]; break;
        default:
            return blipc__errf(e, BLIPC_ERR_MODEL, "tensor %s has dtype %s, expected an integer type", name,
                               blipc__dtype_name(t->dtype));
        }
    }
    *out = buf;
    return BLIPC_OK;
}

/* ------------------------------------------------------------------ writer */

static int cmp_wt(const void *a, const void *b) {
    const blipc_st_write_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

blipc_status blipc__st_write(const char *path, const blipc_st_write_tensor *t, size_t n, const char *const *meta_kv,
                             size_t n_meta, blipc_err *e) {
    const blipc_st_write_tensor **order = malloc((n ? n : 1) * sizeof *order);
    cJSON *root = cJSON_CreateObject();
    if (!order || !root) {
        free(order);
        cJSON_Delete(root);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, n, sizeof *order, cmp_wt);
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(root, order[i]->name);
        cJSON_AddStringToObject(o, "dtype", blipc__dtype_name(order[i]->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        uint64_t numel = 1;
        for (int d = 0; d < order[i]->ndim; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)order[i]->shape[d]));
            numel *= (uint64_t)order[i]->shape[d];
        }
        uint64_t bytes = numel * blipc__dtype_size(order[i]->dtype);
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr) {
        free(order);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    blipc_status rc = BLIPC_OK;
    if (!f) {
        rc = blipc__errf(e, BLIPC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
        for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
        for (size_t i = 0; ok && i < n; i++) {
            size_t bytes = blipc__dtype_size(order[i]->dtype);
            for (int d = 0; d < order[i]->ndim; d++) bytes *= (size_t)order[i]->shape[d];
            ok = fwrite(order[i]->data, 1, bytes, f) == bytes;
        }
        if (fclose(f) != 0) ok = 0;
        if (!ok) {
            unlink(tmp);
            rc = blipc__errf(e, BLIPC_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        } else if (rename(tmp, path) != 0) {
            unlink(tmp);
            rc = blipc__errf(e, BLIPC_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        }
    }
    free(hdr);
    free(order);
    return rc;
}
