/* test_robust — every parser entry point on damaged input: a deterministic,
 * bounded mutation loop over valid seeds (the fixture checkpoints' headers, PNG
 * and JPEG images, HF config files, tokenizer texts), a replay of the libFuzzer
 * seed corpora (fuzz/corpus, including crash reproducers), and allocation
 * failure injection.
 *
 * Contract checked on every call: BLIPC_OK, or an error status in
 * [BLIPC_ERR_INVALID_ARG, BLIPC_ERR_INTERNAL) with a non-empty message; never a
 * crash (ASan/UBSan builds catch memory errors and leaks on the error paths).
 *
 * Allocation failures: when the test is linked with -Wl,--wrap=malloc,... (GNU
 * ld; see tests/meson.build) every malloc/calloc/realloc/strdup/posix_memalign
 * made by the library's own code can be failed on demand, and cJSON's
 * allocations go through the same counter via cJSON_InitHooks. Allocations made
 * inside libpng/libjpeg/stb (shared libraries) are not covered. The library has
 * no allocator hook of its own; this needs none and no LD_PRELOAD.
 *
 * BLIPC_ROBUST_SCALE=N multiplies the iteration counts (default 1: a few seconds);
 * BLIPC_ROBUST_VERBOSE=1 prints every error message (to review their wording). */
#include "harness.h"

#include "generate.h"
#include "hfconfig.h"
#include "image.h"
#include "preprocess.h"
#include "safetensors.h"
#include "tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ allocation hooks */

static long alloc_count, alloc_fail_at = -1;
static int alloc_failed;

static int alloc_should_fail(void) {
    if (alloc_fail_at < 0) return 0;
    if (alloc_count++ != alloc_fail_at) return 0;
    alloc_failed = 1;
    return 1;
}

#ifdef ROBUST_WRAP_ALLOC
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t al, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **p, size_t al, size_t n);

void *__wrap_malloc(size_t n) { return alloc_should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return alloc_should_fail() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return alloc_should_fail() ? NULL : __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t al, size_t n) {
    return alloc_should_fail() ? ENOMEM : __real_posix_memalign(p, al, n);
}
char *__wrap_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
char *__wrap_strndup(const char *s, size_t n) {
    size_t l = strnlen(s, n);
    char *d = __wrap_malloc(l + 1);
    if (d) {
        memcpy(d, s, l);
        d[l] = 0;
    }
    return d;
}
static void *cjson_malloc(size_t n) { return __wrap_malloc(n); }
#define HAVE_ALLOC_FAILURES 1
#else
#define HAVE_ALLOC_FAILURES 0
#endif

/* ------------------------------------------------------------------ helpers */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void) { /* xorshift64*: deterministic across runs */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}
static size_t below(size_t n) { return n ? (size_t)(rnd64() % n) : 0; }

