#include "bpe.h"

#include "fileutil.h"
#include "unicode.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX

/* ------------------------------------------------------------------ loading */

static void bytes_to_unicode(blipc_bpe *b) {
    int n = 0;
    for (int i = 0; i < 324; i++) b->cp_byte[i] = -1;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        b->byte_cp[c] = printable ? c : 256 + n++;
        b->cp_byte[b->byte_cp[c]] = (int16_t)c;
    }
}

static long line_of(const char *data, const char *at) {
    long line = 1;
    for (const char *p = data; p < at; p++) line += *p == '\n';
    return line;
}

static blipc_status load_vocab(blipc_bpe *b, const char *path, blipc_err *e) {
    char *data;
    size_t size;
    BLIPC_TRY(blipc__read_file(path, 0, &data, &size, e));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, size, &end, 0);
    blipc_status st = BLIPC_OK;
    if (!root) {
        long line = end && end >= data && end <= data + size ? line_of(data, end) : 0;
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: malformed JSON", path, line);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: expected a JSON object of token -> id", path);
        goto out;
    }
    int32_t max_id = -1;
    for (cJSON *it = root->child; it; it = it->next) {
        double v = it->valuedouble;
        if (!it->string || !cJSON_IsNumber(it) || v < 0 || v > INT32_MAX - 1 || v != (double)(int32_t)v) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: token \"%.64s\": id is not an integer in [0, 2^31-1)", path,
                             it->string ? it->string : "");
            goto out;
        }
        size_t kl = strlen(it->string);
        if (!blipc__utf8_validate(it->string, kl, NULL)) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: id %d: token is not valid UTF-8", path, (int)v);
            goto out;
        }
        st = blipc__strmap_put(&b->vocab, it->string, kl, (int32_t)v, e);
        if (st) goto out;
        if ((int32_t)v > max_id) max_id = (int32_t)v;
    }
    if (max_id < 0) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: empty vocabulary", path);
        goto out;
    }
    /* ids index a dense table: refuse a sparse numbering that would make a tiny
       file allocate gigabytes (real vocabularies are dense: 50265 entries, ids 0..50264) */
    if ((size_t)max_id >= 2 * b->vocab.n + 1024) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: id %d is far beyond the %zu entries (ids must be dense)", path,
                         (int)max_id, b->vocab.n);
        goto out;
    }
    b->n_ids = max_id + 1;
    b->id_tok = calloc((size_t)b->n_ids, sizeof *b->id_tok);
    if (!b->id_tok) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate the id table", path);
        goto out;
    }
    for (size_t k = 0; k < b->vocab.n; k++) b->id_tok[b->vocab.ents[k].val] = blipc__strmap_key(&b->vocab, k);
    for (int c = 0; c < 256; c++) {
        char u[4];
        size_t ul = blipc__utf8_encode(b->byte_cp[c], u);
        if (!blipc__strmap_get(&b->vocab, u, ul, &b->byte_id[c])) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: no token for byte 0x%02X (\"%.*s\")", path, c, (int)ul, u);
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    free(data);
    return st;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static const blipc_bpe_merge *merge_find(const blipc_bpe *b, int32_t l, int32_t r) {
    if (!b->merges) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t j = mix64(key) & b->merges_mask;
    for (;;) {
        const blipc_bpe_merge *m = &b->merges[j];
        if (m->key == key) return m;
        if (m->key == EMPTY_KEY) return NULL;
        j = (j + 1) & b->merges_mask;
    }
}

static blipc_status load_merges(blipc_bpe *b, const char *path, blipc_err *e) {
    char *data;
    size_t size;
    BLIPC_TRY(blipc__read_file(path, 0, &data, &size, e));
    size_t nlines = 1;
    for (size_t i = 0; i < size; i++) nlines += data[i] == '\n';
    size_t slots = 1024;
    while (slots < nlines * 2) slots *= 2;
    blipc_status st = BLIPC_OK;
    b->merges = malloc(slots * sizeof *b->merges);
    if (!b->merges) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate the merge table", path);
        goto out;
    }
    for (size_t j = 0; j < slots; j++) b->merges[j].key = EMPTY_KEY;
    b->merges_mask = slots - 1;
    char small[256];
    size_t i = 0;
    long lineno = 0;
    int32_t rank = 0;
    while (i < size) {
        const char *line = data + i;
        const char *nl = memchr(line, '\n', size - i);
        size_t len = nl ? (size_t)(nl - line) : size - i;
        i += len + (nl ? 1 : 0);
        lineno++;
        if (len && line[len - 1] == '\r') len--;
        if (len >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (len == 0) {
            if (i >= size) break; /* a final empty line */
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: empty line, expected \"left right\"", path, lineno);
            goto out;
        }
        const char *sp = memchr(line, ' ', len);
        if (!sp || sp == line || sp == line + len - 1 || memchr(sp + 1, ' ', (size_t)(line + len - sp - 1))) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT,
                             "%s: line %ld: expected two tokens separated by one space, got \"%.*s\"", path, lineno,
                             (int)(len > 80 ? 80 : len), line);
            goto out;
        }
        size_t ll = (size_t)(sp - line), rl = len - ll - 1;
        int32_t lid, rid, mid;
        if (!blipc__strmap_get(&b->vocab, line, ll, &lid) || !blipc__strmap_get(&b->vocab, sp + 1, rl, &rid)) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: token of \"%.*s\" is not in vocab.json", path,
                             lineno, (int)(len > 80 ? 80 : len), line);
            goto out;
        }
        char *cat = len <= sizeof small ? small : malloc(len);
        if (!cat) {
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        memcpy(cat, line, ll);
        memcpy(cat + ll, sp + 1, rl);
        int found = blipc__strmap_get(&b->vocab, cat, ll + rl, &mid);
        if (cat != small) free(cat);
        if (!found) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: merged token of \"%.*s\" is not in vocab.json", path,
                             lineno, (int)(len > 80 ? 80 : len), line);
            goto out;
        }
        uint64_t key = ((uint64_t)(uint32_t)lid << 32) | (uint32_t)rid;
        size_t j = mix64(key) & b->merges_mask;
        while (b->merges[j].key != EMPTY_KEY && b->merges[j].key != key) j = (j + 1) & b->merges_mask;
        if (b->merges[j].key == EMPTY_KEY) b->n_merges++;
        /* a repeated rule keeps the later rank, as HF's HashMap collect does */
        b->merges[j].key = key;
        b->merges[j].rank = rank;
        b->merges[j].id = mid;
        if (rank == INT32_MAX) {
            st = blipc__errf(e, BLIPC_ERR_LIMIT, "%s: too many merges", path);
            goto out;
        }
        rank++;
    }
