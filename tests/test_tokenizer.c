/* test_tokenizer.c — the WordPiece and byte-level BPE tokenizers against the HF
 * fast-tokenizer goldens in ../shared/fixtures/tokenizers (every case), plus
 * bad-input and API-protocol tests. */
#include "harness.h"

#include "blipc.h"
#include "bpe.h"
#include "tokenizer.h"
#include "unicode.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static blipc_tokenizer *opt_tok, *bert_tok;

/* ------------------------------------------------------------ helpers */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode the JSON string value of "key" in one JSONL line, keeping embedded NULs
 * (cJSON cannot: its strings are NUL-terminated). malloc'd; NULL if absent. */
static char *json_text(const char *line, const char *key, size_t *len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    char *out = malloc(strlen(p) + 1), *o = out;
    if (!out) return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        char c = *p++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            long cp = 0;
            for (int k = 0; k < 4; k++) cp = cp * 16 + hexval(*p++);
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                long lo = 0;
                for (int k = 0; k < 4; k++) lo = lo * 16 + hexval(p[2 + k]);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            char u[4];
            size_t n = blipc__utf8_encode((int32_t)cp, u);
            memcpy(o, u, n);
            o += n;
            break;
        }
        default: *o++ = c; break; /* \" \\ \/ */
        }
    }
    *o = 0;
    *len = (size_t)(o - out);
    return out;
}

static size_t json_ids(const cJSON *obj, const char *key, int32_t **out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
    *out = malloc((n ? n : 1) * sizeof **out);
    for (const cJSON *it = a ? a->child : NULL; it; it = it->next) (*out)[i++] = (int32_t)it->valuedouble;
    return n;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *v, size_t n) {
    fprintf(stderr, "      %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)v[i]);
    fprintf(stderr, n > 40 ? " ... (%zu)\n" : "\n", n);
}

static void print_case(const char *cat, const char *text, size_t len) {
    fprintf(stderr, "    MISMATCH [%s] text=\"", cat);
    for (size_t i = 0; i < len && i < 120; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7F) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, len > 120 ? "...\" (%zu bytes)\n" : "\"\n", len);
}

typedef void (*case_fn)(const char *line, const cJSON *obj, int *n_cases, int *n_bad);

static void for_each_case(const char *rel, case_fn fn) {
    const char *path = th_fixture(rel);
    size_t size;
    char *data = th_read_file(path, &size);
    CHECKF(data != NULL, "cannot read %s", path);
    if (!data) return;
    int n_cases = 0, n_bad = 0;
    char *line = data;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (*line) {
            cJSON *obj = cJSON_Parse(line);
            CHECKF(obj != NULL, "%s: unparsable line", rel);
            if (obj) fn(line, obj, &n_cases, &n_bad);
            cJSON_Delete(obj);
        }
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "  %s: %d cases, %d mismatching\n", rel, n_cases, n_bad);
    CHECK(n_cases > 0);
    CHECK_EQ_INT(n_bad, 0);
    free(data);
}

static int encode_check(blipc_tokenizer *t, const char *cat, const char *text, size_t len, int max_length,
                        const int32_t *want, size_t nwant) {
    int32_t *got = NULL;
    size_t n = 0;
    blipc_err e = {0};
    blipc_status st = blipc__tokenizer_encode(t, text, len, 1, max_length, &got, &n, &e);
    int ok = st == BLIPC_OK && ids_equal(got, n, want, nwant);
    if (!ok) {
        print_case(cat, text, len);
        if (st) fprintf(stderr, "      status %d: %s\n", st, e.msg);
        print_ids("want", want, nwant);
        print_ids("got ", got, n);
    }
    free(got);
    return ok;
}

/* ------------------------------------------------------------ OPT */

