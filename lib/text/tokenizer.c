/* tokenizer.c — blipc_tokenizer: kind detection, configuration files, added
 * (special) tokens, [CLS]/[SEP]/BOS, truncation and the public API. */
#include "tokenizer.h"

#include "bpe.h"
#include "fileutil.h"
#include "textutil.h"
#include "unicode.h"
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct added_tok {
    char *content;
    size_t len;
    int32_t id;
    int special;
} added_tok;

enum { R_BOS, R_EOS, R_UNK, R_PAD, R_CLS, R_SEP, R_MASK, R_COUNT };
static const char *const role_names[R_COUNT] = {"bos", "eos", "unk", "pad", "cls", "sep", "mask"};

struct blipc_tokenizer {
    blipc_tokenizer_kind kind;
    blipc_wordpiece wp;         /* kind == WORDPIECE */
    blipc_bpe bpe;              /* kind == BPE */
    added_tok *added;           /* matched verbatim in raw text */
    size_t n_added;
    uint8_t first[256];         /* 1 if an added token starts with this byte */
    int32_t role[R_COUNT];      /* special-token ids, -1 = none */
    int add_bos, add_eos;       /* BPE post-processor */
    int clean_up;               /* clean_up_tokenization_spaces */
    int32_t vocab_size;
};

/* ------------------------------------------------------------ open */

static blipc_status read_json_opt(const char *dir, const char *name, cJSON **out, blipc_err *e) {
    char path[4096];
    *out = NULL;
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, name, e));
    if (!blipc__file_exists(path)) return BLIPC_OK;
    char *data;
    size_t size;
    BLIPC_TRY(blipc__read_file(path, 64u << 20, &data, &size, e));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, size, &end, 0);
    if (!j) {
        long line = 1;
        if (end && end >= data && end <= data + size)
            for (const char *p = data; p < end; p++) line += *p == '\n';
        free(data);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: malformed JSON", path, line);
    }
    free(data);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = j;
    return BLIPC_OK;
}

/* A token setting: "x" or {"content": "x", ...}. */
static const char *token_str(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int json_bool(const cJSON *obj, const char *key, int def) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static int32_t vocab_id(const blipc_tokenizer *t, const char *s, size_t len) {
    int32_t id;
    const blipc_strmap *m = t->kind == BLIPC_TOKENIZER_WORDPIECE ? &t->wp.vocab : &t->bpe.vocab;
    return blipc__strmap_get(m, s, len, &id) ? id : -1;
}

static const added_tok *added_by_id(const blipc_tokenizer *t, int32_t id) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static added_tok *added_by_content(const blipc_tokenizer *t, const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, s, len) == 0) return &t->added[i];
    return NULL;
}

/* Add (or update) an added token; special is OR-ed in. */
static blipc_status add_token(blipc_tokenizer *t, const char *content, int32_t id, int special, const char *src,
                              blipc_err *e) {
    size_t len = strlen(content);
    if (len == 0) return BLIPC_OK; /* an empty token can never match */
    if (!blipc__utf8_validate(content, len, NULL))
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: added token %d is not valid UTF-8", src, (int)id);
    if (id < 0 || id == INT32_MAX) /* vocab_size = max id + 1 must fit in an int32 */
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: added token \"%.64s\" has id %ld, outside [0, 2^31-1)", src,
                           content, (long)id);
    added_tok *a = added_by_content(t, content);
    if (a) {
        a->id = id;
        a->special |= special;
        return BLIPC_OK;
    }
    added_tok *na = realloc(t->added, (t->n_added + 1) * sizeof *na);
    if (!na) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", src);
    t->added = na;
    char *c = malloc(len + 1);
    if (!c) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", src);
    memcpy(c, content, len + 1);
    t->added[t->n_added++] = (added_tok){c, len, id, special};
    t->first[(unsigned char)content[0]] = 1;
    return BLIPC_OK;
}

static const char *const wp_defaults[R_COUNT] = {NULL, NULL, "[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"};
static const char *const bpe_defaults[R_COUNT] = {"</s>", "</s>", "</s>", "<pad>", NULL, NULL, NULL};