static int scale(void) {
    const char *s = getenv("BLIPC_ROBUST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int n_reported;
/* The error contract for one call; reports the first few violations of a case. */
static void contract(const char *what, const char *seed, int iter, blipc_status rc, const char *msg) {
    if (rc == BLIPC_OK) return;
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("BLIPC_ROBUST_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "    %s #%d: %s: %s\n", what, iter, blipc_status_str(rc), msg ? msg : "(null)");
    int bad = (int)rc < (int)BLIPC_ERR_INVALID_ARG || (int)rc >= (int)BLIPC_ERR_INTERNAL || !msg || !msg[0];
    if (!bad) return;
    th_failed_checks++;
    if (n_reported++ < 10)
        fprintf(stderr, "  FAIL [%s] %s on %s (iteration %d): status %d (%s), message \"%s\"\n", th_current, what,
                seed, iter, (int)rc, blipc_status_str(rc), msg ? msg : "(null)");
}

typedef struct mbuf {
    uint8_t *p;
    size_t n, cap;
} mbuf;

static mbuf mbuf_from(const void *data, size_t n, size_t extra) {
    mbuf b = {malloc(n + extra), n, n + extra};
    if (!b.p) abort();
    memcpy(b.p, data, n);
    return b;
}

static void m_insert(mbuf *b, size_t pos, const void *src, size_t k) {
    if (pos > b->n) pos = b->n;
    if (b->n + k > b->cap) k = b->cap - b->n;
    memmove(b->p + pos + k, b->p + pos, b->n - pos);
    memcpy(b->p + pos, src, k);
    b->n += k;
}

static void m_delete(mbuf *b, size_t pos, size_t k) {
    if (pos >= b->n) return;
    if (k > b->n - pos) k = b->n - pos;
    memmove(b->p + pos, b->p + pos + k, b->n - pos - k);
    b->n -= k;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const uint8_t interesting_bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, '"', '{', '}', '[', ']', ',', ':',
                                            '0', '9', '-', '.', 'e', '\\', ' ', '\n', 0xc3, 0xe2, 0xf0};
static const uint32_t interesting32[] = {0, 1, 2, 3, 7, 8, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
                                         0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};

/* Generic byte-level mutations inside [lo, *hi); *hi follows insertions/deletions. */
static void mutate_bytes(mbuf *b, size_t lo, size_t *hi) {
    if (*hi <= lo) return;
    size_t pos = lo + below(*hi - lo);
    switch (below(6)) {
    case 0: b->p[pos] ^= (uint8_t)(1u << below(8)); break;
    case 1: b->p[pos] = (uint8_t)rnd64(); break;
    case 2: b->p[pos] = interesting_bytes[below(sizeof interesting_bytes)]; break;
    case 3: { /* insert random or interesting bytes */
        uint8_t ins[16];
        size_t k = 1 + below(sizeof ins);
        for (size_t i = 0; i < k; i++)
            ins[i] = below(2) ? (uint8_t)rnd64() : interesting_bytes[below(sizeof interesting_bytes)];
        size_t before = b->n;
        m_insert(b, pos, ins, k);
        *hi += b->n - before;
    } break;
    case 4: { /* delete */
        size_t k = 1 + below(16);
        if (k > *hi - pos) k = *hi - pos;
        m_delete(b, pos, k);
        *hi -= k;
    } break;
    default: { /* duplicate a piece of the region somewhere else in it */
        size_t from = lo + below(*hi - lo), k = 1 + below(32);
        if (k > *hi - from) k = *hi - from;
        uint8_t tmp[32];
        memcpy(tmp, b->p + from, k);
        size_t before = b->n;
        m_insert(b, pos, tmp, k);
        *hi += b->n - before;
    } break;
    }
}

/* JSON-aware edit: replace a number literal or a whole value with an extreme or
 * wrongly typed one. */
static const char *const json_literals[] = {
    "0", "-1", "1", "2", "-0", "0.5", "1e308", "1e309", "-1e309", "4294967295", "4294967296", "2147483647",
    "2147483648", "-2147483649", "9007199254740993", "18446744073709551615", "18446744073709551616",
    "99999999999999999999999999", "null", "true", "false", "\"\"", "\"x\"", "[]", "{}", "[1,2]", "{\"a\":1}",
    "\"\\u0000\"", "\"\\ud800\"", "\"..\"", "\"F32\"", "\"BF16\"", "\"I64\"", "\"gelu\"", "\"opt\"", "\"bert\"", "NaN"};

static void mutate_json(mbuf *b, size_t lo, size_t *hi) {
    /* pick a random start, move to the next value start (digit, '-', '"', 't', 'f', 'n', '[', '{') after ':' or ',' or '[' */
    if (*hi <= lo + 1) return;
    size_t pos = lo + below(*hi - lo);
    size_t i = pos;
    while (i < *hi && !(b->p[i] == ':' || b->p[i] == ',' || b->p[i] == '[')) i++;
    if (i >= *hi) return;
    i++;
    while (i < *hi && (b->p[i] == ' ' || b->p[i] == '\n')) i++;
    if (i >= *hi) return;
    /* extent of the scalar value at i (strings, numbers, literals; containers: just the opening byte) */
    size_t j = i;
    if (b->p[j] == '"') {
        j++;
        while (j < *hi && b->p[j] != '"') j += b->p[j] == '\\' ? 2 : 1;
        if (j < *hi) j++;
    } else if (b->p[j] == '[' || b->p[j] == '{') {
        j++;
    } else {
        while (j < *hi && b->p[j] != ',' && b->p[j] != '}' && b->p[j] != ']' && b->p[j] != '\n' && b->p[j] != ' ') j++;
    }
    if (j > *hi) j = *hi;
    const char *lit = json_literals[below(sizeof json_literals / sizeof *json_literals)];
    m_delete(b, i, j - i);
    *hi -= j - i;
    size_t before = b->n;
    m_insert(b, i, lit, strlen(lit));
    *hi += b->n - before;
}

/* ------------------------------------------------------------- safetensors */

/* Mutated copies of a real checkpoint: mutations stay in the 8-byte length +
 * JSON header; the data follows unchanged. The file is placed at the very end
 * of its allocation so ASan flags any read past the last byte. */
static void robust_safetensors_seed(const char *rel, int iters) {
    const char *path = th_fixture(rel);
    size_t size = 0;
    uint8_t *file = (uint8_t *)th_read_file(path, &size);
    CHECKF(file && size > 8, "cannot read %s", path);
    if (!file || size <= 8) return;
    uint64_t hlen;
    memcpy(&hlen, file, 8);
    CHECK(hlen < size - 8);
    if (hlen >= size - 8) return;
    size_t hend = 8 + (size_t)hlen, dsize = size - hend;
    const size_t slack = 512;
    uint8_t *block = malloc(size + slack);
    if (!block) abort();
    memset(block, 0xAA, slack);
    memcpy(block + slack + hend, file + hend, dsize); /* data at the end of the block */
    mbuf hb = {malloc(hend + slack), 0, hend + slack};
    if (!hb.p) abort();
    int accepted = 0, rejected = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(hb.p, file, hend);
        hb.n = hend;
        size_t hi = hend;
        int muts = 1 + (int)below(4);
        for (int k = 0; k < muts; k++) {
            int op = (int)below(8);
            if (op <= 3) mutate_bytes(&hb, 8, &hi);
            else if (op <= 5) mutate_json(&hb, 8, &hi);
            else if (op == 6) { /* length field: a lie, or the truth after edits */
                static const uint64_t lies[] = {0, 1, 2, 7, 8, 0xffffffffull, 0x100000000ull, 1ull << 62,
                                                1ull << 63, UINT64_MAX, 100000000ull};
                uint64_t v = below(2) ? lies[below(sizeof lies / sizeof *lies)] : (uint64_t)(hi - 8) + below(3) - 1;
                memcpy(hb.p, &v, 8);
            } else { /* keep the header length consistent with the edited header */
                uint64_t v = hi - 8;
                memcpy(hb.p, &v, 8);
            }
        }
        if (below(3) == 0) {
            uint64_t v = hi - 8;
            memcpy(hb.p, &v, 8);
        }
        int truncate = below(8) == 0;
        uint8_t *base;
        size_t n;
        uint8_t *own = NULL;
        if (hb.n > hend + slack) hb.n = hend + slack;
        if (!truncate) {
            base = block + slack + hend - hb.n; /* header right before the data */
            memcpy(base, hb.p, hb.n);
            n = hb.n + dsize;
        } else { /* an exact-size copy cut somewhere in the header or the first KiB of data */
            size_t full = hb.n + dsize;
            n = below((hb.n + 1024 < full ? hb.n + 1024 : full) + 1);
            own = malloc(n ? n : 1);
            if (!own) abort();
            size_t hpart = n < hb.n ? n : hb.n;
            memcpy(own, hb.p, hpart);
            if (n > hb.n) memcpy(own + hb.n, file + hend, n - hb.n);
            base = own;
        }
        blipc_safetensors *st = NULL;
        blipc_err e = {0};
        blipc_status rc = blipc__st_open_memory(base, n, "robust.safetensors", &st, &e);
        contract("st_open_memory", rel, it, rc, e.msg);
        if (rc == BLIPC_OK) {
            accepted++;
            for (size_t i = 0; i < blipc__st_count(st); i++) {
                const blipc_st_tensor *t = blipc__st_at(st, i);
                const uint8_t *d = t->data;
                if (t->nbytes && (d < base || d + t->nbytes > base + n)) {
                    th_failed_checks++;
                    if (n_reported++ < 10)
                        fprintf(stderr, "  FAIL: tensor %s outside the buffer (iteration %d)\n", t->name, it);
                }
                if (t->nbytes) { /* first and last byte */
                    volatile uint8_t s = d[0] ^ d[t->nbytes - 1];
                    (void)s;
                }
                if (blipc__st_find(st, t->name) != t) {
                    th_failed_checks++;
                    if (n_reported++ < 10) fprintf(stderr, "  FAIL: tensor %s not found by name\n", t->name);
                }
            }
            const float *f;
            blipc_err e2 = {0};
            if (blipc__st_count(st)) {
                const blipc_st_tensor *t = blipc__st_at(st, below(blipc__st_count(st)));
                rc = blipc__st_get_f32(st, t->name, -1, NULL, &f, &e2);
                contract("st_get_f32", rel, it, rc, e2.msg);
            }
            blipc__st_free(st);
        } else {
            rejected++;
            if (st) {
                th_failed_checks++;
                if (n_reported++ < 10) fprintf(stderr, "  FAIL: failed open left a reader behind (iteration %d)\n", it);
            }
        }
        free(own);
    }
    fprintf(stderr, "  %s: %d mutated headers, %d accepted, %d rejected\n", rel, iters, accepted, rejected);
    CHECK(accepted > 0 && rejected > 0);
    free(hb.p);
    free(block);
    free(file);
}

TEST(robust_safetensors_mutated_headers) {
    n_reported = 0;
    robust_safetensors_seed("minilm-tiny/model.safetensors", 3000 * scale());
    robust_safetensors_seed("blip2-tiny/model.safetensors", 800 * scale());
}

static void st_expect_format_error(const char *hdr, const char *want) {
    size_t hl = strlen(hdr);
    uint8_t *buf = calloc(1, 8 + hl + 8);
    if (!buf) abort();
    uint64_t v = hl;
    memcpy(buf, &v, 8);
    memcpy(buf + 8, hdr, hl);
    blipc_safetensors *st = NULL;
    blipc_err e = {0};
    CHECK_STATUS(blipc__st_open_memory(buf, 8 + hl + 8, "regress.safetensors", &st, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "regress.safetensors");
    CHECK_CONTAINS(e.msg, want);
    CHECK(st == NULL);
    blipc__st_free(st);
    free(buf);
}

/* Headers found by fuzz_safetensors: a name given twice in one header (was
 * accepted), __metadata__ given twice (heap overflow), offsets/shapes too large for a 64-bit integer (undefined
 * double -> integer conversions, caught by clang's UBSan). */
TEST(robust_safetensors_regressions) {
    st_expect_format_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           "tensor w appears twice");
    /* a second __metadata__ wrote past the table sized for it (heap overflow) */
    st_expect_format_error("{\"__metadata__\":{\"a\":\"b\",\"c\":\"d\"},\"__metadata__\":{\"x\":\"y\"}}",
                           "__metadata__ appears twice");
    st_expect_format_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,6.66667e62]}}",
                           "data_offsets");
    st_expect_format_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e20,1e20]}}",
                           "data_offsets");
    st_expect_format_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", "shape");
    st_expect_format_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807],\"data_offsets\":[0,4]}}",
                           "shape");
}

