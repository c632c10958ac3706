/* test_config.c — HF config parsing (BertConfig defaults, sentence-transformers
 * side files) and every way a model directory can be broken: each gives a
 * clear error naming the file, field or tensor, never a crash or a leak. */
#include "harness.h"

#include "blipc.h"
#include "hfconfig.h"
#include "safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *const model_files[] = {"config.json", "model.safetensors", "modules.json",
                                          "sentence_bert_config.json", "vocab.txt", "tokenizer_config.json",
                                          "special_tokens_map.json", "1_Pooling"};

/* A fresh model directory linking every minilm-tiny file except those in `skip`
 * (comma-separated names), which the test then writes itself. */
static const char *make_dir(const char *name, const char *skip) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", th_tmpdir(), name);
    mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof model_files / sizeof model_files[0]; i++) {
        if (skip) { /* exact names in a comma-separated list */
            size_t l = strlen(model_files[i]);
            const char *at = skip;
            int hit = 0;
            while ((at = strstr(at, model_files[i])) && !hit) {
                hit = (at == skip || at[-1] == ',') && (at[l] == 0 || at[l] == ',');
                at++;
            }
            if (hit) continue;
        }
        char l[1200], tgt[1200];
        snprintf(l, sizeof l, "%s/%s", dir, model_files[i]);
        snprintf(tgt, sizeof tgt, "%s/%s", th_fixture("minilm-tiny"), model_files[i]);
        if (symlink(tgt, l) != 0) perror(l);
    }
    return dir;
}

static void put(const char *dir, const char *name, const char *text) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (th_write_file(p, text, strlen(text))) perror(p);
}

/* the fixture's config.json with one textual replacement */
static char *config_with(const char *from, const char *to) {
    size_t n;
    char *c = th_read_file(th_fixture("minilm-tiny/config.json"), &n);
    if (!c) return NULL;
    char *at = strstr(c, from);
    if (!at) {
        fprintf(stderr, "config_with: \"%s\" not in config.json\n", from);
        free(c);
        return NULL;
    }
    size_t out_n = n - strlen(from) + strlen(to) + 1;
    char *o = malloc(out_n);
    snprintf(o, out_n, "%.*s%s%s", (int)(at - c), c, to, at + strlen(from));
    free(c);
    return o;
}

static int have_vocab(void) { return access(th_fixture("minilm-tiny/vocab.txt"), R_OK) == 0; }

/* open the embedder on dir, expect `want` and every needle in the message */
static void expect_open(const char *dir, blipc_status want, const char *n1, const char *n2) {
    char err[1024] = "";
    blipc_embedder *m = NULL;
    blipc_status rc = blipc_embedder_open(dir, NULL, &m, err, sizeof err);
    CHECK_STATUS(rc, want, err);
    if (n1) CHECK_CONTAINS(err, n1);
    if (n2) CHECK_CONTAINS(err, n2);
    if (want != BLIPC_OK) CHECK(m == NULL);
    blipc_embedder_free(m);
}

/* ------------------------------------------------------------------ tests */