static blipc_status configure(blipc_tokenizer *t, const char *dir, blipc_err *e) {
    cJSON *cfg = NULL, *stm = NULL, *atj = NULL;
    blipc_status st = read_json_opt(dir, "tokenizer_config.json", &cfg, e);
    if (!st) st = read_json_opt(dir, "special_tokens_map.json", &stm, e);
    if (!st) st = read_json_opt(dir, "added_tokens.json", &atj, e);
    if (st) goto out;

    /* added tokens declared with their ids */
    const cJSON *atd = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    if (cJSON_IsObject(atd)) {
        for (const cJSON *it = atd->child; it; it = it->next) {
            char *endp;
            long id = strtol(it->string ? it->string : "", &endp, 10);
            const char *content = token_str(it);
            if (!it->string || *endp || id < 0 || id > INT32_MAX || !content) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT,
                                 "%s/tokenizer_config.json: added_tokens_decoder entry \"%.32s\" is malformed", dir,
                                 it->string ? it->string : "");
                goto out;
            }
            st = add_token(t, content, (int32_t)id, json_bool(it, "special", 0), "tokenizer_config.json", e);
            if (st) goto out;
        }
    }
    if (atj) {
        for (const cJSON *it = atj->child; it; it = it->next) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s/added_tokens.json: \"%.64s\": id is not a number", dir,
                                 it->string ? it->string : "");
                goto out;
            }
            added_tok *a = added_by_content(t, it->string);
            if (!a) {
                st = add_token(t, it->string, (int32_t)it->valuedouble, 0, "added_tokens.json", e);
                if (st) goto out;
            }
        }
    }
    /* special-token roles */
    const char *const *defs = t->kind == BLIPC_TOKENIZER_WORDPIECE ? wp_defaults : bpe_defaults;
    for (int r = 0; r < R_COUNT; r++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token", role_names[r]);
        const char *s = cfg ? token_str(cJSON_GetObjectItemCaseSensitive(cfg, key)) : NULL;
        if (!s && stm) s = token_str(cJSON_GetObjectItemCaseSensitive(stm, key));
        if (!s) s = defs[r];
        t->role[r] = -1;
        if (!s) continue;
        added_tok *a = added_by_content(t, s);
        int32_t id = a ? a->id : vocab_id(t, s, strlen(s));
        if (id < 0) continue;
        t->role[r] = id;
        st = add_token(t, s, id, 1, "special tokens", e);
        if (st) goto out;
    }
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = k == 0 ? (cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens") : NULL)
                                  : (stm ? cJSON_GetObjectItemCaseSensitive(stm, "additional_special_tokens") : NULL);
        if (!cJSON_IsArray(arr)) continue;
        for (const cJSON *it = arr->child; it; it = it->next) {
            const char *s = token_str(it);
            if (!s) continue;
            added_tok *a = added_by_content(t, s);
            int32_t id = a ? a->id : vocab_id(t, s, strlen(s));
            if (id < 0) continue;
            st = add_token(t, s, id, 1, "additional_special_tokens", e);
            if (st) goto out;
        }
    }
    t->clean_up = json_bool(cfg, "clean_up_tokenization_spaces", 1);
    if (t->kind == BLIPC_TOKENIZER_WORDPIECE) {
        int lower = json_bool(cfg, "do_lower_case", 1);
        t->wp.lowercase = lower;
        t->wp.strip_accents = json_bool(cfg, "strip_accents", lower);
        t->wp.chinese_chars = json_bool(cfg, "tokenize_chinese_chars", 1);
        t->wp.unk_id = t->role[R_UNK];
    } else {
        t->add_bos = json_bool(cfg, "add_bos_token", 1) && t->role[R_BOS] >= 0;
        t->add_eos = json_bool(cfg, "add_eos_token", 0) && t->role[R_EOS] >= 0;
    }
    int32_t n = t->kind == BLIPC_TOKENIZER_WORDPIECE ? t->wp.n_ids : t->bpe.n_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n) n = t->added[i].id + 1;
    t->vocab_size = n;
out:
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    cJSON_Delete(atj);
    return st;
}

static void tokenizer_free(blipc_tokenizer *t) {
    if (!t) return;
    blipc__wordpiece_free(&t->wp);
    blipc__bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t);
}

blipc_status blipc__tokenizer_open(const char *dir, blipc_tokenizer **out, blipc_err *e) {
    *out = NULL;
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: not a directory", dir);
    char vt[4096], vj[4096], mt[4096];
    BLIPC_TRY(blipc__path_join(vt, sizeof vt, dir, "vocab.txt", e));
    BLIPC_TRY(blipc__path_join(vj, sizeof vj, dir, "vocab.json", e));
    BLIPC_TRY(blipc__path_join(mt, sizeof mt, dir, "merges.txt", e));
    blipc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate a tokenizer", dir);
    blipc_status st;
    if (blipc__file_exists(vj) || blipc__file_exists(mt)) {
        t->kind = BLIPC_TOKENIZER_BPE;
        if (!blipc__file_exists(vj) || !blipc__file_exists(mt))
            st = blipc__errf(e, BLIPC_ERR_IO, "%s: missing (a byte-level BPE tokenizer needs vocab.json and merges.txt)",
                             blipc__file_exists(vj) ? mt : vj);
        else
            st = blipc__bpe_load(&t->bpe, vj, mt, e);
    } else if (blipc__file_exists(vt)) {
        t->kind = BLIPC_TOKENIZER_WORDPIECE;
        st = blipc__wordpiece_load(&t->wp, vt, e);
    } else {
        st = blipc__errf(e, BLIPC_ERR_IO, "%s: no tokenizer files (expected vocab.txt, or vocab.json + merges.txt)",
                         dir);
    }
    if (!st) st = configure(t, dir, e);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return BLIPC_OK;
}