/* ------------------------------------------------------------------- images */

static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}
static uint32_t crc32_bytes(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* PNG chunk starts (offsets of the length fields), at most cap of them. */
static size_t png_chunks(const mbuf *b, size_t *at, size_t cap) {
    size_t k = 0, pos = 8;
    while (pos + 12 <= b->n && k < cap) {
        uint32_t len = get_be32(b->p + pos);
        at[k++] = pos;
        if (len > b->n - pos - 12) break;
        pos += 12 + len;
    }
    return k;
}

static void png_fix_crcs(mbuf *b) {
    size_t at[256];
    size_t k = png_chunks(b, at, 256);
    for (size_t i = 0; i < k; i++) {
        uint32_t len = get_be32(b->p + at[i]);
        if (len > b->n - at[i] - 12) break;
        put_be32(b->p + at[i] + 8 + len, crc32_bytes(b->p + at[i] + 4, 4 + (size_t)len));
    }
}

static void png_edit(mbuf *b) {
    size_t at[256];
    size_t k = png_chunks(b, at, 256);
    if (!k) return;
    if (below(2) && b->n >= 29 && !memcmp(b->p + 12, "IHDR", 4)) { /* width/height/depth/colour type/interlace */
        static const size_t fld[] = {16, 20, 24, 25, 26, 27, 28};
        size_t f = fld[below(7)];
        if (f < 24) put_be32(b->p + f, interesting32[below(sizeof interesting32 / sizeof *interesting32)]);
        else b->p[f] = (uint8_t)(below(2) ? below(20) : rnd64());
        return;
    }
    size_t c = at[below(k)];
    uint32_t len = get_be32(b->p + c);
    uint32_t v = below(2) ? interesting32[below(sizeof interesting32 / sizeof *interesting32)]
                          : len + (uint32_t)below(5) - 2u;
    put_be32(b->p + c, v);
}

/* JPEG marker segments before the first SOS: offsets of their 0xFF bytes. */
static size_t jpeg_segments(const mbuf *b, size_t *at, size_t cap) {
    size_t k = 0, pos = 2;
    while (pos + 4 <= b->n && k < cap && b->p[pos] == 0xFF) {
        at[k++] = pos;
        if (b->p[pos + 1] == 0xDA) break;
        pos += 2 + ((size_t)b->p[pos + 2] << 8 | b->p[pos + 3]);
    }
    return k;
}

static void jpeg_edit(mbuf *b) {
    size_t at[128];
    size_t k = jpeg_segments(b, at, 128);
    if (!k) return;
    size_t s = at[below(k)];
    uint8_t marker = b->p[s + 1];
    if ((marker == 0xC0 || marker == 0xC1 || marker == 0xC2) && s + 19 <= b->n && below(2)) {
        /* SOF: precision, height, width, components, sampling factors, table ids */
        static const uint16_t dims[] = {0, 1, 2, 7, 8, 9, 0x7fff, 0x8000, 0xfffe, 0xffff};
        switch (below(5)) {
        case 0: b->p[s + 4] = (uint8_t)(below(2) ? 12 : rnd64()); break;
        case 1: { uint16_t v = dims[below(10)]; b->p[s + 5] = (uint8_t)(v >> 8), b->p[s + 6] = (uint8_t)v; } break;
        case 2: { uint16_t v = dims[below(10)]; b->p[s + 7] = (uint8_t)(v >> 8), b->p[s + 8] = (uint8_t)v; } break;
        case 3: b->p[s + 9] = (uint8_t)below(6); break;
        default: b->p[s + 11 + 3 * below(3)] = (uint8_t)rnd64(); break;
        }
        return;
    }
    static const uint16_t lens[] = {0, 1, 2, 3, 0x7fff, 0xffff};
    uint16_t len = (uint16_t)(b->p[s + 2] << 8 | b->p[s + 3]);
    uint16_t v = below(2) ? lens[below(6)] : (uint16_t)(len + below(5) - 2);
    b->p[s + 2] = (uint8_t)(v >> 8);
    b->p[s + 3] = (uint8_t)v;
}

static void robust_image_file(const char *path, int iters, int *accepted, int *rejected) {
    size_t size = 0;
    uint8_t *file = (uint8_t *)th_read_file(path, &size);
    CHECKF(file != NULL, "cannot read %s", path);
    if (!file) return;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int is_png = size > 8 && !memcmp(file, "\x89PNG", 4), is_jpeg = size > 2 && file[0] == 0xFF && file[1] == 0xD8;
    blipc_image_params p;
    blipc_image_default_params(&p);
    p.max_pixels = 1u << 22; /* a lying header must not cost seconds */
    for (int it = 0; it < iters; it++) {
        mbuf b = mbuf_from(file, size, 256);
        size_t hi = b.n;
        int muts = 1 + (int)below(3);
        for (int k = 0; k < muts; k++) {
            int op = (int)below(6);
            if (op == 0 && (is_png || is_jpeg)) {
                if (is_png) png_edit(&b);
                else jpeg_edit(&b);
            } else if (op == 1) {
                b.n = hi = below(b.n + 1); /* truncation */
            } else if (op == 2 && is_jpeg) { /* damage near the headers, where parsing decisions are made */
                size_t lo = 0, h2 = b.n < 700 ? b.n : 700;
                mutate_bytes(&b, lo, &h2);
                hi = b.n;
            } else {
                mutate_bytes(&b, 0, &hi);
            }
        }
        if (is_png && below(4) != 0) png_fix_crcs(&b); /* get past the CRC check most of the time */
        uint8_t *exact = malloc(b.n ? b.n : 1);
        if (!exact) abort();
        memcpy(exact, b.p, b.n);
        p.exif_transpose = it & 1;
        blipc_image *img = NULL;
        char err[512] = "";
        blipc_status rc = blipc_image_load_memory(exact, b.n, &p, &img, err, sizeof err);
        contract("image_load_memory", name, it, rc, err);
        if (rc == BLIPC_OK) {
            ++*accepted;
            int w = blipc_image_width(img), h = blipc_image_height(img);
            CHECK(w > 0 && h > 0 && (uint64_t)w * (uint64_t)h <= p.max_pixels && blipc_image_rgb(img));
            if (w > 0 && h > 0) {
                volatile uint8_t s = blipc_image_rgb(img)[(size_t)w * (size_t)h * 3 - 1];
                (void)s;
            }
            if (it % 8 == 0) { /* the processor behind it: a small bicubic resize */
                blipc_preproc_config cfg;
                blipc__preproc_config_default(&cfg);
                cfg.height = 7;
                cfg.width = 5;
                float chw[3 * 7 * 5];
                blipc_err e = {0};
                contract("preprocess_image", name, it, blipc__preprocess_image(img, &cfg, chw, NULL, &e), e.msg);
            }
            blipc_image_free(img);
        } else {
            ++*rejected;
            CHECK(img == NULL);
        }
        free(exact);
        free(b.p);
    }
    free(file);
}

TEST(robust_images_mutated) {
    n_reported = 0;
    crc_init();
    const char *fixtures[] = {"images/tiny_7x5.png", "images/gray16.png", "more-images/checker_overshoot.png",
                              "images/hopper_orientation_6.jpg", "images/hopper.jpg", "more-images/exif_orient8.jpg",
                              "images/gray_l.jpg"};
    const char *ours[] = {"png/gray1_interlaced_13x11.png", "png/pal2_short_plte_13x11.png",
                          "png/rgba16_interlaced_13x11.png", "png/rgb8_trns_interlaced_13x11.png",
                          "gif/interlaced_noise_61x47.gif", "gif/offset_frame_20x10.gif", "bmp/pal16_37x23.bmp",
                          "bmp/topdown_37x23.bmp"};
    int iters = 300 * scale(), accepted = 0, rejected = 0;
    double t0 = now_s();
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++)
        robust_image_file(th_fixture(fixtures[i]), iters, &accepted, &rejected);
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        robust_image_file(th_testdata(ours[i]), iters, &accepted, &rejected);
    fprintf(stderr, "  images: %d decoded, %d refused (%.1f s)\n", accepted, rejected, now_s() - t0);
    CHECK(accepted > 0 && rejected > 0);
}

