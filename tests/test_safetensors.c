/* test_safetensors.c — the validated safetensors reader: real fixture files,
 * headers that lie (each rejected with a message naming the file and tensor),
 * exact F16/BF16 conversion, sharded checkpoints, and random header mutations
 * that must never crash (run under ASan/UBSan by the sanitizer build). */
#include "harness.h"

#include "blipc.h"
#include "safetensors.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers: a safetensors image from a header string and a data size ---- */

typedef struct img {
    uint8_t *p;
    size_t n;
} img;

static img make_img(const char *header, size_t data_bytes) {
    size_t hl = strlen(header);
    img m = {calloc(1, 8 + hl + data_bytes + 1), 8 + hl + data_bytes};
    for (int i = 0; i < 8; i++) m.p[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(m.p + 8, header, hl);
    for (size_t i = 0; i < data_bytes; i++) m.p[8 + hl + i] = (uint8_t)i;
    return m;
}

/* Write the image to a file, open it; return the status, leave the message in e. */
static blipc_status open_img_file(img m, const char *name, blipc_err *e) {
    const char *path = th_tmp_path(name);
    th_write_file(path, m.p, m.n);
    free(m.p);
    blipc_safetensors *st = NULL;
    blipc_status rc = blipc__st_open_file(path, &st, e);
    blipc__st_free(st);
    return rc;
}

#define EXPECT_BAD(header, data_bytes, name, want_status, needle1, needle2)              \
    do {                                                                                 \
        blipc_err e__;                                                                   \
        blipc__err_clear(&e__);                                                          \
        blipc_status rc__ = open_img_file(make_img(header, data_bytes), name, &e__);    \
        CHECK_STATUS(rc__, want_status, e__.msg);                                       \
        CHECK_CONTAINS(e__.msg, name);                                                  \
        CHECK_CONTAINS(e__.msg, needle1);                                               \
        CHECK_CONTAINS(e__.msg, needle2);                                               \
    } while (0)

/* ------------------------------------------------------------------ tests */

TEST(safetensors_reads_fixture_zero_copy) {
    blipc_err e;
    blipc_safetensors *st = NULL;
    CHECK_STATUS(blipc__st_open_file(th_fixture("minilm-tiny/model.safetensors"), &st, &e), BLIPC_OK, e.msg);
    if (!st) return;
    CHECK(blipc__st_count(st) > 20);
    const blipc_st_tensor *t = blipc__st_find(st, "embeddings.word_embeddings.weight");
    CHECK(t && t->dtype == BLIPC_DT_F32 && t->ndim == 2 && t->shape[0] == 30522);
    const float *f;
    CHECK_STATUS(blipc__st_get_f32(st, "embeddings.word_embeddings.weight", -1, NULL, &f, &e), BLIPC_OK, e.msg);
    CHECK(t && (const void *)f == t->data); /* in place, not copied */
    const int64_t *pos;
    const blipc_st_tensor *pi;
    CHECK_STATUS(blipc__st_get_i64(st, "embeddings.position_ids", &pos, &pi, &e), BLIPC_OK, e.msg);
    if (pos) CHECK(pos[0] == 0 && pos[511] == 511);
    CHECK(blipc__st_metadata(st, "format") && !strcmp(blipc__st_metadata(st, "format"), "pt"));
    /* wrong expected shape / missing tensor / integer tensor read as float */
    int64_t shp[2] = {30522, 33};
    CHECK_STATUS(blipc__st_get_f32(st, "embeddings.word_embeddings.weight", 2, shp, &f, &e), BLIPC_ERR_MODEL, e.msg);
    CHECK_CONTAINS(e.msg, "embeddings.word_embeddings.weight");
    CHECK_CONTAINS(e.msg, "[30522, 32]");
    CHECK_CONTAINS(e.msg, "[30522, 33]");
    CHECK_STATUS(blipc__st_get_f32(st, "no.such.tensor", -1, NULL, &f, &e), BLIPC_ERR_MODEL, e.msg);
    CHECK_CONTAINS(e.msg, "no.such.tensor");
    CHECK_CONTAINS(e.msg, "model.safetensors");
    CHECK_STATUS(blipc__st_get_f32(st, "embeddings.position_ids", -1, NULL, &f, &e), BLIPC_ERR_MODEL, e.msg);
    CHECK_CONTAINS(e.msg, "I64");
    blipc__st_free(st);
    blipc__st_free(NULL);
}

TEST(safetensors_rejects_missing_and_truncated_files) {
    blipc_err e;
    blipc_safetensors *st = NULL;
    CHECK_STATUS(blipc__st_open_file(th_tmp_path("does-not-exist.safetensors"), &st, &e), BLIPC_ERR_IO, e.msg);
    CHECK_CONTAINS(e.msg, "does-not-exist.safetensors");
    CHECK(st == NULL);
    /* empty file, 5-byte file */
    th_write_file(th_tmp_path("empty.safetensors"), "", 0);
    CHECK(blipc__st_open_file(th_tmp_path("empty.safetensors"), &st, &e) != BLIPC_OK);
    CHECK_CONTAINS(e.msg, "empty.safetensors");
    th_write_file(th_tmp_path("five.safetensors"), "\x10\0\0\0\0", 5);
    CHECK_STATUS(blipc__st_open_file(th_tmp_path("five.safetensors"), &st, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "five.safetensors");
    CHECK_CONTAINS(e.msg, "truncated");
    /* the real model cut at several places: never OK, always names the file */
    size_t n;
    char *full = th_read_file(th_fixture("minilm-tiny/model.safetensors"), &n);
    CHECK(full != NULL);
    if (!full) return;
    size_t cuts[] = {8, 9, 100, 1000, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        th_write_file(th_tmp_path("cut.safetensors"), full, cuts[i]);
        blipc_status rc = blipc__st_open_file(th_tmp_path("cut.safetensors"), &st, &e);
        CHECKF(rc == BLIPC_ERR_FORMAT, "cut at %zu: status %d", cuts[i], (int)rc);
        CHECK_CONTAINS(e.msg, "cut.safetensors");
        CHECK_CONTAINS(e.msg, "truncated");
        CHECK(st == NULL);
    }
    free(full);
}

TEST(safetensors_rejects_lying_headers) {
    /* 1 GB header length in a tiny file */
    {
        img m = make_img("{}", 0);
        uint64_t big = (uint64_t)1 << 30;
        for (int i = 0; i < 8; i++) m.p[i] = (uint8_t)(big >> (8 * i));
        blipc_err e;
        CHECK_STATUS(open_img_file(m, "gb.safetensors", &e), BLIPC_ERR_FORMAT, e.msg);
        CHECK_CONTAINS(e.msg, "gb.safetensors");
        CHECK_CONTAINS(e.msg, "header length 1073741824");
    }
    /* header length bigger than the file but under the limit */
    {
        img m = make_img("{}", 0);
        m.p[0] = 200;
        blipc_err e;
        CHECK_STATUS(open_img_file(m, "hdr-past-end.safetensors", &e), BLIPC_ERR_FORMAT, e.msg);
        CHECK_CONTAINS(e.msg, "truncated");
    }
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "past-end.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "past the end");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, "overlap.safetensors", BLIPC_ERR_FORMAT, "overlap", "[0, 16]");
    /* an empty tensor between two overlapping ones must not hide the overlap */
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
               32, "overlap-empty.safetensors", BLIPC_ERR_FORMAT, "overlap", "[16, 24]");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, "count.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "16 bytes");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F12\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "dtype.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "unknown dtype \"F12\"");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16, "reversed.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "end 0 < begin 16");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, "negshape.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "shape");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0.5,16]}}", 16, "fracoff.safetensors",
               BLIPC_ERR_FORMAT, "tensor w", "data_offsets");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 16, "nooffsets.safetensors", BLIPC_ERR_FORMAT, "tensor w",
               "data_offsets");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", 16,
               "overflow.safetensors", BLIPC_ERR_FORMAT, "tensor w", "overflow");
    EXPECT_BAD("{\"w\": [1, 2", 16, "json.safetensors", BLIPC_ERR_FORMAT, "not a JSON object", "header");
    EXPECT_BAD("[1,2,3]", 0, "array.safetensors", BLIPC_ERR_FORMAT, "not a JSON object", "header");
    EXPECT_BAD("{\"__metadata__\":{\"k\":5}}", 0, "meta.safetensors", BLIPC_ERR_FORMAT, "__metadata__", "k");
    /* a well-formed minimal file is accepted (the checks above are not just "reject everything") */
    blipc_err e;
    CHECK_STATUS(open_img_file(make_img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                                        "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]}}",
                                        16),
                               "good.safetensors", &e),
                 BLIPC_OK, e.msg);
}