static void opt_case(const char *line, const cJSON *obj, int *n_cases, int *n_bad) {
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(obj, "op");
    const cJSON *catj = cJSON_GetObjectItemCaseSensitive(obj, "category");
    const char *cat = cJSON_IsString(catj) ? catj->valuestring : "?";
    size_t len = 0;
    char *text = json_text(line, "text", &len);
    int32_t *ids;
    size_t n = json_ids(obj, "ids", &ids);
    (*n_cases)++;
    int ok = text != NULL;
    if (ok && cJSON_IsString(op) && strcmp(op->valuestring, "encode") == 0) {
        ok = encode_check(opt_tok, cat, text, len, 0, ids, n);
        /* without special tokens: ids[1:] (README) */
        int32_t *got = NULL;
        size_t ng = 0;
        if (ok && (blipc__tokenizer_encode(opt_tok, text, len, 0, 0, &got, &ng, NULL) != BLIPC_OK ||
                   !ids_equal(got, ng, ids + 1, n - 1))) {
            print_case(cat, text, len);
            fprintf(stderr, "      add_special=0 is not ids[1:]\n");
            ok = 0;
        }
        free(got);
        /* byte-level BPE round-trips every text (decode without the BOS, keeping
         * special tokens, which print as their own strings) */
        char *back = NULL;
        size_t bl = 0;
        if (ok && (blipc__tokenizer_decode(opt_tok, ids + 1, n - 1, 0, 0, &back, &bl, NULL) != BLIPC_OK || bl != len ||
                   memcmp(back, text, len) != 0)) {
            print_case(cat, text, len);
            fprintf(stderr, "      decode(encode(text)) differs: \"%s\"\n", back ? back : "(null)");
            ok = 0;
        }
        free(back);
    } else if (ok) {
        int skip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "skip_special_tokens"));
        int clean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "clean_up_tokenization_spaces"));
        char *got = NULL;
        size_t gl = 0;
        blipc_err e = {0};
        blipc_status st = blipc__tokenizer_decode(opt_tok, ids, n, skip, clean, &got, &gl, &e);
        ok = st == BLIPC_OK && gl == len && memcmp(got, text, len) == 0;
        if (ok && !clean) {
            /* the public decode uses the checkpoint's setting (false) */
            char buf[65536];
            size_t pl = 0;
            ok = blipc_tokenizer_decode(opt_tok, ids, n, skip, buf, sizeof buf, &pl) == BLIPC_OK && pl == len &&
                 memcmp(buf, text, len) == 0;
        }
        if (!ok) {
            print_case(cat, text, len);
            fprintf(stderr, "      decode skip=%d clean=%d status %d %s\n      got \"%s\"\n", skip, clean, st, e.msg,
                    got ? got : "(null)");
            print_ids("ids", ids, n);
        }
        free(got);
    }
    if (!ok) (*n_bad)++;
    free(text);
    free(ids);
}

TEST(opt_all_cases_match_hf) { for_each_case("tokenizers/opt/cases.jsonl", opt_case); }
TEST(opt_special_tokens_in_text_match_hf) { for_each_case("tokenizers/opt/cases_special_in_text.jsonl", opt_case); }

/* ------------------------------------------------------------ BERT */

static void bert_case(const char *line, const cJSON *obj, int *n_cases, int *n_bad) {
    const cJSON *catj = cJSON_GetObjectItemCaseSensitive(obj, "category");
    const char *cat = cJSON_IsString(catj) ? catj->valuestring : "?";
    size_t len = 0;
    char *text = json_text(line, "text", &len);
    int32_t *ids, *ids128 = NULL;
    size_t n = json_ids(obj, "ids", &ids);
    (*n_cases)++;
    int ok = text && encode_check(bert_tok, cat, text, len, 0, ids, n);
    if (ok && cJSON_GetObjectItemCaseSensitive(obj, "ids_max128")) {
        size_t n128 = json_ids(obj, "ids_max128", &ids128);
        ok = encode_check(bert_tok, cat, text, len, 128, ids128, n128);
    }
    if (!ok) (*n_bad)++;
    free(text);
    free(ids);
    free(ids128);
}

TEST(bert_all_cases_match_hf) { for_each_case("tokenizers/bert-uncased/cases.jsonl", bert_case); }
TEST(bert_special_tokens_in_text_match_hf) {
    for_each_case("tokenizers/bert-uncased/cases_special_in_text.jsonl", bert_case);
}

/* ------------------------------------------------------------ API and metadata */