/* ------------------------------------------------------------------ configs */

typedef enum { CFG_BERT, CFG_BLIP2, CFG_PREPROC, CFG_GEN } cfg_kind;

/* Run the loader of `kind` on dir; returns the status, message in e. */
static blipc_status load_config(cfg_kind kind, const char *dir, blipc_err *e) {
    switch (kind) {
    case CFG_BERT: {
        blipc_bert_config c;
        return blipc__bert_config_load(dir, &c, e);
    }
    case CFG_BLIP2: {
        blipc_blip2_config c;
        return blipc__blip2_config_load(dir, &c, e);
    }
    case CFG_PREPROC: {
        blipc_preproc_config c;
        return blipc__preproc_config_load(dir, &c, e);
    }
    default: {
        blipc_gen_params gp;
        int eos = 50118, pad = 1;
        blipc_status rc = blipc__gen_config_load(dir, &gp, &eos, &pad, e);
        if (rc == BLIPC_OK) { /* what the loader accepts must be usable */
            blipc_err e2 = {0};
            blipc_status rc2 = blipc__gen_params_check(&gp, &e2);
            if (rc2 != BLIPC_OK) return blipc__errf(e, BLIPC_ERR_INTERNAL, "loaded but refused by the check: %s", e2.msg);
        }
        return rc;
    }
    }
}

static void copy_file(const char *src, const char *dst) {
    CHECKF(th_copy_file(src, dst) == 0, "copy %s -> %s", src, dst);
}

static const char gen_config_seed[] =
    "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": 2,\n  \"eos_token_id\": 50118,\n"
    "  \"pad_token_id\": 1,\n  \"max_new_tokens\": 30,\n  \"num_beams\": 5,\n  \"length_penalty\": 1.0,\n"
    "  \"no_repeat_ngram_size\": 0,\n  \"do_sample\": false,\n  \"top_k\": 50,\n  \"top_p\": 1.0,\n"
    "  \"temperature\": 1.0,\n  \"early_stopping\": false,\n  \"transformers_version\": \"4.47.0\"\n}\n";

/* Mutate one file of a model directory `iters` times and run the loader. */
static void robust_config_file(cfg_kind kind, const char *dir, const char *file, int iters, int *accepted) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t size;
    char *orig = th_read_file(path, &size);
    CHECKF(orig != NULL, "cannot read %s", path);
    if (!orig) return;
    for (int it = 0; it < iters; it++) {
        mbuf b = mbuf_from(orig, size, 512);
        size_t hi = b.n;
        int muts = 1 + (int)below(3);
        for (int k = 0; k < muts; k++) {
            int op = (int)below(5);
            if (op <= 2) mutate_json(&b, 0, &hi);
            else if (op == 3) mutate_bytes(&b, 0, &hi);
            else b.n = hi = below(b.n + 1);
        }
        CHECK(th_write_file(path, b.p, b.n) == 0);
        blipc_err e = {0};
        blipc_status rc = load_config(kind, kind == CFG_PREPROC && (it & 1) ? path : dir, &e);
        contract(file, file, it, rc, e.msg);
        if (rc == BLIPC_OK) ++*accepted;
        else if (!strstr(e.msg, dir) && !strstr(e.msg, file)) { /* messages name the file */
            th_failed_checks++;
            if (n_reported++ < 10) fprintf(stderr, "  FAIL: message does not name %s: %s\n", file, e.msg);
        }
        free(b.p);
    }
    CHECK(th_write_file(path, orig, size) == 0);
    free(orig);
}