out:
    free(data);
    return st;
}

blipc_status blipc__bpe_load(blipc_bpe *b, const char *vocab_path, const char *merges_path, blipc_err *e) {
    memset(b, 0, sizeof *b);
    blipc__strmap_init(&b->vocab);
    bytes_to_unicode(b);
    blipc_status st = load_vocab(b, vocab_path, e);
    if (!st) st = load_merges(b, merges_path, e);
    if (st) blipc__bpe_free(b);
    return st;
}

void blipc__bpe_free(blipc_bpe *b) {
    if (!b) return;
    blipc__strmap_free(&b->vocab);
    free(b->id_tok);
    free(b->merges);
    b->id_tok = NULL;
    b->merges = NULL;
    b->n_ids = 0;
    b->n_merges = 0;
}

/* ---------------------------------------------------------- pre-tokenizer */

enum { C_SPACE, C_L, C_N, C_O };

static int cls_of(int32_t c) {
    if (blipc__uni_is_space(c)) return C_SPACE;
    if (blipc__uni_is_letter(c)) return C_L;
    if (blipc__uni_is_number(c)) return C_N;
    return C_O;
}

/* 'pat = 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
blipc_status blipc__gpt2_pretokenize(const char *s, size_t n,
                                     blipc_status (*fn)(void *user, size_t start, size_t end), void *user) {
    size_t i = 0;
    while (i < n) {
        size_t p = i, q;
        int32_t c = blipc__utf8_next(s, &p); /* p: offset after c */
        /* contractions (lower case only) */
        if (c == '\'' && p < n) {
            char c1 = s[p], c2 = p + 1 < n ? s[p + 1] : 0;
            size_t k = 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') k = 1;
            else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) k = 2;
            if (k) {
                BLIPC_TRY(fn(user, i, p + k));
                i = p + k;
                continue;
            }
        }
        /* ` ?X+` for X in L, N, other */
        size_t start = i, r = i;
        int32_t x = c;
        if (c == ' ' && p < n) {
            r = p;
            q = p;
            x = blipc__utf8_next(s, &q);
        }
        int k = cls_of(x);
        if (k != C_SPACE) {
            q = r;
            while (q < n) {
                size_t t = q;
                int32_t y = blipc__utf8_next(s, &t);
                if (cls_of(y) != k) break;
                q = t;
            }
            BLIPC_TRY(fn(user, start, q));
            i = q;
            continue;
        }
        /* whitespace: \s+(?!\S) then \s+ */
        size_t last = i; /* start of the last whitespace char of the run */
        q = i;
        while (q < n) {
            size_t t = q;
            int32_t y = blipc__utf8_next(s, &t);
            if (!blipc__uni_is_space(y)) break;
            last = q;
            q = t;
        }
        size_t end = q;
        if (q < n && last > i) end = last; /* leave the last space to the next word */
        BLIPC_TRY(fn(user, i, end));
        i = end;
    }
    return BLIPC_OK;
}

