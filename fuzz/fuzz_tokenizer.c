/* fuzz_tokenizer — tokenizers on arbitrary bytes.
 *
 * Input: a mode byte (mod 11), a flags byte, then the payload.
 *   0/1  blipc_tokenizer_encode(payload) with the real BERT / OPT vocabularies
 *   2/3  blipc_tokenizer_decode(payload as little-endian int32 ids), BERT / OPT
 *   4    payload is vocab.txt                       (then open + encode/decode a probe text)
 *   5    payload is vocab.json  (small merges.txt beside it)
 *   6    payload is merges.txt  (small vocab.json beside it)
 *   7    payload is tokenizer_config.json, small WordPiece vocab
 *   8    payload is tokenizer_config.json, small BPE vocab
 *   9    payload is added_tokens.json, small BPE vocab
 *   10   payload is special_tokens_map.json, small WordPiece vocab
 * Flags: bit 0 add_special / skip_special, bits 1-4 max_length (0 = none).
 * The real vocabularies are read from the fixtures (BLIPC_FIXTURES); when they
 * are absent modes 0-3 do nothing. No vocabulary file is copied anywhere. */
#include "fuzz_common.h"
#include "tokenizer.h"

#include <errno.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define N_MODES 11

static blipc_tokenizer *tok_bert, *tok_opt;
static char mode_dir[N_MODES][600];

static void path2(char *buf, size_t cap, const char *a, const char *b) {
    if ((size_t)snprintf(buf, cap, "%s/%s", a, b) >= cap) abort();
}

static blipc_tokenizer *open_real(const char *rel) {
    char dir[1024];
    path2(dir, sizeof dir, fuzz_fixtures(), rel);
    blipc_tokenizer *t = NULL;
    char err[512];
    if (blipc_tokenizer_open(dir, &t, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "fuzz_tokenizer: real vocabulary not available (%s): modes 0-3 are skipped\n", err);
        return NULL;
    }
    return t;
}

/* GPT-2 bytes_to_unicode: the code point byte b is shown as */
static int byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

static size_t put_utf8(char *o, int cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

static const char small_wp_vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n!\na\nb\n##b\nthe\n\xc3\xa9\n";
static const char small_merges[] = "#version: 0.2\n\xc4\xa0 t\nh e\n\xc4\xa0t he\n";

static void write_small_bpe_vocab(const char *path) {
    char buf[8192];
    size_t n = 0;
    buf[n++] = '{';
    for (int b = 0; b < 256; b++) {
        buf[n++] = '"';
        int cp = byte_cp(b);
        if (cp == '"' || cp == '\\') buf[n++] = '\\';
        n += put_utf8(buf + n, cp);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\": %d, ", b);
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "\"\xc4\xa0t\": 256, \"he\": 257, \"\xc4\xa0the\": 258, \"<pad>\": 259, \"</s>\": 260, "
                          "\"<unk>\": 261}");
    fuzz_write(path, buf, n);
}

static void put(int m, const char *name, const char *text) {
    char p[1024];
    path2(p, sizeof p, mode_dir[m], name);
    fuzz_write(p, text, strlen(text));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    tok_bert = open_real("tokenizers/bert-uncased");
    tok_opt = open_real("tokenizers/opt");
    const char *tmp = fuzz_tmpdir();
    for (int m = 4; m < N_MODES; m++) {
        snprintf(mode_dir[m], sizeof mode_dir[m], "%s/t%d", tmp, m);
        if (mkdir(mode_dir[m], 0700) != 0 && errno != EEXIST) abort();
        char p[1024];
        int bpe = m == 5 || m == 6 || m == 8 || m == 9;
        if (bpe) {
            path2(p, sizeof p, mode_dir[m], "vocab.json");
            write_small_bpe_vocab(p);
            put(m, "merges.txt", small_merges);
        } else {
            put(m, "vocab.txt", small_wp_vocab);
        }
    }
    return 0;
}

static const char probe[] = "Hello, worlds! the <pad> [MASK] abb \xc3\xa9 \xe4\xb8\xad </s> \xf0\x9f\x98\x80 ##s";

/* encode through the public API, checking the buffer-size contract */
static void encode(const blipc_tokenizer *t, const char *text, size_t len, int add_special, int max_length) {
    int32_t small[8];
    size_t n = 0;
    char err[512] = "";
    blipc_status rc = blipc_tokenizer_encode(t, text, len, add_special, max_length, small, 8, &n, err, sizeof err);
    if (rc == BLIPC_ERR_BUFFER_TOO_SMALL) {
        if (n <= 8) abort();
        int32_t *ids = malloc(n * sizeof *ids);
        if (!ids) return;
        size_t n2 = 0;
        rc = blipc_tokenizer_encode(t, text, len, add_special, max_length, ids, n, &n2, err, sizeof err);
        if (rc != BLIPC_OK || n2 != n || memcmp(ids, small, sizeof small) != 0) {
            fprintf(stderr, "encode: second call disagrees (%d, %zu vs %zu): %s\n", rc, n2, n, err);
            abort();
        }
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= blipc_tokenizer_vocab_size(t)) abort();
        if (max_length > 0 && n > (size_t)max_length) abort();
        free(ids);
        return;
    }
    fuzz_check_msg("tokenizer_encode", rc, err);
    if (rc == BLIPC_OK) {
        if (n > 8) abort();
        if (max_length > 0 && n > (size_t)max_length) abort();
        for (size_t i = 0; i < n; i++)
            if (small[i] < 0 || small[i] >= blipc_tokenizer_vocab_size(t)) abort();
    }
}