/* Found by fuzz_config: integers far out of range were converted before the
 * range check (undefined behaviour); they must be plain format errors. */
TEST(robust_config_regressions) {
    static const char *const bad[] = {"{\"size\": {\"height\": 1e300, \"width\": 224}}",
                                      "{\"size\": {\"height\": 224, \"width\": -1e300}}",
                                      "{\"size\": {\"height\": 9223372036854775808, \"width\": 224}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        blipc_preproc_config c;
        blipc_err e = {0};
        CHECK_STATUS(blipc__preproc_config_parse(bad[i], strlen(bad[i]), "regress.json", &c, &e), BLIPC_ERR_FORMAT,
                     e.msg);
        CHECK_CONTAINS(e.msg, "regress.json");
    }
}

TEST(robust_configs_mutated) {
    n_reported = 0;
    char bert[1024], blip[1024], pool[1100], gen[1024];
    snprintf(bert, sizeof bert, "%s/robust-bert", th_tmpdir());
    snprintf(blip, sizeof blip, "%s/robust-blip2", th_tmpdir());
    snprintf(gen, sizeof gen, "%s/robust-gen", th_tmpdir());
    snprintf(pool, sizeof pool, "%s/1_Pooling", bert);
    CHECK(mkdir(bert, 0700) == 0 && mkdir(blip, 0700) == 0 && mkdir(gen, 0700) == 0 && mkdir(pool, 0700) == 0);
    const char *bert_files[] = {"config.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json"};
    char dst[2048];
    for (size_t i = 0; i < 4; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "minilm-tiny/%s", bert_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", bert, bert_files[i]);
        copy_file(th_fixture(rel), dst);
    }
    snprintf(dst, sizeof dst, "%s/config.json", blip);
    copy_file(th_fixture("blip2-tiny/config.json"), dst);
    snprintf(dst, sizeof dst, "%s/preprocessor_config.json", blip);
    copy_file(th_fixture("blip2-tiny/preprocessor_config.json"), dst);
    snprintf(dst, sizeof dst, "%s/generation_config.json", gen);
    CHECK(th_write_file(dst, gen_config_seed, sizeof gen_config_seed - 1) == 0);
    /* the unmutated seeds load */
    blipc_err e = {0};
    CHECK_STATUS(load_config(CFG_BERT, bert, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(load_config(CFG_BLIP2, blip, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(load_config(CFG_PREPROC, blip, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(load_config(CFG_GEN, gen, &e), BLIPC_OK, e.msg);

    int iters = 400 * scale(), accepted = 0;
    double t0 = now_s();
    for (size_t i = 0; i < 4; i++) robust_config_file(CFG_BERT, bert, bert_files[i], iters, &accepted);
    robust_config_file(CFG_BLIP2, blip, "config.json", iters, &accepted);
    robust_config_file(CFG_PREPROC, blip, "preprocessor_config.json", iters, &accepted);
    robust_config_file(CFG_GEN, gen, "generation_config.json", iters, &accepted);
    fprintf(stderr, "  configs: %d of %d mutated files accepted (%.1f s)\n", accepted, 7 * iters, now_s() - t0);
    CHECK(accepted > 0);
}

/* A model directory in tmp: symlinks to every fixture file but config.json, a copy. */
static void model_dir_links(const char *src, const char *dst) {
    CHECK(mkdir(dst, 0700) == 0 || errno == EEXIST);
    DIR *d = opendir(src);
    CHECKF(d != NULL, "cannot list %s", src);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, de->d_name);
        if (!strcmp(de->d_name, "config.json")) copy_file(from, to);
        else CHECK(symlink(from, to) == 0);
    }
    closedir(d);
}

/* The whole open path (config -> weights with shape checks -> tokenizer) on
 * mutated config.json files, then one real call on what opens. */
TEST(robust_models_mutated_config) {
    n_reported = 0;
    char mini[4096], blip[4096], path[4200];
    snprintf(mini, sizeof mini, "%s/robust-minilm", th_tmpdir());
    snprintf(blip, sizeof blip, "%s/robust-blip2-model", th_tmpdir());
    model_dir_links(th_fixture("minilm-tiny"), mini);
    model_dir_links(th_fixture("blip2-tiny"), blip);
    int opened = 0, refused = 0;
    double t0 = now_s();

    snprintf(path, sizeof path, "%s/config.json", mini);
    size_t size;
    char *orig = th_read_file(path, &size);
    CHECK(orig != NULL);
    blipc_embedder_params ep;
    blipc_embedder_default_params(&ep);
    ep.n_threads = 1;
    for (int it = 0; orig && it < 200 * scale(); it++) {
        mbuf b = mbuf_from(orig, size, 512);
        size_t hi = b.n;
        for (int k = 0, muts = 1 + (int)below(2); k < muts; k++) mutate_json(&b, 0, &hi);
        CHECK(th_write_file(path, b.p, b.n) == 0);
        blipc_embedder *emb = NULL;
        char err[1024] = "";
        blipc_status rc = blipc_embedder_open(mini, &ep, &emb, err, sizeof err);
        contract("embedder_open", "minilm-tiny/config.json", it, rc, err);
        if (rc == BLIPC_OK) {
            opened++;
            int dim = blipc_embedder_dim(emb);
            CHECK(dim > 0);
            float *v = malloc(sizeof(float) * (size_t)(dim > 0 ? dim : 1));
            const char *texts[] = {"a dog on the beach"};
            if (v && dim > 0) {
                rc = blipc_embedder_embed(emb, texts, 1, v);
                contract("embedder_embed", "minilm-tiny/config.json", it, rc, blipc_embedder_errmsg(emb));
            }
            free(v);
            blipc_embedder_free(emb);
        } else {
            refused++;
            CHECK(emb == NULL);
        }
        free(b.p);
    }
    if (orig) CHECK(th_write_file(path, orig, size) == 0);
    free(orig);

    snprintf(path, sizeof path, "%s/config.json", blip);
    orig = th_read_file(path, &size);
    CHECK(orig != NULL);
    blipc_captioner_params cp;
    blipc_captioner_default_params(&cp);
    cp.n_threads = 1;
    cp.max_batch = 1;
    char img_path[4096];
    snprintf(img_path, sizeof img_path, "%s", th_fixture("blip2-tiny/synthetic.png"));
    for (int it = 0; orig && it < 60 * scale(); it++) {
        mbuf b = mbuf_from(orig, size, 512);
        size_t hi = b.n;
        for (int k = 0, muts = 1 + (int)below(2); k < muts; k++) mutate_json(&b, 0, &hi);
        CHECK(th_write_file(path, b.p, b.n) == 0);
        blipc_captioner *cap = NULL;
        char err[1024] = "";
        blipc_status rc = blipc_captioner_open(blip, &cp, &cap, err, sizeof err);
        contract("captioner_open", "blip2-tiny/config.json", it, rc, err);
        if (rc == BLIPC_OK) {
            opened++;
            blipc_gen_params gp;
            blipc_captioner_default_gen_params(cap, &gp);
            gp.max_new_tokens = 2;
            gp.num_beams = 1;
            const char *paths[] = {img_path};
            rc = blipc_captioner_caption_files(cap, paths, 1, NULL, &gp);
            contract("captioner_caption_files", "blip2-tiny/config.json", it, rc, blipc_captioner_errmsg(cap));
            if (rc == BLIPC_OK && blipc_captioner_result_status(cap, 0) != BLIPC_OK)
                contract("caption result", "blip2-tiny/config.json", it, blipc_captioner_result_status(cap, 0),
                         blipc_captioner_result_error(cap, 0));
            blipc_captioner_free(cap);
        } else {
            refused++;
            CHECK(cap == NULL);
        }
        free(b.p);
    }
    if (orig) CHECK(th_write_file(path, orig, size) == 0);
    free(orig);
    fprintf(stderr, "  models: %d opened, %d refused (%.1f s)\n", opened, refused, now_s() - t0);
    CHECK(opened > 0 && refused > 0);
}

/* --------------------------------------------------------------- tokenizers */

static const char *const text_frags[] = {
    "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\x80", "\xff", "</s>", "<image>",
    "<pad>", "[CLS]", "[SEP]", "[MASK]", "##", " ", "\t", "\r\n", "\x01", "\xe2\x80\x8b", "e\xcc\x81", "\xe4\xb8\xad",
    "\xf0\x9f\x98\x80", "'s", "n't", " do not", "\xef\xbc\x81", "\xe3\x80\x80", "\xc2\xa0"};

static void mutate_text(mbuf *b) {
    size_t hi = b->n;
    int muts = 1 + (int)below(4);
    for (int k = 0; k < muts; k++) {
        int op = (int)below(5);
        if (op <= 1) {
            const char *f = text_frags[below(sizeof text_frags / sizeof *text_frags)];
            size_t before = b->n;
            m_insert(b, below(b->n + 1), f, strlen(f));
            hi += b->n - before;
        } else if (op == 2 && b->n + 150 <= b->cap) { /* a word over max_input_chars_per_word */
            char run[150];
            memset(run, 'a' + (int)below(26), sizeof run);
            size_t before = b->n;
            m_insert(b, below(b->n + 1), run, below(2) ? 99 + below(3) : sizeof run);
            hi += b->n - before;
        } else {
            mutate_bytes(b, 0, &hi);
        }
    }
}

/* Texts of the tokenizer cases (fixtures) as seeds; NULL-terminated list. */
static char **case_texts(const char *rel, int max) {
    size_t n;
    char *all = th_read_file(th_fixture(rel), &n);
    if (!all) return NULL;
    char **out = calloc((size_t)max + 1, sizeof *out);
    int k = 0;
    for (char *line = strtok(all, "\n"); line && k < max; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (cJSON_IsString(t)) out[k++] = strdup(t->valuestring);
        cJSON_Delete(j);
    }
    free(all);
    return out;
}

static void robust_tokenizer(const char *dir_rel, const char *cases_rel, int iters) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", th_fixture(dir_rel));
    blipc_tokenizer *t = NULL;
    char err[512] = "";
    if (blipc_tokenizer_open(dir, &t, err, sizeof err) != BLIPC_OK) {
        /* the vocabulary files are third-party and never copied into the repo */
        fprintf(stderr, "  SKIP part: tokenizer %s not available (%s)\n", dir_rel, err);
        return;
    }
    char **texts = case_texts(cases_rel, 64);
    CHECKF(texts && texts[0], "no cases in %s", cases_rel);
    if (!texts || !texts[0]) {
        blipc_tokenizer_free(t);
        free(texts);
        return;
    }
    int nt = 0;
    while (texts[nt]) nt++;
    int32_t vocab = blipc_tokenizer_vocab_size(t);
    int ok = 0, refused = 0;
    for (int it = 0; it < iters; it++) {
        const char *seed = texts[it % nt];
        mbuf b = mbuf_from(seed, strlen(seed), 512);
        mutate_text(&b);
        uint8_t *exact = malloc(b.n ? b.n : 1); /* no NUL after the text */
        if (!exact) abort();
        memcpy(exact, b.p, b.n);
        int add = it & 1, maxlen = (it % 5 == 0) ? (int)below(12) : 0;
        size_t n = 0;
        int32_t ids[64];
        err[0] = 0;
        blipc_status rc = blipc_tokenizer_encode(t, (const char *)exact, b.n, add, maxlen, ids, 64, &n, err, sizeof err);
        if (rc == BLIPC_ERR_BUFFER_TOO_SMALL) rc = BLIPC_OK; /* n holds the full count */
        contract("tokenizer_encode", dir_rel, it, rc, err);
        if (rc == BLIPC_OK) {
            ok++;
            size_t m = n < 64 ? n : 64;
            if (maxlen) CHECK(n <= (size_t)maxlen);
            for (size_t i = 0; i < m; i++) CHECK(ids[i] >= 0 && ids[i] < vocab);
            /* decode mutated ids: out of range, negative, specials, the whole range */
            static const int32_t odd[] = {-1, INT32_MIN, INT32_MAX, 0, 1, 2, 100, 101, 102, 103, 50265, 50118};
            for (int k = 0; k < 3 && m; k++) {
                size_t at = below(m);
                ids[at] = below(2) ? odd[below(sizeof odd / sizeof *odd)] : (int32_t)below((size_t)vocab + 2) - 1;
            }
            char text[96];
            size_t len = 0;
            blipc_status drc = blipc_tokenizer_decode(t, ids, m, it & 2, text, sizeof text, &len);
            CHECK(drc == BLIPC_OK || drc == BLIPC_ERR_BUFFER_TOO_SMALL);
            if (drc == BLIPC_OK) CHECK(len < sizeof text && text[len] == 0);
            else CHECK(len >= sizeof text);
        } else {
            refused++;
        }
        free(exact);
        free(b.p);
    }
    fprintf(stderr, "  %s: %d texts encoded, %d refused\n", dir_rel, ok, refused);
    CHECK(ok > 0 && refused > 0);
    for (int i = 0; i < nt; i++) free(texts[i]);
    free(texts);
    blipc_tokenizer_free(t);
}

/* Found by fuzzing: an added token with id 2^31-1 made vocab_size overflow int32. */
TEST(robust_tokenizer_regressions) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/regress-tok", th_tmpdir());
    CHECK(mkdir(dir, 0700) == 0);
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n";
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    CHECK(th_write_file(path, vocab, sizeof vocab - 1) == 0);
    static const char *const files[] = {"added_tokens.json", "tokenizer_config.json"};
    static const char *const bodies[] = {
        "{\"<x>\": 2147483647}",
        "{\"added_tokens_decoder\": {\"2147483647\": {\"content\": \"<x>\", \"special\": true}}}"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECK(th_write_file(path, bodies[i], strlen(bodies[i])) == 0);
        blipc_tokenizer *t = NULL;
        char err[512] = "";
        CHECK_STATUS(blipc_tokenizer_open(dir, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
        CHECK_CONTAINS(err, files[i]);
        CHECK(t == NULL);
        blipc_tokenizer_free(t);
        CHECK(unlink(path) == 0);
    }
}

TEST(robust_tokenizers_mutated_text) {
    n_reported = 0;
    robust_tokenizer("tokenizers/bert-uncased", "tokenizers/bert-uncased/cases.jsonl", 1500 * scale());
    robust_tokenizer("tokenizers/opt", "tokenizers/opt/cases.jsonl", 1500 * scale());
}

/* ------------------------------------------------- libFuzzer corpus replay */

/* The fuzz targets, compiled into this test under other names (tests/meson.build). */
int fuzz_safetensors_one(const uint8_t *data, size_t size);
int fuzz_image_one(const uint8_t *data, size_t size);
int fuzz_config_one(const uint8_t *data, size_t size);
int fuzz_config_init(int *argc, char ***argv);
int fuzz_tokenizer_one(const uint8_t *data, size_t size);
int fuzz_tokenizer_init(int *argc, char ***argv);

#ifdef ROBUST_CORPUS_DIR
static int name_filter(const struct dirent *d) { return d->d_name[0] != '.'; }

/* Name the seed being replayed when the process dies on it (abort() from a
 * target's contract check, a signal, or an ASan/UBSan report). */
static char replay_current[8192];
static void replay_report(void) {
    if (!replay_current[0]) return;
    static const char pre[] = "\n  died while replaying seed ";
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, replay_current, strlen(replay_current)) < 0 ||
        write(2, "\n", 1) < 0)
        return;
}
static void replay_signal(int sig) {
    replay_report();
    signal(sig, SIG_DFL);
    raise(sig);
}
void __asan_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void replay(const char *target, int (*init)(int *, char ***), int (*one)(const uint8_t *, size_t)) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", ROBUST_CORPUS_DIR, target);
    struct dirent **ents;
    int n = scandir(dir, &ents, name_filter, alphasort);
    CHECKF(n > 0, "no seeds in %s", dir);
    if (n <= 0) return;
    if (init) init(NULL, NULL);
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        size_t size;
        char *data = th_read_file(path, &size);
        CHECKF(data != NULL, "cannot read %s", path);
        if (data) {
            /* exact-size copy; a contract violation aborts with the file name above it */
            uint8_t *exact = malloc(size ? size : 1);
            if (!exact) abort();
            memcpy(exact, data, size);
            snprintf(replay_current, sizeof replay_current, "%s", path);
            one(exact, size);
            replay_current[0] = 0;
            free(exact);
            free(data);
        }
        free(ents[i]);
    }
    free(ents);
    fprintf(stderr, "  %s: %d seeds replayed\n", target, n);
}