/* ------------------------------------------------------------------- BPE */

typedef struct hent {
    int32_t rank, pos, id;
} hent;

typedef struct bpe_work {
    const blipc_bpe *b;
    const char *s;
    blipc_ivec *out;
    blipc_err *e;
    /* scratch, sized for the longest piece so far */
    size_t cap;
    int32_t *sym, *prev, *next;
    hent *heap;
} bpe_work;

static int hless(const hent *a, const hent *b) { return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos); }

static void heap_push(hent *h, size_t *n, hent x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hent heap_pop(hent *h, size_t *n) {
    hent top = h[0], x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, c = i;
        const hent *best = &x;
        if (l < m && hless(&h[l], best)) c = l, best = &h[l];
        if (r < m && hless(&h[r], best)) c = r;
        if (c == i) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
    return top;
}

static void push_pair(bpe_work *w, size_t *nh, int32_t pos) {
    int32_t nx = w->next[pos];
    if (nx < 0) return;
    const blipc_bpe_merge *m = merge_find(w->b, w->sym[pos], w->sym[nx]);
    if (m) heap_push(w->heap, nh, (hent){m->rank, pos, m->id});
}

static blipc_status bpe_piece(void *user, size_t start, size_t end) {
    bpe_work *w = user;
    size_t n = end - start;
    const unsigned char *s = (const unsigned char *)w->s + start;
    if (n == 1) return blipc__ivec_push(w->out, w->b->byte_id[s[0]], w->e);
    if (n > w->cap) {
        size_t cap = n < 64 ? 64 : n;
        free(w->sym);
        free(w->heap);
        w->sym = malloc(cap * 3 * sizeof(int32_t));
        w->heap = malloc(cap * 3 * sizeof(hent));
        if (!w->sym || !w->heap) {
            w->cap = 0;
            return blipc__errf(w->e, BLIPC_ERR_NOMEM, "bpe: cannot allocate scratch for a %zu-byte word", n);
        }
        w->prev = w->sym + cap;
        w->next = w->sym + 2 * cap;
        w->cap = cap;
    }
    for (size_t k = 0; k < n; k++) {
        w->sym[k] = w->b->byte_id[s[k]];
        w->prev[k] = (int32_t)k - 1;
        w->next[k] = k + 1 < n ? (int32_t)k + 1 : -1;
    }
    size_t nh = 0;
    for (size_t k = 0; k + 1 < n; k++) push_pair(w, &nh, (int32_t)k);
    while (nh) {
        hent top = heap_pop(w->heap, &nh);
        int32_t pos = top.pos, r = w->next[pos];
        if (w->sym[pos] < 0 || r < 0) continue; /* stale */
        const blipc_bpe_merge *m = merge_find(w->b, w->sym[pos], w->sym[r]);
        if (!m || m->id != top.id || m->rank != top.rank) continue; /* stale */
        w->sym[pos] = m->id;
        w->sym[r] = -1;
        w->next[pos] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = pos;
        if (w->prev[pos] >= 0) push_pair(w, &nh, w->prev[pos]);
        push_pair(w, &nh, pos);
    }
    BLIPC_TRY(blipc__ivec_reserve(w->out, w->out->n + n, w->e));
    for (int32_t k = 0; k >= 0; k = w->next[k]) w->out->v[w->out->n++] = w->sym[k];
    return BLIPC_OK;
}

blipc_status blipc__bpe_encode(const blipc_bpe *b, const char *text, size_t len, blipc_ivec *out, blipc_err *e) {
    bpe_work w = {.b = b, .s = text, .out = out, .e = e};
    blipc_status st = blipc__gpt2_pretokenize(text, len, bpe_piece, &w);
    free(w.sym);
    free(w.heap);
    return st;
}

blipc_status blipc__bpe_token_bytes(const blipc_bpe *b, const char *tok, blipc_sbuf *out, blipc_err *e) {
    size_t len = strlen(tok), n0 = out->n, p = 0;
    BLIPC_TRY(blipc__sbuf_reserve(out, len, e));
    while (p < len) {
        int32_t c = blipc__utf8_next(tok, &p);
        if (c >= 324 || b->cp_byte[c] < 0) {
            out->n = n0;
            return blipc__sbuf_append(out, tok, len, e);
        }
        out->s[out->n++] = (char)b->cp_byte[c];
    }
    out->s[out->n] = 0;
    return BLIPC_OK;
}