TEST(kinds_sizes_and_special_ids_follow_the_checkpoints) {
    CHECK_EQ_INT(blipc_tokenizer_get_kind(opt_tok), BLIPC_TOKENIZER_BPE);
    CHECK_EQ_INT(blipc_tokenizer_get_kind(bert_tok), BLIPC_TOKENIZER_WORDPIECE);
    /* README: vocab.json ids 0..50264 plus the added <image> 50265; vocab.txt 30522 lines */
    CHECK_EQ_INT(blipc_tokenizer_vocab_size(opt_tok), 50266);
    CHECK_EQ_INT(blipc_tokenizer_vocab_size(bert_tok), 30522);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "bos"), 2);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "eos"), 2);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "unk"), 2);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "pad"), 1);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "cls"), -1);
    CHECK_EQ_INT(blipc__tokenizer_special_id(opt_tok, "nonsense"), -1);
    CHECK_EQ_INT(blipc__tokenizer_token_to_id(opt_tok, "<image>"), 50265);
    CHECK_EQ_INT(blipc__tokenizer_token_to_id(opt_tok, "Ġworld"), 232);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "cls"), 101);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "sep"), 102);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "pad"), 0);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "unk"), 100);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "mask"), 103);
    CHECK_EQ_INT(blipc__tokenizer_special_id(bert_tok, "bos"), -1);
    CHECK(blipc__tokenizer_is_special(opt_tok, 50265));
    CHECK(!blipc__tokenizer_is_special(opt_tok, 0));
    CHECK(!blipc__tokenizer_is_special(opt_tok, 50260));
    const char *s = blipc_tokenizer_id_to_token(opt_tok, 5);
    CHECK(s && strcmp(s, "Ġthe") == 0);
    s = blipc_tokenizer_id_to_token(opt_tok, 50265);
    CHECK(s && strcmp(s, "<image>") == 0);
    CHECK(blipc_tokenizer_id_to_token(opt_tok, 50266) == NULL);
    CHECK(blipc_tokenizer_id_to_token(opt_tok, -1) == NULL);
    s = blipc_tokenizer_id_to_token(bert_tok, 101);
    CHECK(s && strcmp(s, "[CLS]") == 0);
    CHECK(blipc_tokenizer_id_to_token(NULL, 1) == NULL);
    blipc_tokenizer_free(NULL);
}

TEST(encode_buffer_too_small_returns_the_size_needed) {
    const char *text = "A photo of a cat";
    int32_t all[16], few[3];
    size_t n = 0, n2 = 0;
    char err[256];
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, text, strlen(text), 1, 0, all, 16, &n, err, sizeof err), BLIPC_OK,
                 err);
    CHECK_EQ_INT(n, 6);
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, text, strlen(text), 1, 0, few, 3, &n2, err, sizeof err),
                 BLIPC_ERR_BUFFER_TOO_SMALL, err);
    CHECK_EQ_INT(n2, n);
    CHECK(memcmp(few, all, sizeof few) == 0);
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, text, strlen(text), 1, 0, NULL, 0, &n2, err, sizeof err),
                 BLIPC_ERR_BUFFER_TOO_SMALL, err);
    CHECK_EQ_INT(n2, n);
    /* exactly enough room */
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, text, strlen(text), 1, 0, all, n, &n2, err, sizeof err), BLIPC_OK,
                 err);
}

TEST(decode_buffer_too_small_returns_the_length) {
    int32_t ids[] = {2, 31414, 232};
    char buf[32];
    size_t len = 0;
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, ids, 3, 1, buf, sizeof buf, &len), BLIPC_OK, "");
    CHECK_EQ_INT(len, strlen("Hello world"));
    CHECK(strcmp(buf, "Hello world") == 0);
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, ids, 3, 1, buf, len, &len), BLIPC_ERR_BUFFER_TOO_SMALL, "");
    CHECK_EQ_INT(len, 11);
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, ids, 3, 1, NULL, 0, &len), BLIPC_ERR_BUFFER_TOO_SMALL, "");
    CHECK_EQ_INT(len, 11);
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, ids, 3, 1, buf, 12, &len), BLIPC_OK, "");
    /* skip_special=0 keeps the BOS text; out-of-range ids are skipped */
    int32_t ids2[] = {2, 31414, 999999, -5, 232};
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, ids2, 5, 0, buf, sizeof buf, &len), BLIPC_OK, "");
    CHECK(strcmp(buf, "</s>Hello world") == 0);
    /* n == 0 */
    CHECK_STATUS(blipc_tokenizer_decode(opt_tok, NULL, 0, 1, buf, sizeof buf, &len), BLIPC_OK, "");
    CHECK_EQ_INT(len, 0);
    CHECK_STATUS(blipc_tokenizer_decode(NULL, ids, 3, 1, buf, sizeof buf, &len), BLIPC_ERR_INVALID_ARG, "");
    /* BERT: the WordPiece decoder joins "##" pieces */
    int32_t bids[] = {101, 1037, 2450, 2652, 102};
    CHECK_STATUS(blipc_tokenizer_decode(bert_tok, bids, 5, 1, buf, sizeof buf, &len), BLIPC_OK, "");
    CHECK(strcmp(buf, "a woman playing") == 0);
}