TEST(robust_fuzz_corpus_replay) {
    setenv("BLIPC_FUZZ_TMPDIR", th_tmpdir(), 1);
    signal(SIGABRT, replay_signal);
    signal(SIGSEGV, replay_signal);
    if (__asan_set_death_callback) __asan_set_death_callback(replay_report);
    replay("fuzz_safetensors", NULL, fuzz_safetensors_one);
    replay("fuzz_image", NULL, fuzz_image_one);
    replay("fuzz_config", fuzz_config_init, fuzz_config_one);
    replay("fuzz_tokenizer", fuzz_tokenizer_init, fuzz_tokenizer_one);
}
#endif

/* ------------------------------------------------------ allocation failures */

#if HAVE_ALLOC_FAILURES
typedef blipc_status (*alloc_case_fn)(void *ctx, char *msg, size_t cap);

/* Run fn failing its k-th allocation, for k = 0, 1, ... until a run makes fewer
 * than k+1 allocations. Every failed run must report an error with a message;
 * runs may also succeed when the failing allocation had a fallback. */
static void alloc_sweep(const char *what, alloc_case_fn fn, void *ctx) {
    char msg[1024];
    long k = 0, failed_runs = 0;
    for (;; k++) {
        msg[0] = 0;
        alloc_count = 0;
        alloc_failed = 0;
        alloc_fail_at = k;
        blipc_status rc = fn(ctx, msg, sizeof msg);
        alloc_fail_at = -1;
        if (!alloc_failed) {
            CHECKF(rc == BLIPC_OK, "%s without injected failure: %d (%s)", what, (int)rc, msg);
            break;
        }
        if (rc != BLIPC_OK) failed_runs++;
        contract(what, "allocation failure", (int)k, rc, msg);
        if (k > 200000) break;
    }
    fprintf(stderr, "  %s: %ld allocations, each failed once: %ld runs reported an error\n", what, k, failed_runs);
    CHECK(k > 0);
}