static void decode(const blipc_tokenizer *t, const int32_t *ids, size_t n, int skip_special) {
    char small[16];
    size_t len = 0;
    blipc_status rc = blipc_tokenizer_decode(t, ids, n, skip_special, small, sizeof small, &len);
    if (rc == BLIPC_ERR_BUFFER_TOO_SMALL) {
        if (len < sizeof small) abort();
        char *s = malloc(len + 1);
        if (!s) return;
        size_t len2 = 0;
        rc = blipc_tokenizer_decode(t, ids, n, skip_special, s, len + 1, &len2);
        if (rc != BLIPC_OK || len2 != len || s[len] != 0 || strlen(s) > len) abort();
        free(s);
        return;
    }
    if (rc != BLIPC_OK && rc != BLIPC_ERR_NOMEM) {
        fprintf(stderr, "decode: status %d\n", rc);
        abort();
    }
    if (rc == BLIPC_OK && (len >= sizeof small || small[len] != 0)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int m = data[0] % N_MODES;
    int flag = data[1] & 1, max_length = (data[1] >> 1) & 15;
    const uint8_t *pl = data + 2;
    size_t n = size - 2;
    /* a private copy without a terminating NUL: encode takes a length */
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    if (n) memcpy(buf, pl, n);

    if (m <= 1) {
        const blipc_tokenizer *t = m == 0 ? tok_bert : tok_opt;
        if (t) encode(t, (const char *)buf, n, flag, max_length);
        if (t && m == 1 && !flag && max_length == 0) {
            /* byte-level BPE is lossless: decode(encode(x)) == x for valid UTF-8
             * without special-token text (they all start with '<') */
            int32_t *ids = NULL;
            size_t nid = 0;
            blipc_err e = {0};
            if (!memchr(buf, '<', n) && blipc__tokenizer_encode(t, (const char *)buf, n, 0, 0, &ids, &nid, &e) == BLIPC_OK) {
                char *s = NULL;
                size_t sl = 0;
                if (blipc__tokenizer_decode(t, ids, nid, 0, 0, &s, &sl, &e) == BLIPC_OK &&
                    (sl != n || memcmp(s, buf, n) != 0)) {
                    fprintf(stderr, "OPT round trip changed the text (%zu -> %zu bytes)\n", n, sl);
                    abort();
                }
                free(s);
            }
            free(ids);
        }
    } else if (m <= 3) {
        const blipc_tokenizer *t = m == 2 ? tok_bert : tok_opt;
        size_t nid = n / 4;
        int32_t *ids = malloc((nid ? nid : 1) * sizeof *ids);
        if (ids && t) {
            memcpy(ids, buf, nid * 4);
            decode(t, ids, nid, flag);
        }
        free(ids);
    } else {
        static const char *const file[N_MODES] = {
            [4] = "vocab.txt", [5] = "vocab.json", [6] = "merges.txt", [7] = "tokenizer_config.json",
            [8] = "tokenizer_config.json", [9] = "added_tokens.json", [10] = "special_tokens_map.json"};
        char p[1024];
        path2(p, sizeof p, mode_dir[m], file[m]);
        fuzz_write(p, buf, n);
        blipc_tokenizer *t = NULL;
        char err[512] = "";
        blipc_status rc = blipc_tokenizer_open(mode_dir[m], &t, err, sizeof err);
        fuzz_check_msg("tokenizer_open", rc, err);
        if (rc == BLIPC_OK) {
            if (!t || blipc_tokenizer_vocab_size(t) <= 0) abort();
            encode(t, probe, sizeof probe - 1, flag, max_length);
            encode(t, probe, sizeof probe - 1, !flag, 0);
            int32_t ids[12];
            for (int i = 0; i < 12; i++) ids[i] = i * 37 - 5;
            decode(t, ids, 12, flag);
            for (int32_t i = -1; i <= blipc_tokenizer_vocab_size(t) && i < 4096; i++)
                (void)blipc_tokenizer_id_to_token(t, i);
            blipc_tokenizer_free(t);
        } else if (t) {
            abort();
        }
    }
    free(buf);
    return 0;
}