TEST(empty_text_gives_only_the_special_tokens) {
    int32_t ids[4];
    size_t n = 9;
    char err[256];
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, NULL, 0, 1, 0, ids, 4, &n, err, sizeof err), BLIPC_OK, err);
    CHECK(n == 1 && ids[0] == 2);
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, "", 0, 0, 0, ids, 4, &n, err, sizeof err), BLIPC_OK, err);
    CHECK_EQ_INT(n, 0);
    CHECK_STATUS(blipc_tokenizer_encode(bert_tok, "", 0, 1, 128, ids, 4, &n, err, sizeof err), BLIPC_OK, err);
    CHECK(n == 2 && ids[0] == 101 && ids[1] == 102);
}

TEST(invalid_utf8_text_is_rejected_naming_the_offset) {
    const char bad[] = "abc\xC3(def";
    int32_t ids[16];
    size_t n;
    char err[256];
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, bad, sizeof bad - 1, 1, 0, ids, 16, &n, err, sizeof err),
                 BLIPC_ERR_INVALID_ARG, err);
    CHECK_CONTAINS(err, "byte offset 3");
    CHECK_STATUS(blipc_tokenizer_encode(bert_tok, bad, sizeof bad - 1, 1, 0, ids, 16, &n, err, sizeof err),
                 BLIPC_ERR_INVALID_ARG, err);
    CHECK_CONTAINS(err, "byte offset 3");
    /* overlong, surrogate, beyond U+10FFFF, truncated at the end */
    const char *bads[] = {"\xC0\xAF", "x\xED\xA0\x80", "xy\xF4\x90\x80\x80", "xyz\xE2\x82"};
    size_t offs[] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++) {
        size_t off = 99;
        CHECK(!blipc__utf8_validate(bads[i], strlen(bads[i]), &off));
        CHECK_EQ_INT(off, offs[i]);
    }
    CHECK(blipc__utf8_validate("\xF0\x9F\x98\x80 \xE2\x82\xAC \xC3\xA9", 11, NULL));
    /* bad arguments */
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, NULL, 5, 1, 0, ids, 16, &n, err, sizeof err), BLIPC_ERR_INVALID_ARG,
                 err);
    CHECK_STATUS(blipc_tokenizer_encode(opt_tok, "a", 1, 1, -1, ids, 16, &n, err, sizeof err), BLIPC_ERR_INVALID_ARG,
                 err);
    CHECK_STATUS(blipc_tokenizer_encode(bert_tok, "a", 1, 1, 1, ids, 16, &n, err, sizeof err),
                 BLIPC_ERR_INVALID_ARG, err);
    CHECK_STATUS(blipc_tokenizer_encode(NULL, "a", 1, 1, 0, ids, 16, &n, err, sizeof err), BLIPC_ERR_INVALID_ARG,
                 err);
}

TEST(lossy_decoding_replaces_each_maximal_invalid_subsequence) {
    /* Unicode "maximal subpart" examples (same as Python errors="replace") */
    struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"a\x80z", "a\xEF\xBF\xBDz"},
        {"\xE2\x82", "\xEF\xBF\xBD"},
        {"\xE2\x82z", "\xEF\xBF\xBDz"},
        {"\xF0\x9F\x98", "\xEF\xBF\xBD"},
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xFF\xFE", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        size_t n = blipc__utf8_lossy((const unsigned char *)cases[i].in, strlen(cases[i].in), out);
        CHECKF(n == strlen(cases[i].want) && strcmp(out, cases[i].want) == 0, "case %zu", i);
    }
}