static blipc_status ac_st(void *ctx, char *msg, size_t cap) {
    mbuf *f = ctx;
    blipc_safetensors *st = NULL;
    blipc_err e = {0};
    blipc_status rc = blipc__st_open_memory(f->p, f->n, "alloc.safetensors", &st, &e);
    if (rc == BLIPC_OK) {
        const float *w;
        const uint16_t *h;
        const blipc_st_tensor *t = blipc__st_at(st, blipc__st_count(st) - 1);
        rc = blipc__st_get_bf16(st, t->name, -1, NULL, &h, &e);
        if (rc == BLIPC_OK) rc = blipc__st_get_f32(st, "embeddings.LayerNorm.weight", -1, NULL, &w, &e);
    }
    blipc__st_free(st);
    snprintf(msg, cap, "%s", e.msg);
    return rc;
}

static blipc_status ac_cfg(void *ctx, char *msg, size_t cap) {
    const char **a = ctx; /* {kind as text, dir} */
    blipc_err e = {0};
    blipc_status rc = load_config((cfg_kind)(a[0][0] - '0'), a[1], &e);
    snprintf(msg, cap, "%s", e.msg);
    return rc;
}

static blipc_status ac_image(void *ctx, char *msg, size_t cap) {
    mbuf *f = ctx;
    blipc_image_params p;
    blipc_image_default_params(&p);
    p.exif_transpose = 1;
    blipc_image *img = NULL;
    blipc_status rc = blipc_image_load_memory(f->p, f->n, &p, &img, msg, cap);
    if (rc == BLIPC_OK) {
        blipc_preproc_config cfg;
        blipc__preproc_config_default(&cfg);
        cfg.height = cfg.width = 16;
        float chw[3 * 16 * 16];
        blipc_err e = {0};
        rc = blipc__preprocess_image(img, &cfg, chw, NULL, &e);
        if (rc) snprintf(msg, cap, "%s", e.msg);
    }
    blipc_image_free(img);
    return rc;
}

