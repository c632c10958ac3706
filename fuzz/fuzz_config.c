/* fuzz_config — the JSON config loaders on arbitrary file contents.
 *
 * Input: one selector byte, then the file contents. The selector (mod 8) picks
 * which file of a model directory the bytes become; the other files of that
 * directory are valid copies of the fixtures (minilm-tiny), so the loader gets
 * past them and reaches the fuzzed one:
 *   0 config.json               -> blipc__bert_config_load
 *   1 config.json               -> blipc__blip2_config_load
 *   2 preprocessor_config.json  -> blipc__preproc_config_load (file) + _parse (memory)
 *   3 generation_config.json    -> blipc__gen_config_load (+ blipc__gen_params_check)
 *   4 sentence_bert_config.json -> blipc__bert_config_load
 *   5 modules.json              -> blipc__bert_config_load
 *   6 1_Pooling/config.json     -> blipc__bert_config_load
 *   7 model.safetensors.index.json (two small shards beside it) -> blipc__st_open_dir
 */
#include "fuzz_common.h"
#include "generate.h"
#include "hfconfig.h"
#include "preprocess.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define N_MODES 8
static char mode_dir[N_MODES][600];

static void path2(char *buf, size_t cap, const char *a, const char *b) {
    if ((size_t)snprintf(buf, cap, "%s/%s", a, b) >= cap) abort();
}

/* Valid side files for the BERT modes (copied from the fixtures when present,
 * otherwise small equivalents so the fuzzer also runs without them). */
static void put_side_file(const char *dir, const char *rel, const char *fallback) {
    char src[1024], dst[1024];
    path2(src, sizeof src, fuzz_fixtures(), "minilm-tiny");
    char src2[1200];
    path2(src2, sizeof src2, src, rel);
    path2(dst, sizeof dst, dir, rel);
    if (!fuzz_copy(src2, dst)) fuzz_write(dst, fallback, strlen(fallback));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *tmp = fuzz_tmpdir();
    for (int m = 0; m < N_MODES; m++) {
        snprintf(mode_dir[m], sizeof mode_dir[m], "%s/m%d", tmp, m);
        if (mkdir(mode_dir[m], 0700) != 0) abort();
        char pool[700];
        path2(pool, sizeof pool, mode_dir[m], "1_Pooling");
        if (m >= 4 && m <= 6) {
            if (mkdir(pool, 0700) != 0) abort();
            put_side_file(mode_dir[m], "config.json", "{\"hidden_size\": 32, \"num_attention_heads\": 4}");
            put_side_file(mode_dir[m], "sentence_bert_config.json", "{\"max_seq_length\": 128}");
            put_side_file(mode_dir[m], "modules.json",
                          "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
                          "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
                          "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]");
            put_side_file(mode_dir[m], "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true}");
        }
    }
    /* two shards for the index mode */
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4] = {0x3c00, 0xbc00, 0x7c00, 0x0001};
    int64_t c[2] = {-1, 1};
    blipc_st_write_tensor t1[2] = {{"a", BLIPC_DT_F32, 2, {2, 3}, a}, {"b", BLIPC_DT_F16, 1, {4}, b}};
    blipc_st_write_tensor t2[1] = {{"c", BLIPC_DT_I64, 1, {2}, c}};
    char p[1024];
    blipc_err e = {0};
    path2(p, sizeof p, mode_dir[7], "model-00001-of-00002.safetensors");
    if (blipc__st_write(p, t1, 2, NULL, 0, &e)) abort();
    path2(p, sizeof p, mode_dir[7], "model-00002-of-00002.safetensors");
    if (blipc__st_write(p, t2, 1, NULL, 0, &e)) abort();
    return 0;
}

static const char *const mode_file[N_MODES] = {
    "config.json", "config.json", "preprocessor_config.json", "generation_config.json",
    "sentence_bert_config.json", "modules.json", "1_Pooling/config.json", "model.safetensors.index.json",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int m = data[0] % N_MODES;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char path[1024];
    path2(path, sizeof path, mode_dir[m], mode_file[m]);
    fuzz_write(path, body, len);

    blipc_err e = {0};
    blipc_status rc;
    switch (m) {
    case 0: case 4: case 5: case 6: {
        blipc_bert_config c;
        rc = blipc__bert_config_load(mode_dir[m], &c, &e);
        fuzz_check_status("bert_config_load", rc, &e);
        if (rc == BLIPC_OK && (c.hidden_size <= 0 || c.num_attention_heads <= 0 ||
                               c.hidden_size % c.num_attention_heads || c.max_seq_length <= 0 ||
                               c.max_seq_length > c.max_position_embeddings))
            abort();
    } break;
    case 1: {
        blipc_blip2_config c;
        rc = blipc__blip2_config_load(mode_dir[m], &c, &e);
        fuzz_check_status("blip2_config_load", rc, &e);
        if (rc == BLIPC_OK && (c.vision.hidden_size <= 0 || c.qformer.hidden_size <= 0 || c.text.hidden_size <= 0 ||
                               c.num_query_tokens <= 0))
            abort();
    } break;
    case 2: {
        blipc_preproc_config c;
        rc = blipc__preproc_config_load(path, &c, &e);
        fuzz_check_status("preproc_config_load", rc, &e);
        if (rc == BLIPC_OK && (c.height <= 0 || c.width <= 0)) abort();
        /* from memory, without a NUL after the text */
        char *copy = malloc(len ? len : 1);
        if (!copy) return 0;
        memcpy(copy, body, len);
        blipc_err e2 = {0};
        blipc_status rc2 = blipc__preproc_config_parse(copy, len, "fuzz", &c, &e2);
        fuzz_check_status("preproc_config_parse", rc2, &e2);
        free(copy);
        if (rc2 != rc && len < (1u << 20)) {
            fprintf(stderr, "file and memory parse disagree: %d vs %d (%s | %s)\n", rc, rc2, e.msg, e2.msg);
            abort();
        }
    } break;
    case 3: {
        blipc_gen_params gp;
        int eos = 50118, pad = 1;
        rc = blipc__gen_config_load(mode_dir[m], &gp, &eos, &pad, &e);
        fuzz_check_status("gen_config_load", rc, &e);
        if (rc == BLIPC_OK) {
            /* what the loader accepts must pass the parameter check */
            blipc_err e2 = {0};
            if (blipc__gen_params_check(&gp, &e2) != BLIPC_OK) {
                fprintf(stderr, "gen_config_load accepted what gen_params_check refuses: %s\n", e2.msg);
                abort();
            }
        }
    } break;
    default: {
        blipc_safetensors *st = NULL;
        rc = blipc__st_open_dir(mode_dir[m], &st, &e);
        fuzz_check_status("st_open_dir", rc, &e);
        if (rc == BLIPC_OK) {
            for (size_t i = 0; i < blipc__st_count(st); i++) {
                const blipc_st_tensor *t = blipc__st_at(st, i);
                const float *f;
                blipc_err e2 = {0};
                blipc_status r2 = blipc__st_get_f32(st, t->name, -1, NULL, &f, &e2);
                fuzz_check_status("st_get_f32", r2, &e2);
            }
            blipc__st_free(st);
        } else if (st) {
            abort();
        }
    } break;
    }
    return 0;
}