/* ------------------------------------------------------------ long texts, speed */

static char *make_text(size_t nchars) {
    const char *words[] = {"a ", "woman ", "plays ", "with ", "her ", "dog ", "on ", "the ", "beach, ", "café ",
                           "日本 ", "isn't ", "42 ", "\n", "naïve "};
    size_t cap = nchars * 4 + 16, n = 0, k = 0, chars = 0;
    char *s = malloc(cap);
    while (chars < nchars) {
        const char *w = words[k++ % (sizeof words / sizeof words[0])];
        size_t wl = strlen(w), wc = 0;
        for (size_t i = 0; i < wl; i++) wc += ((unsigned char)w[i] & 0xC0) != 0x80;
        if (chars + wc > nchars) break;
        memcpy(s + n, w, wl);
        n += wl;
        chars += wc;
    }
    while (chars < nchars) s[n++] = 'x', chars++;
    s[n] = 0;
    return s;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

TEST(text_of_100000_characters_encodes_and_truncates) {
    char *text = make_text(100000);
    size_t len = strlen(text);
    int32_t *ids = NULL;
    size_t n = 0;
    blipc_err e = {0};
    CHECK_STATUS(blipc__tokenizer_encode(opt_tok, text, len, 1, 0, &ids, &n, &e), BLIPC_OK, e.msg);
    CHECK(n > 10000);
    char *back = NULL;
    size_t bl = 0;
    CHECK_STATUS(blipc__tokenizer_decode(opt_tok, ids, n, 1, 0, &back, &bl, &e), BLIPC_OK, e.msg);
    CHECK(back && bl == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    CHECK_STATUS(blipc__tokenizer_encode(bert_tok, text, len, 1, 128, &ids, &n, &e), BLIPC_OK, e.msg);
    CHECK(n == 128 && ids[0] == 101 && ids[127] == 102);
    free(ids);
    CHECK_STATUS(blipc__tokenizer_encode(bert_tok, text, len, 1, 0, &ids, &n, &e), BLIPC_OK, e.msg);
    CHECK(n > 10000);
    free(ids);
    /* one 100,000-character word: BPE must stay fast; WordPiece gives [UNK] */
    memset(text, 'q', 100000);
    text[100000] = 0;
    double t0 = now_ms();
    CHECK_STATUS(blipc__tokenizer_encode(opt_tok, text, 100000, 1, 0, &ids, &n, &e), BLIPC_OK, e.msg);
    double t1 = now_ms();
    fprintf(stderr, "  BPE of one 100,000-byte word: %.2f ms, %zu ids\n", t1 - t0, n);
    CHECK(t1 - t0 < 2000);
    free(ids);
    CHECK_STATUS(blipc__tokenizer_encode(bert_tok, text, 100000, 1, 0, &ids, &n, &e), BLIPC_OK, e.msg);
    CHECK(n == 3 && ids[1] == 100);
    free(ids);
    free(text);
}

TEST(tokenizing_5000_characters_is_fast) {
    char *text = make_text(5000);
    size_t len = strlen(text);
    int32_t *ids;
    size_t n;
    blipc_err e = {0};
    for (int k = 0; k < 2; k++) {
        blipc_tokenizer *t = k == 0 ? opt_tok : bert_tok;
        int reps = 50;
        double t0 = now_ms();
        for (int r = 0; r < reps; r++) {
            CHECK_STATUS(blipc__tokenizer_encode(t, text, len, 1, 0, &ids, &n, &e), BLIPC_OK, e.msg);
            free(ids);
        }
        double ms = (now_ms() - t0) / reps;
        fprintf(stderr, "  %s: %.3f ms per 5,000-character text\n", k == 0 ? "BPE" : "WordPiece", ms);
        CHECK(ms < 50); /* generous: sanitizer builds are slow */
    }
    free(text);
}

/* ------------------------------------------------------------ bad files */

static const char *tmp_model(const char *name) {
    static char path[4][1024];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", th_tmpdir(), name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    if (system(cmd) != 0) return NULL;
    return p;
}

static void write_in(const char *dir, const char *name, const char *content) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(th_write_file(path, content, strlen(content)) == 0);
}

static int symlink_fixture(const char *dir, const char *name, const char *rel) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "ln -sf '%s' '%s'", th_fixture(rel), path);
    return system(cmd);
}