/* ------------------------------------------------------------ encode */

static blipc_status encode_segment(const blipc_tokenizer *t, const char *s, size_t n, blipc_ivec *out, blipc_err *e) {
    if (n == 0) return BLIPC_OK;
    if (t->kind == BLIPC_TOKENIZER_WORDPIECE) return blipc__wordpiece_encode(&t->wp, s, n, out, e);
    return blipc__bpe_encode(&t->bpe, s, n, out, e);
}

int blipc__tokenizer_num_added_specials(const blipc_tokenizer *t) {
    if (t->kind == BLIPC_TOKENIZER_WORDPIECE) return (t->role[R_CLS] >= 0) + (t->role[R_SEP] >= 0);
    return t->add_bos + t->add_eos;
}

blipc_status blipc__tokenizer_encode(const blipc_tokenizer *t, const char *text, size_t len, int add_special,
                                     int max_length, int32_t **ids, size_t *n_ids, blipc_err *e) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "text: NULL with length %zu", len);
    if (max_length < 0) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "max_length: %d is negative", max_length);
    size_t bad;
    if (len && !blipc__utf8_validate(text, len, &bad))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "text: invalid UTF-8 at byte offset %zu", bad);
    int nspec = add_special ? blipc__tokenizer_num_added_specials(t) : 0;
    if (max_length > 0 && max_length < nspec)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "max_length: %d leaves no room for the %d special tokens",
                           max_length, nspec);
    blipc_ivec v = {0};
    blipc_status st = blipc__ivec_reserve(&v, len / 3 + 8, e);
    if (st) return st;
    int wp = t->kind == BLIPC_TOKENIZER_WORDPIECE;
    if (nspec) {
        int32_t first = wp ? t->role[R_CLS] : (t->add_bos ? t->role[R_BOS] : -1);
        if (first >= 0) v.v[v.n++] = first;
    }
    size_t body0 = v.n;
    /* split on added tokens (leftmost, then longest) */
    size_t seg = 0, i = 0;
    while (i < len) {
        if (!t->first[(unsigned char)text[i]]) {
            i++;
            continue;
        }
        const added_tok *best = NULL;
        for (size_t k = 0; k < t->n_added; k++) {
            const added_tok *a = &t->added[k];
            if (a->len <= len - i && (!best || a->len > best->len) && memcmp(text + i, a->content, a->len) == 0)
                best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        st = encode_segment(t, text + seg, i - seg, &v, e);
        if (!st) st = blipc__ivec_push(&v, best->id, e);
        if (st) goto fail;
        i += best->len;
        seg = i;
    }
    st = encode_segment(t, text + seg, len - seg, &v, e);
    if (st) goto fail;
    if (max_length > 0) {
        size_t keep = (size_t)(max_length - nspec);
        if (v.n - body0 > keep) v.n = body0 + keep;
    }
    if (nspec) {
        int32_t last = wp ? t->role[R_SEP] : (t->add_eos ? t->role[R_EOS] : -1);
        if (last >= 0) {
            st = blipc__ivec_push(&v, last, e);
            if (st) goto fail;
        }
    }
    *ids = v.v;
    *n_ids = v.n;
    return BLIPC_OK;
fail:
    blipc__ivec_free(&v);
    return st;
}

/* ------------------------------------------------------------ decode */

static const char *id_token(const blipc_tokenizer *t, int32_t id) {
    const added_tok *a = added_by_id(t, id);
    if (a) return a->content;
    if (id < 0) return NULL;
    if (t->kind == BLIPC_TOKENIZER_WORDPIECE) return id < t->wp.n_ids ? t->wp.id_tok[id] : NULL;
    return id < t->bpe.n_ids ? t->bpe.id_tok[id] : NULL;
}

int blipc__tokenizer_is_special(const blipc_tokenizer *t, int32_t id) {
    const added_tok *a = added_by_id(t, id);
    return a && a->special;
}