TEST(safetensors_bf16_f16_exact) {
    /* every 16-bit pattern through a real file */
    uint16_t *h = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    blipc_st_write_tensor wt[2] = {{"bf", BLIPC_DT_BF16, 1, {65536}, h}, {"hf", BLIPC_DT_F16, 1, {65536}, h}};
    blipc_err e;
    const char *path = th_tmp_path("half.safetensors");
    CHECK_STATUS(blipc__st_write(path, wt, 2, NULL, 0, &e), BLIPC_OK, e.msg);
    blipc_safetensors *st = NULL;
    CHECK_STATUS(blipc__st_open_file(path, &st, &e), BLIPC_OK, e.msg);
    const float *bf = NULL, *hf = NULL;
    if (st) {
        CHECK_STATUS(blipc__st_get_f32(st, "bf", -1, NULL, &bf, &e), BLIPC_OK, e.msg);
        CHECK_STATUS(blipc__st_get_f32(st, "hf", -1, NULL, &hf, &e), BLIPC_OK, e.msg);
    }
    int bad_bf = 0, bad_hf = 0;
    for (uint32_t i = 0; bf && hf && i < 65536; i++) {
        uint32_t u;
        memcpy(&u, &bf[i], 4);
        bad_bf += u != (i << 16); /* bf16 -> f32 is exactly bits << 16, NaN payloads included */
        /* f16 reference: sign * 2^(e-15) * (1 + m/1024), subnormals m * 2^-24 */
        int s = (i >> 15) & 1, ex = (i >> 10) & 31, man = i & 1023;
        double ref = ex == 0 ? ldexp(man, -24) : ex == 31 ? (man ? NAN : INFINITY) : ldexp(1024 + man, ex - 25);
        if (s) ref = -ref;
        float got = hf[i];
        if (ex == 31 && man) bad_hf += got == got; /* NaN stays NaN */
        else bad_hf += (double)got != ref || (signbit(got) != 0) != s;
    }
    CHECK_EQ_INT(bad_bf, 0);
    CHECK_EQ_INT(bad_hf, 0);
    /* f32 -> bf16: round to nearest even, exact round trip of bf16 values */
    CHECK_EQ_INT(blipc__f32_to_bf16(1.0f), 0x3f80);
    float f;
    uint32_t u = 0x3f808000u; /* halfway, even below -> stays */
    memcpy(&f, &u, 4);
    CHECK_EQ_INT(blipc__f32_to_bf16(f), 0x3f80);
    u = 0x3f818000u; /* halfway, odd below -> rounds up */
    memcpy(&f, &u, 4);
    CHECK_EQ_INT(blipc__f32_to_bf16(f), 0x3f82);
    int rt = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        if (((i >> 7) & 0xff) == 0xff && (i & 0x7f)) continue; /* NaN */
        rt += blipc__f32_to_bf16(blipc__bf16_to_f32((uint16_t)i)) != i;
    }
    CHECK_EQ_INT(rt, 0);
    blipc__st_free(st);
    free(h);
}