TEST(missing_or_malformed_vocab_files_are_reported_by_name) {
    blipc_tokenizer *t = (blipc_tokenizer *)1;
    char err[1024];
    /* no directory */
    CHECK_STATUS(blipc_tokenizer_open("/nonexistent/blipc/model", &t, err, sizeof err), BLIPC_ERR_IO, err);
    CHECK(t == NULL);
    CHECK_CONTAINS(err, "/nonexistent/blipc/model");
    /* empty directory */
    const char *d = tmp_model("empty");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_IO, err);
    CHECK_CONTAINS(err, "vocab.txt");
    /* vocab.json without merges.txt */
    d = tmp_model("nomerges");
    write_in(d, "vocab.json", "{\"a\": 0}");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_IO, err);
    CHECK_CONTAINS(err, "merges.txt");
    /* malformed vocab.json */
    d = tmp_model("badjson");
    write_in(d, "vocab.json", "{\"a\": 0,\n\"b\": 1,\n\"c\" 2}");
    write_in(d, "merges.txt", "#version: 0.2\n");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "vocab.json: line 3");
    write_in(d, "vocab.json", "{\"a\": \"zero\"}");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "vocab.json");
    write_in(d, "vocab.json", "[1, 2]");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "vocab.json");
    /* a tiny file with one huge id must not allocate a gigantic id table */
    write_in(d, "vocab.json", "{\"a\": 0, \"b\": 2147483646}");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "ids must be dense");
    /* real vocab.json, truncated merges.txt (last line cut before its space) */
    d = tmp_model("truncmerges");
    CHECK(symlink_fixture(d, "vocab.json", "tokenizers/opt/vocab.json") == 0);
    write_in(d, "merges.txt", "#version: 0.2\nĠ t\nĠ a\nh e\nĠt");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "merges.txt: line 5");
    write_in(d, "merges.txt", "#version: 0.2\nĠ t\nĠ  a\n");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "merges.txt: line 3");
    write_in(d, "merges.txt", "#version: 0.2\nĠ t\nzzzzqqq xxxxyyy\n");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "merges.txt: line 3");
    /* a consistent short merges.txt loads, and BPE then only applies those merges */
    write_in(d, "merges.txt", "#version: 0.2\nĠ t\nh e\nĠt he\n");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_OK, err);
    if (t) {
        int32_t ids[8];
        size_t n = 0;
        CHECK_STATUS(blipc_tokenizer_encode(t, " the", 4, 0, 0, ids, 8, &n, err, sizeof err), BLIPC_OK, err);
        CHECK(n == 1 && ids[0] == 5); /* "Ġthe" */
        CHECK_STATUS(blipc_tokenizer_encode(t, " tea", 4, 0, 0, ids, 8, &n, err, sizeof err), BLIPC_OK, err);
        CHECK_EQ_INT(n, 3); /* Ġt e a */
        blipc_tokenizer_free(t);
        t = NULL;
    }
    /* malformed tokenizer_config.json next to a good vocab.txt */
    d = tmp_model("badcfg");
    write_in(d, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
    write_in(d, "tokenizer_config.json", "{\"do_lower_case\": tru}");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "tokenizer_config.json");
    write_in(d, "tokenizer_config.json", "{\"do_lower_case\": false}");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_OK, err);
    if (t) {
        int32_t ids[8];
        size_t n = 0;
        /* cased: "Hello" is not "hello" -> [UNK] */
        CHECK_STATUS(blipc_tokenizer_encode(t, "hello Hello", 11, 1, 0, ids, 8, &n, err, sizeof err), BLIPC_OK, err);
        CHECK(n == 4 && ids[0] == 2 && ids[1] == 4 && ids[2] == 1 && ids[3] == 3);
        blipc_tokenizer_free(t);
    }
    /* empty vocab.txt */
    d = tmp_model("emptyvocab");
    write_in(d, "vocab.txt", "");
    CHECK_STATUS(blipc_tokenizer_open(d, &t, err, sizeof err), BLIPC_ERR_FORMAT, err);
    CHECK_CONTAINS(err, "vocab.txt");
}