TEST(config_fixture_values_and_defaults) {
    blipc_err e;
    blipc_bert_config c;
    CHECK_STATUS(blipc__bert_config_load(th_fixture("minilm-tiny"), &c, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(c.hidden_size, 32);
    CHECK_EQ_INT(c.num_hidden_layers, 3);
    CHECK_EQ_INT(c.num_attention_heads, 4);
    CHECK_EQ_INT(c.intermediate_size, 128);
    CHECK_EQ_INT(c.vocab_size, 30522);
    CHECK_EQ_INT(c.max_seq_length, 128);
    CHECK(c.layer_norm_eps == 1e-12f);
    CHECK(c.pooling_mean == 1 && c.normalize == 1);
    /* diff-style config: everything absent takes BertConfig's defaults; no side files */
    const char *dir = make_dir("defaults", "config.json,modules.json,sentence_bert_config.json,1_Pooling");
    put(dir, "config.json", "{\"model_type\": \"bert\"}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(c.hidden_size, 768);
    CHECK_EQ_INT(c.num_hidden_layers, 12);
    CHECK_EQ_INT(c.num_attention_heads, 12);
    CHECK_EQ_INT(c.intermediate_size, 3072);
    CHECK_EQ_INT(c.max_position_embeddings, 512);
    CHECK_EQ_INT(c.type_vocab_size, 2);
    CHECK_EQ_INT(c.vocab_size, 30522);
    CHECK_EQ_INT(c.max_seq_length, 128);
    CHECK(c.layer_norm_eps == 1e-12f);
    CHECK(!strcmp(c.hidden_act, "gelu"));
    /* modules.json without Normalize -> no L2 normalisation */
    put(dir, "modules.json",
        "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
        "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(c.normalize, 0);
}

TEST(config_rejects_wrong_types_and_values) {
    struct {
        const char *from, *to, *needle1, *needle2;
        blipc_status want;
    } cases[] = {
        {"\"hidden_size\": 32", "\"hidden_size\": \"32\"", "hidden_size", "integer", BLIPC_ERR_FORMAT},
        {"\"hidden_size\": 32", "\"hidden_size\": 32.5", "hidden_size", "integer", BLIPC_ERR_FORMAT},
        {"\"hidden_size\": 32", "\"hidden_size\": -32", "hidden_size", "range", BLIPC_ERR_FORMAT},
        {"\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "num_attention_heads", "multiple",
         BLIPC_ERR_FORMAT},
        {"\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": \"tiny\"", "layer_norm_eps", "number", BLIPC_ERR_FORMAT},
        {"\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": 0", "layer_norm_eps", "(0, 1)", BLIPC_ERR_FORMAT},
        {"\"hidden_act\": \"gelu\"", "\"hidden_act\": 7", "hidden_act", "string", BLIPC_ERR_FORMAT},
        {"\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"", "hidden_act", "swish", BLIPC_ERR_UNSUPPORTED},
        {"\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"", "model_type", "gpt2", BLIPC_ERR_UNSUPPORTED},
        {"\"position_embedding_type\": \"absolute\"", "\"position_embedding_type\": \"relative_key\"",
         "position_embedding_type", "relative_key", BLIPC_ERR_UNSUPPORTED},
        {"{", "[", "config.json", "JSON", BLIPC_ERR_FORMAT},
        {"\"vocab_size\": 30522\n}", "\"vocab_size\": 30522,,\n}", "config.json", "invalid JSON", BLIPC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "badcfg%zu", i);
        const char *dir = make_dir(name, "config.json");
        char *cfg = config_with(cases[i].from, cases[i].to);
        CHECK(cfg != NULL);
        if (!cfg) continue;
        put(dir, "config.json", cfg);
        free(cfg);
        blipc_err e;
        blipc_bert_config c;
        blipc__err_clear(&e);
        blipc_status rc = blipc__bert_config_load(dir, &c, &e);
        CHECKF(rc == cases[i].want, "case %zu (%s): status %d, want %d: %s", i, cases[i].to, (int)rc,
               (int)cases[i].want, e.msg);
        CHECK_CONTAINS(e.msg, "config.json");
        CHECK_CONTAINS(e.msg, cases[i].needle1);
        CHECK_CONTAINS(e.msg, cases[i].needle2);
        if (have_vocab()) expect_open(dir, cases[i].want, cases[i].needle1, "config.json");
    }
}

TEST(config_sentence_transformers_side_files) {
    blipc_err e;
    blipc_bert_config c;
    const char *dir = make_dir("st-maxlen", "sentence_bert_config.json");
    put(dir, "sentence_bert_config.json", "{\"max_seq_length\": \"long\"}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "sentence_bert_config.json");
    CHECK_CONTAINS(e.msg, "max_seq_length");
    put(dir, "sentence_bert_config.json", "{\"max_seq_length\": 100000}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "max_seq_length");
    put(dir, "sentence_bert_config.json", "{\"max_seq_length\": 64}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(c.max_seq_length, 64);

    dir = make_dir("st-modules", "modules.json");
    put(dir, "modules.json", "{\"not\": \"an array\"}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "modules.json");
    put(dir, "modules.json", "[{\"path\": \"x\"}]");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "type");
    put(dir, "modules.json", "[{\"type\": \"sentence_transformers.models.Dense\"}]");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_UNSUPPORTED, e.msg);
    CHECK_CONTAINS(e.msg, "sentence_transformers.models.Dense");

    dir = make_dir("st-pool", "1_Pooling");
    char pd[1200];
    snprintf(pd, sizeof pd, "%s/1_Pooling", dir);
    mkdir(pd, 0755);
    put(dir, "1_Pooling/config.json", "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_UNSUPPORTED, e.msg);
    CHECK_CONTAINS(e.msg, "1_Pooling/config.json");
    CHECK_CONTAINS(e.msg, "pooling_mode_mean_tokens");
    put(dir, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": 1}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_FORMAT, e.msg);
    CHECK_CONTAINS(e.msg, "pooling_mode_mean_tokens");
    put(dir, "1_Pooling/config.json", "{\"word_embedding_dimension\": 384}");
    CHECK_STATUS(blipc__bert_config_load(dir, &c, &e), BLIPC_ERR_MODEL, e.msg);
    CHECK_CONTAINS(e.msg, "word_embedding_dimension");
}

TEST(embedder_missing_directory_and_files) {
    if (!have_vocab()) {
        fprintf(stderr, "  (vocab.txt absent: skipped)\n");
        return;
    }
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/no-such-model", th_tmpdir());
    expect_open(missing, BLIPC_ERR_IO, "no-such-model", "does not exist");
    expect_open(make_dir("no-config", "config.json"), BLIPC_ERR_IO, "config.json", NULL);
    expect_open(make_dir("no-weights", "model.safetensors"), BLIPC_ERR_IO, "model.safetensors", NULL);
    expect_open(make_dir("no-vocab", "vocab.txt"), BLIPC_ERR_IO, "vocab", NULL);
    /* a config missing hidden_size gets BertConfig's 768 and then disagrees with the weights */
    const char *dir = make_dir("no-hidden", "config.json");
    char *cfg = config_with("\"hidden_size\": 32,", "");
    if (cfg) put(dir, "config.json", cfg);
    free(cfg);
    expect_open(dir, BLIPC_ERR_MODEL, "1_Pooling/config.json", "config.json hidden_size 768");
    dir = make_dir("no-hidden-nopool", "config.json,1_Pooling");
    cfg = config_with("\"hidden_size\": 32,", "");
    if (cfg) put(dir, "config.json", cfg);
    free(cfg);
    expect_open(dir, BLIPC_ERR_MODEL, "embeddings.word_embeddings.weight", "expected [30522, 768] (from config.json)");
}

/* a copy of the fixture weights with one tensor dropped, reshaped or retyped */
static void write_weights(const char *dir, const char *drop, const char *reshape, const char *retype) {
    blipc_err e;
    blipc_safetensors *st;
    if (blipc__st_open_file(th_fixture("minilm-tiny/model.safetensors"), &st, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    size_t n = blipc__st_count(st), k = 0;
    blipc_st_write_tensor *w = calloc(n, sizeof *w);
    int64_t *ints = NULL;
    for (size_t i = 0; i < n; i++) {
        const blipc_st_tensor *t = blipc__st_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        blipc_st_write_tensor *x = &w[k++];
        x->name = t->name;
        x->dtype = t->dtype;
        x->ndim = t->ndim;
        memcpy(x->shape, t->shape, sizeof t->shape);
        x->data = t->data;
        if (reshape && !strcmp(t->name, reshape)) { /* same bytes, transposed shape claim */
            x->shape[0] = t->shape[1];
            x->shape[1] = t->shape[0];
        }
        if (retype && !strcmp(t->name, retype)) { /* same element count as I64 */
            ints = calloc((size_t)t->numel, 8);
            x->dtype = BLIPC_DT_I64;
            x->data = ints;
        }
    }
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (blipc__st_write(p, w, k, NULL, 0, &e)) fprintf(stderr, "%s\n", e.msg);
    free(w);
    free(ints);
    blipc__st_free(st);
}

TEST(embedder_tensor_missing_wrong_shape_wrong_dtype) {
    if (!have_vocab()) {
        fprintf(stderr, "  (vocab.txt absent: skipped)\n");
        return;
    }
    const char *dir = make_dir("t-missing", "model.safetensors");
    write_weights(dir, "encoder.layer.1.output.dense.bias", NULL, NULL);
    expect_open(dir, BLIPC_ERR_MODEL, "missing tensor encoder.layer.1.output.dense.bias", "model.safetensors");
    dir = make_dir("t-shape", "model.safetensors");
    write_weights(dir, NULL, "encoder.layer.2.intermediate.dense.weight", NULL);
    expect_open(dir, BLIPC_ERR_MODEL, "encoder.layer.2.intermediate.dense.weight", "shape [32, 128], expected [128, 32]");
    dir = make_dir("t-dtype", "model.safetensors");
    write_weights(dir, NULL, NULL, "encoder.layer.0.attention.self.key.weight");
    expect_open(dir, BLIPC_ERR_MODEL, "encoder.layer.0.attention.self.key.weight", "I64");
    /* position_ids absent is fine (it is ignored) */
    dir = make_dir("t-nopos", "model.safetensors");
    write_weights(dir, "embeddings.position_ids", NULL, NULL);
    expect_open(dir, BLIPC_OK, NULL, NULL);
    /* a truncated weight file through the embedder names the file */
    dir = make_dir("t-trunc", "model.safetensors");
    size_t n;
    char *full = th_read_file(th_fixture("minilm-tiny/model.safetensors"), &n);
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (full) th_write_file(p, full, n - 4096);
    free(full);
    expect_open(dir, BLIPC_ERR_FORMAT, "model.safetensors", "truncated");
}

TEST(embedder_bert_prefixed_checkpoint) {
    /* a BertForX checkpoint ("bert." prefix) gives the same vectors */
    if (!have_vocab()) return;
    blipc_err e;
    blipc_safetensors *st;
    if (blipc__st_open_file(th_fixture("minilm-tiny/model.safetensors"), &st, &e)) {
        CHECK(0);
        return;
    }
    size_t n = blipc__st_count(st);
    blipc_st_write_tensor *w = calloc(n, sizeof *w);
    char (*names)[160] = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        const blipc_st_tensor *t = blipc__st_at(st, i);
        snprintf(names[i], sizeof names[i], "bert.%s", t->name);
        w[i] = (blipc_st_write_tensor){names[i], t->dtype, t->ndim, {0}, t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
    }
    const char *dir = make_dir("prefixed", "model.safetensors");
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_STATUS(blipc__st_write(p, w, n, NULL, 0, &e), BLIPC_OK, e.msg);
    free(w);
    free(names);
    blipc__st_free(st);
    char err[1024];
    blipc_embedder *a = NULL, *b = NULL;
    CHECK_STATUS(blipc_embedder_open(th_fixture("minilm-tiny"), NULL, &a, err, sizeof err), BLIPC_OK, err);
    CHECK_STATUS(blipc_embedder_open(dir, NULL, &b, err, sizeof err), BLIPC_OK, err);
    if (a && b) {
        const char *t[] = {"prefix or not"};
        float va[64], vb[64];
        CHECK_STATUS(blipc_embedder_embed(a, t, 1, va), BLIPC_OK, blipc_embedder_errmsg(a));
        CHECK_STATUS(blipc_embedder_embed(b, t, 1, vb), BLIPC_OK, blipc_embedder_errmsg(b));
        CHECK(!memcmp(va, vb, (size_t)blipc_embedder_dim(a) * sizeof(float)));
    }
    blipc_embedder_free(a);
    blipc_embedder_free(b);
}

int main(void) {
    th_require_file(th_fixture("minilm-tiny/config.json"));
    th_require_file(th_fixture("minilm-tiny/model.safetensors"));
    if (!have_vocab())
        fprintf(stderr, "NOTE: %s is absent: the embedder-level checks are skipped\n", th_fixture("minilm-tiny/vocab.txt"));
    RUN(config_fixture_values_and_defaults);
    RUN(config_rejects_wrong_types_and_values);
    RUN(config_sentence_transformers_side_files);
    RUN(embedder_missing_directory_and_files);
    RUN(embedder_tensor_missing_wrong_shape_wrong_dtype);
    RUN(embedder_bert_prefixed_checkpoint);
    return th_finish();
}