/* split a checkpoint into 2 shards + model.safetensors.index.json */
static int write_shards(const char *src, const char *dir, int drop_from_index_shard2) {
    blipc_err e;
    blipc_safetensors *st;
    if (blipc__st_open_file(src, &st, &e)) return -1;
    size_t n = blipc__st_count(st), half = n / 2, k[2] = {0, 0};
    blipc_st_write_tensor *w[2] = {calloc(n, sizeof(blipc_st_write_tensor)), calloc(n, sizeof(blipc_st_write_tensor))};
    char json[65536];
    size_t jl = (size_t)snprintf(json, sizeof json, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (size_t i = 0; i < n; i++) {
        const blipc_st_tensor *t = blipc__st_at(st, i);
        int s = i >= half;
        blipc_st_write_tensor *x = &w[s][k[s]++];
        x->name = t->name;
        x->dtype = t->dtype;
        x->ndim = t->ndim;
        memcpy(x->shape, t->shape, sizeof t->shape);
        x->data = t->data;
        jl += (size_t)snprintf(json + jl, sizeof json - jl, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                               i ? ", " : "", t->name, s + 1);
    }
    if (drop_from_index_shard2) /* a tensor the index promises but shard 2 lacks */
        jl += (size_t)snprintf(json + jl, sizeof json - jl, ", \"ghost.weight\": \"model-00002-of-00002.safetensors\"");
    snprintf(json + jl, sizeof json - jl, "}}");
    char p[1024];
    int rc = 0;
    for (int s = 0; s < 2; s++) {
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        if (blipc__st_write(p, w[s], k[s], NULL, 0, &e)) rc = -1;
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (th_write_file(p, json, strlen(json))) rc = -1;
    free(w[0]);
    free(w[1]);
    blipc__st_free(st);
    return rc;
}

/* a model directory: symlinks to every minilm-tiny file except the weights */
static const char *make_model_dir(const char *name) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", th_tmpdir(), name);
    mkdir(dir, 0755);
    const char *files[] = {"config.json", "modules.json", "sentence_bert_config.json", "vocab.txt",
                           "tokenizer_config.json", "special_tokens_map.json", "1_Pooling"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char l[1200], tgt[1200];
        snprintf(l, sizeof l, "%s/%s", dir, files[i]);
        snprintf(tgt, sizeof tgt, "%s/%s", th_fixture("minilm-tiny"), files[i]);
        if (symlink(tgt, l) != 0) perror(l);
    }
    return dir;
}

TEST(safetensors_sharded_checkpoint_gives_identical_embeddings) {
    const char *dir = make_model_dir("sharded");
    CHECK(write_shards(th_fixture("minilm-tiny/model.safetensors"), dir, 0) == 0);
    blipc_err e;
    blipc_safetensors *sh = NULL, *one = NULL;
    CHECK_STATUS(blipc__st_open_dir(dir, &sh, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__st_open_file(th_fixture("minilm-tiny/model.safetensors"), &one, &e), BLIPC_OK, e.msg);
    if (sh && one) {
        CHECK_EQ_INT(blipc__st_count(sh), blipc__st_count(one));
        const blipc_st_tensor *a = blipc__st_find(sh, "encoder.layer.2.output.dense.weight"),
                              *b = blipc__st_find(one, "encoder.layer.2.output.dense.weight");
        CHECK(a && b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes));
        CHECK(a && a->file == 1 && strstr(blipc__st_file_name(sh, a->file), "model-00002-of-00002"));
    }
    blipc__st_free(sh);
    blipc__st_free(one);
    if (access(th_fixture("minilm-tiny/vocab.txt"), R_OK) != 0) {
        fprintf(stderr, "  (vocab.txt absent: embedder part skipped)\n");
        return;
    }
    char err[1024];
    blipc_embedder *m1 = NULL, *m2 = NULL;
    CHECK_STATUS(blipc_embedder_open(th_fixture("minilm-tiny"), NULL, &m1, err, sizeof err), BLIPC_OK, err);
    CHECK_STATUS(blipc_embedder_open(dir, NULL, &m2, err, sizeof err), BLIPC_OK, err);
    if (m1 && m2) {
        const char *t[] = {"a sharded checkpoint", "gives the same vectors", ""};
        float v1[3 * 64], v2[3 * 64];
        CHECK_STATUS(blipc_embedder_embed(m1, t, 3, v1), BLIPC_OK, blipc_embedder_errmsg(m1));
        CHECK_STATUS(blipc_embedder_embed(m2, t, 3, v2), BLIPC_OK, blipc_embedder_errmsg(m2));
        CHECK(!memcmp(v1, v2, 3 * (size_t)blipc_embedder_dim(m1) * sizeof(float)));
    }
    blipc_embedder_free(m1);
    blipc_embedder_free(m2);
}

TEST(safetensors_sharded_index_errors) {
    blipc_err e;
    blipc_safetensors *st = NULL;
    /* a tensor in weight_map that its shard lacks */
    const char *dir = make_model_dir("ghost");
    CHECK(write_shards(th_fixture("minilm-tiny/model.safetensors"), dir, 1) == 0);
    CHECK_STATUS(blipc__st_open_dir(dir, &st, &e), BLIPC_ERR_MODEL, e.msg);
    CHECK_CONTAINS(e.msg, "ghost.weight");
    CHECK_CONTAINS(e.msg, "model-00002-of-00002.safetensors");
    /* a missing shard */
    dir = make_model_dir("missing-shard");
    CHECK(write_shards(th_fixture("minilm-tiny/model.safetensors"), dir, 0) == 0);
    char p[1200];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    CHECK_STATUS(blipc__st_open_dir(dir, &st, &e), BLIPC_ERR_IO, e.msg);
    CHECK_CONTAINS(e.msg, "model-00002-of-00002.safetensors");
    /* a broken index */
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    th_write_file(p, "{\"weight_map\": [", 16);
    CHECK_STATUS(blipc__st_open_dir(dir, &st, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "model.safetensors.index.json");
    th_write_file(p, "{\"weight_map\": {\"a\": \"../etc/passwd\"}}", 38);
    CHECK_STATUS(blipc__st_open_dir(dir, &st, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "weight_map.a");
    /* no weights at all */
    dir = make_model_dir("noweights");
    CHECK_STATUS(blipc__st_open_dir(dir, &st, &e), BLIPC_ERR_IO, e.msg);
    CHECK_CONTAINS(e.msg, "model.safetensors");
    CHECK(st == NULL);
}

/* random header mutations: never a crash, a hang or a leak (ASan), and an OK
 * result only with tensors whose ranges really are inside the data */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

TEST(safetensors_fuzz_header_mutations_never_crash) {
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                      "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[32,40]}}";
    const char alphabet[] = "{}[]\",:0123456789-.eE FBIU";
    img base = make_img(hdr, 40);
    uint8_t *buf = malloc(base.n + 64);
    int ok = 0, rejected = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, base.p, base.n);
        size_t n = base.n;
        int muts = 1 + (int)(rnd() % 4);
        for (int k = 0; k < muts; k++) {
            uint32_t r = rnd();
            size_t pos = r % n;
            switch ((r >> 20) % 5) {
            case 0: buf[pos] = (uint8_t)rnd(); break;                                         /* random byte */
            case 1: if (n > 8) buf[8 + pos % (n - 8)] = (uint8_t)alphabet[rnd() % (sizeof alphabet - 1)]; break; /* JSON-ish */
            case 2: n = 1 + rnd() % n; break;                                                 /* truncate */
            case 3: buf[rnd() % 8] = (uint8_t)rnd(); break;                                   /* header length */
            default: buf[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;                         /* bit flip */
            }
        }
        uint8_t *copy = malloc(n); /* exact-size copy so ASan sees any overread */
        memcpy(copy, buf, n);
        blipc_safetensors *st = NULL;
        blipc_err e;
        blipc_status rc = blipc__st_open_memory(copy, n, "fuzz", &st, &e);
        if (rc == BLIPC_OK) {
            ok++;
            for (size_t i = 0; i < blipc__st_count(st); i++) {
                const blipc_st_tensor *t = blipc__st_at(st, i);
                const uint8_t *d = t->data;
                CHECK(d >= copy && d + t->nbytes <= copy + n);
                const float *f;
                if (blipc__st_get_f32(st, t->name, -1, NULL, &f, &e) == BLIPC_OK && t->numel > 0) {
                    volatile float s = f[0] + f[t->numel - 1]; /* touch both ends */
                    (void)s;
                }
            }
        } else {
            rejected++;
            CHECK(st == NULL);
            CHECK(strstr(e.msg, "fuzz") != NULL);
        }
        blipc__st_free(st);
        free(copy);
    }
    fprintf(stderr, "  fuzz: %d accepted, %d rejected\n", ok, rejected);
    CHECK(ok > 0 && rejected > 0);
    free(buf);
    free(base.p);
}

int main(void) {
    th_require_file(th_fixture("minilm-tiny/model.safetensors"));
    RUN(safetensors_reads_fixture_zero_copy);
    RUN(safetensors_rejects_missing_and_truncated_files);
    RUN(safetensors_rejects_lying_headers);
    RUN(safetensors_bf16_f16_exact);
    RUN(safetensors_sharded_checkpoint_gives_identical_embeddings);
    RUN(safetensors_sharded_index_errors);
    RUN(safetensors_fuzz_header_mutations_never_crash);
    return th_finish();
}