typedef struct piece_acc {
    const char *s;
    char out[256];
} piece_acc;

static blipc_status collect_piece(void *user, size_t start, size_t end) {
    piece_acc *a = user;
    size_t n = strlen(a->out);
    if (n) a->out[n++] = '|';
    snprintf(a->out + n, sizeof a->out - n, "%.*s", (int)(end - start), a->s + start);
    return BLIPC_OK;
}

TEST(gpt2_pretokenizer_splits_like_the_regex) {
    /* README: \s+(?!\S) leaves the last space of a run to start the next word;
     * contractions are lower-case only */
    struct {
        const char *in;
        const char *want; /* pieces joined by | */
    } cases[] = {
        {"Hello  world", "Hello| | world"},
        {"a\n\n b", "a|\n\n| b"},
        {"it's IT'S", "it|'s| IT|'|S"},
        {"x  ", "x|  "},
        {"?!  42abc", "?!| | 42|abc"},
        {" \na", " |\n|a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        piece_acc a = {cases[i].in, ""};
        CHECK_STATUS(blipc__gpt2_pretokenize(cases[i].in, strlen(cases[i].in), collect_piece, &a), BLIPC_OK, "");
        CHECKF(strcmp(a.out, cases[i].want) == 0, "\"%s\" -> \"%s\", want \"%s\"", cases[i].in, a.out,
               cases[i].want);
    }
}

TEST(minilm_tiny_sentences_match_their_input_ids) {
    const char *path = th_fixture("minilm-tiny/sentences.json");
    size_t size;
    char *data = th_read_file(path, &size);
    if (!data) {
        fprintf(stderr, "  (skipped: %s absent)\n", path);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", th_fixture("minilm-tiny"));
    blipc_tokenizer *t = NULL;
    char err[1024];
    CHECK_STATUS(blipc_tokenizer_open(dir, &t, err, sizeof err), BLIPC_OK, err);
    cJSON *root = cJSON_Parse(data);
    const cJSON *sent = cJSON_GetObjectItemCaseSensitive(root, "sentences");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "input_ids");
    CHECK(t && cJSON_GetArraySize(sent) > 0 && cJSON_GetArraySize(sent) == cJSON_GetArraySize(rows));
    const cJSON *row = rows ? rows->child : NULL;
    for (const cJSON *it = sent ? sent->child : NULL; t && it && row; it = it->next, row = row->next) {
        int32_t want[512], got[512];
        size_t nw = 0, ng = 0;
        for (const cJSON *x = row->child; x && nw < 512; x = x->next) want[nw++] = (int32_t)x->valuedouble;
        while (nw && want[nw - 1] == 0) nw--; /* [PAD] */
        CHECK_STATUS(blipc_tokenizer_encode(t, it->valuestring, strlen(it->valuestring), 1, 128, got, 512, &ng, err,
                                            sizeof err), BLIPC_OK, err);
        CHECKF(ids_equal(got, ng, want, nw), "\"%.60s\"", it->valuestring);
    }
    cJSON_Delete(root);
    blipc_tokenizer_free(t);
    free(data);
}

#include <pthread.h>

typedef struct thread_job {
    const char *text;
    size_t len;
    int32_t *want;
    size_t nwant;
    int mismatches;
} thread_job;

static void *encode_loop(void *arg) {
    thread_job *j = arg;
    for (int r = 0; r < 200; r++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (blipc__tokenizer_encode(opt_tok, j->text, j->len, 1, 0, &ids, &n, NULL) != BLIPC_OK ||
            !ids_equal(ids, n, j->want, j->nwant))
            j->mismatches++;
        free(ids);
    }
    return NULL;
}

TEST(one_tokenizer_serves_two_threads_at_once) {
    char *text = make_text(3000);
    thread_job jobs[2];
    int32_t *want = NULL;
    size_t nwant = 0;
    CHECK_STATUS(blipc__tokenizer_encode(opt_tok, text, strlen(text), 1, 0, &want, &nwant, NULL), BLIPC_OK, "");
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (thread_job){text, strlen(text), want, nwant, 0};
        CHECK(pthread_create(&th[k], NULL, encode_loop, &jobs[k]) == 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        CHECK_EQ_INT(jobs[k].mismatches, 0);
    }
    free(want);
    free(text);
}

/* The CLI prints what the library encodes (skips when the tool is not built). */
TEST(blipc_tokenize_cli_prints_hf_ids) {
    const char *bd = getenv("BLIPC_BUILD_DIR");
    char exe[4096], cmd[8192], out[4096] = "";
    snprintf(exe, sizeof exe, "%s/tools/blipc-tokenize", bd && *bd ? bd : ".");
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "  (skipped: %s not built)\n", exe);
        return;
    }
    /* README: transformers' BLIP-2 test prompt */
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' 'Question: which city is this? Answer:'", exe,
             th_fixture("tokenizers/opt"));
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (!f) return;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    CHECK_EQ_INT(pclose(f), 0);
    CHECK(strcmp(out, "2 45641 35 61 343 16 42 116 31652 35\n") == 0);
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --json --max-length 4 'a woman playing with her dog' 2>&1", exe,
             th_fixture("tokenizers/bert-uncased"));
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    CHECK_EQ_INT(pclose(f), 0);
    CHECK_CONTAINS(out, "\"ids\":[101,1037,2450,102]");
    CHECK_CONTAINS(out, "\"tokens\":[\"[CLS]\",\"a\",\"woman\",\"[SEP]\"]");
    /* usage error: exit status 2 */
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' 2>/dev/null", exe, th_fixture("tokenizers/opt"));
    f = popen(cmd, "r");
    while (fread(out, 1, sizeof out, f) > 0) {
    }
    int rc = pclose(f);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