static blipc_status ac_tok_open(void *ctx, char *msg, size_t cap) {
    blipc_tokenizer *t = NULL;
    blipc_status rc = blipc_tokenizer_open((const char *)ctx, &t, msg, cap);
    blipc_tokenizer_free(t);
    return rc;
}

static blipc_status ac_tok_use(void *ctx, char *msg, size_t cap) {
    const blipc_tokenizer *t = ctx;
    static const char text[] = "A woman playing with her dog on the beach, \xc3\xa9t\xc3\xa9 \xe4\xb8\xad </s> [SEP] "
                               "unbelievably-long-hyphenated words!";
    int32_t ids[128];
    size_t n = 0;
    blipc_status rc = blipc_tokenizer_encode(t, text, sizeof text - 1, 1, 0, ids, 128, &n, msg, cap);
    if (rc == BLIPC_OK) {
        char out[512];
        size_t len;
        rc = blipc_tokenizer_decode(t, ids, n, 1, out, sizeof out, &len);
        if (rc) snprintf(msg, cap, "decode: %s", blipc_status_str(rc));
    }
    return rc;
}

TEST(robust_allocation_failures) {
    n_reported = 0;
    /* cJSON (a shared library) allocates through the same counter */
    cJSON_Hooks hooks = {cjson_malloc, free};
    cJSON_InitHooks(&hooks);
    size_t n;
    char *st = th_read_file(th_fixture("minilm-tiny/model.safetensors"), &n);
    CHECK(st != NULL);
    if (st) {
        mbuf f = {(uint8_t *)st, n, n};
        alloc_sweep("safetensors", ac_st, &f);
        free(st);
    }
    char dir_bert[4096], dir_blip[4096], dir_gen[4096];
    snprintf(dir_bert, sizeof dir_bert, "%s", th_fixture("minilm-tiny"));
    snprintf(dir_blip, sizeof dir_blip, "%s", th_fixture("blip2-tiny"));
    snprintf(dir_gen, sizeof dir_gen, "%s/alloc-gen", th_tmpdir());
    CHECK(mkdir(dir_gen, 0700) == 0 || errno == EEXIST);
    char genp[4200];
    snprintf(genp, sizeof genp, "%s/generation_config.json", dir_gen);
    CHECK(th_write_file(genp, gen_config_seed, sizeof gen_config_seed - 1) == 0);
    const char *a_bert[] = {"0", dir_bert}, *a_blip[] = {"1", dir_blip}, *a_pre[] = {"2", dir_blip},
               *a_gen[] = {"3", dir_gen};
    alloc_sweep("bert config", ac_cfg, a_bert);
    alloc_sweep("blip2 config", ac_cfg, a_blip);
    alloc_sweep("preprocessor config", ac_cfg, a_pre);
    alloc_sweep("generation config", ac_cfg, a_gen);
    const char *imgs[] = {"images/tiny_7x5.png", "images/hopper_orientation_6.jpg", "images/gray16.png"};
    for (size_t i = 0; i < 3; i++) {
        char *d = th_read_file(th_fixture(imgs[i]), &n);
        CHECK(d != NULL);
        if (!d) continue;
        mbuf f = {(uint8_t *)d, n, n};
        alloc_sweep(imgs[i], ac_image, &f);
        free(d);
    }
    const char *ours[] = {"gif/interlaced_noise_61x47.gif", "bmp/pal16_37x23.bmp"};
    for (size_t i = 0; i < 2; i++) {
        char *d = th_read_file(th_testdata(ours[i]), &n);
        CHECK(d != NULL);
        if (!d) continue;
        mbuf f = {(uint8_t *)d, n, n};
        alloc_sweep(ours[i], ac_image, &f);
        free(d);
    }
    /* tokenizers: small vocabularies written here (open), the real ones (encode/decode) */
    char wp[4096], path[4200];
    snprintf(wp, sizeof wp, "%s/alloc-wp", th_tmpdir());
    CHECK(mkdir(wp, 0700) == 0 || errno == EEXIST);
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nwoman\n##s\nthe\n,\n!\n";
    snprintf(path, sizeof path, "%s/vocab.txt", wp);
    CHECK(th_write_file(path, vocab, sizeof vocab - 1) == 0);
    static const char tcfg[] = "{\"do_lower_case\": true, \"added_tokens_decoder\": {\"5\": {\"content\": \"a\", "
                               "\"special\": false}}, \"clean_up_tokenization_spaces\": true}";
    snprintf(path, sizeof path, "%s/tokenizer_config.json", wp);
    CHECK(th_write_file(path, tcfg, sizeof tcfg - 1) == 0);
    alloc_sweep("wordpiece open", ac_tok_open, wp);
    const char *real[] = {"tokenizers/bert-uncased", "tokenizers/opt"};
    for (size_t i = 0; i < 2; i++) {
        blipc_tokenizer *t = NULL;
        if (blipc_tokenizer_open(th_fixture(real[i]), &t, NULL, 0) != BLIPC_OK) {
            fprintf(stderr, "  SKIP part: %s not available\n", real[i]);
            continue;
        }
        alloc_sweep(real[i], ac_tok_use, t);
        blipc_tokenizer_free(t);
    }
    cJSON_InitHooks(NULL);
}
#endif

int main(void) {
    th_require_file(th_fixture("minilm-tiny/model.safetensors"));
    th_require_file(th_fixture("blip2-tiny/config.json"));
    double t0 = now_s();
    RUN(robust_safetensors_regressions);
    RUN(robust_safetensors_mutated_headers);
    RUN(robust_images_mutated);
    RUN(robust_config_regressions);
    RUN(robust_configs_mutated);
    RUN(robust_tokenizer_regressions);
    RUN(robust_tokenizers_mutated_text);
    RUN(robust_models_mutated_config);
#ifdef ROBUST_CORPUS_DIR
    RUN(robust_fuzz_corpus_replay);
#endif
#if HAVE_ALLOC_FAILURES
    RUN(robust_allocation_failures);
#else
    fprintf(stderr, "  allocation-failure injection not built (the linker has no --wrap)\n");
#endif
    fprintf(stderr, "  total %.1f s\n", now_s() - t0);
    return th_finish();
}