blipc_status blipc__tokenizer_decode(const blipc_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                                     int clean_up, char **text, size_t *len, blipc_err *e) {
    *text = NULL;
    *len = 0;
    if (!ids && n) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "ids: NULL with count %zu", n);
    blipc_sbuf out = {0};
    blipc_status st = blipc__sbuf_reserve(&out, 16, e);
    if (st) return st;
    out.s[0] = 0;
    if (t->kind == BLIPC_TOKENIZER_BPE) {
        blipc_sbuf raw = {0};
        for (size_t i = 0; i < n && !st; i++) {
            if (skip_special && blipc__tokenizer_is_special(t, ids[i])) continue;
            const char *tok = id_token(t, ids[i]);
            if (tok) st = blipc__bpe_token_bytes(&t->bpe, tok, &raw, e);
        }
        if (!st && raw.n) {
            if (raw.n > (SIZE_MAX - 1) / 3) st = blipc__errf(e, BLIPC_ERR_LIMIT, "decode: text too long");
            else st = blipc__sbuf_reserve(&out, 3 * raw.n, e);
            if (!st) out.n = blipc__utf8_lossy((const unsigned char *)raw.s, raw.n, out.s);
        }
        blipc__sbuf_free(&raw);
    } else {
        const char **toks = malloc((n ? n : 1) * sizeof *toks);
        size_t k = 0;
        if (!toks) st = blipc__errf(e, BLIPC_ERR_NOMEM, "decode: cannot allocate %zu tokens", n);
        for (size_t i = 0; i < n && !st; i++) {
            if (skip_special && blipc__tokenizer_is_special(t, ids[i])) continue;
            const char *tok = id_token(t, ids[i]);
            if (tok) toks[k++] = tok;
        }
        if (!st) st = blipc__wordpiece_decode(toks, k, &out, e);
        free(toks);
    }
    if (st) {
        blipc__sbuf_free(&out);
        return st;
    }
    if (clean_up < 0 ? t->clean_up : clean_up) blipc__text_cleanup(&out, 0, 0);
    *text = out.s;
    *len = out.n;
    return BLIPC_OK;
}

/* ------------------------------------------------------------ queries */

int32_t blipc__tokenizer_special_id(const blipc_tokenizer *t, const char *name) {
    if (!t || !name) return -1;
    for (int r = 0; r < R_COUNT; r++)
        if (strcmp(name, role_names[r]) == 0) return t->role[r];
    return -1;
}

int32_t blipc__tokenizer_token_to_id(const blipc_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    const added_tok *a = added_by_content(t, token);
    return a ? a->id : vocab_id(t, token, strlen(token));
}

/* ------------------------------------------------------------ public API */

blipc_status blipc_tokenizer_open(const char *model_dir, blipc_tokenizer **out, char *errbuf, size_t errbuf_size) {
    blipc_err e = {0};
    blipc_status st;
    if (out) *out = NULL;
    if (!model_dir || !out) st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_tokenizer_open: %s is NULL",
                                             model_dir ? "out" : "model_dir");
    else st = blipc__tokenizer_open(model_dir, out, &e);
    blipc__err_copy(st ? &e : NULL, errbuf, errbuf_size);
    return st;
}

void blipc_tokenizer_free(blipc_tokenizer *t) { tokenizer_free(t); }

blipc_tokenizer_kind blipc_tokenizer_get_kind(const blipc_tokenizer *t) {
    return t ? t->kind : (blipc_tokenizer_kind)0;
}

int32_t blipc_tokenizer_vocab_size(const blipc_tokenizer *t) { return t ? t->vocab_size : 0; }

blipc_status blipc_tokenizer_encode(const blipc_tokenizer *t, const char *text, size_t len, int add_special,
                                    int max_length, int32_t *ids, size_t cap, size_t *n_ids, char *errbuf,
                                    size_t errbuf_size) {
    blipc_err e = {0};
    blipc_status st;
    int32_t *v = NULL;
    size_t n = 0;
    if (n_ids) *n_ids = 0;
    if (!t || !n_ids || (!ids && cap))
        st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_tokenizer_encode: %s is NULL",
                         !t ? "tokenizer" : !n_ids ? "n_ids" : "ids");
    else
        st = blipc__tokenizer_encode(t, text, len, add_special, max_length, &v, &n, &e);
    if (!st) {
        *n_ids = n;
        if (ids && cap && n) memcpy(ids, v, (n < cap ? n : cap) * sizeof *ids);
        if (cap < n)
            st = blipc__errf(&e, BLIPC_ERR_BUFFER_TOO_SMALL, "ids: room for %zu ids, the text needs %zu", cap, n);
    }
    free(v);
    blipc__err_copy(st ? &e : NULL, errbuf, errbuf_size);
    return st;
}

blipc_status blipc_tokenizer_decode(const blipc_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                                    char *text, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!t || !len || (!text && cap)) return BLIPC_ERR_INVALID_ARG;
    char *s;
    size_t sl;
    blipc_status st = blipc__tokenizer_decode(t, ids, n, skip_special, -1, &s, &sl, NULL);
    if (st) return st;
    *len = sl;
    if (cap <= sl) {
        if (cap) text[0] = 0;
        free(s);
        return BLIPC_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(text, s, sl + 1);
    free(s);
    return BLIPC_OK;
}

const char *blipc_tokenizer_id_to_token(const blipc_tokenizer *t, int32_t id) { return t ? id_token(t, id) : NULL; }