int main(void) {
    const char *opt_dir = th_fixture("tokenizers/opt");
    const char *bert_dir = th_fixture("tokenizers/bert-uncased");
    char od[4096], bd[4096];
    snprintf(od, sizeof od, "%s", opt_dir);
    snprintf(bd, sizeof bd, "%s", bert_dir);
    th_require_file(th_fixture("tokenizers/opt/vocab.json"));
    th_require_file(th_fixture("tokenizers/opt/merges.txt"));
    th_require_file(th_fixture("tokenizers/bert-uncased/vocab.txt"));
    char err[1024];
    double t0 = now_ms();
    if (blipc_tokenizer_open(od, &opt_tok, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "cannot open %s: %s\n", od, err);
        return 1;
    }
    double t1 = now_ms();
    if (blipc_tokenizer_open(bd, &bert_tok, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "cannot open %s: %s\n", bd, err);
        return 1;
    }
    fprintf(stderr, "load: OPT BPE %.1f ms, BERT WordPiece %.1f ms\n", t1 - t0, now_ms() - t1);
    RUN(opt_all_cases_match_hf);
    RUN(opt_special_tokens_in_text_match_hf);
    RUN(bert_all_cases_match_hf);
    RUN(bert_special_tokens_in_text_match_hf);
    RUN(kinds_sizes_and_special_ids_follow_the_checkpoints);
    RUN(encode_buffer_too_small_returns_the_size_needed);
    RUN(decode_buffer_too_small_returns_the_length);
    RUN(empty_text_gives_only_the_special_tokens);
    RUN(invalid_utf8_text_is_rejected_naming_the_offset);
    RUN(lossy_decoding_replaces_each_maximal_invalid_subsequence);
    RUN(text_of_100000_characters_encodes_and_truncates);
    RUN(tokenizing_5000_characters_is_fast);
    RUN(missing_or_malformed_vocab_files_are_reported_by_name);
    RUN(gpt2_pretokenizer_splits_like_the_regex);
    RUN(minilm_tiny_sentences_match_their_input_ids);
    RUN(one_tokenizer_serves_two_threads_at_once);
    RUN(blipc_tokenize_cli_prints_hf_ids);
    blipc_tokenizer_free(opt_tok);
    blipc_tokenizer_free(bert_tok);
    return th_finish();
}
