#include "textutil.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, 32-bit, with a final avalanche so low bits are usable as a slot index. */
uint32_t blipc__hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

void blipc__strmap_init(blipc_strmap *m) { memset(m, 0, sizeof *m); }

void blipc__strmap_free(blipc_strmap *m) {
    if (!m) return;
    free(m->pool);
    free(m->ents);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static blipc_status strmap_rehash(blipc_strmap *m, size_t nslots, blipc_err *e) {
    int32_t *s = malloc(nslots * sizeof *s);
    if (!s) return blipc__errf(e, BLIPC_ERR_NOMEM, "vocabulary hash table: cannot allocate %zu slots", nslots);
    memset(s, 0xff, nslots * sizeof *s);
    size_t mask = nslots - 1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = m->ents[i].hash & mask;
        while (s[j] >= 0) j = (j + 1) & mask;
        s[j] = (int32_t)i;
    }
    free(m->slots);
    m->slots = s;
    m->mask = mask;
    return BLIPC_OK;
}

static int32_t strmap_find(const blipc_strmap *m, const char *key, size_t len, uint32_t h) {
    if (!m->slots) return -1;
    size_t j = h & m->mask;
    for (;;) {
        int32_t k = m->slots[j];
        if (k < 0) return -1;
        const blipc_strmap_ent *en = &m->ents[k];
        if (en->hash == h && en->len == len && memcmp(m->pool + en->off, key, len) == 0) return k;
        j = (j + 1) & m->mask;
    }
}

blipc_status blipc__strmap_put(blipc_strmap *m, const char *key, size_t len, int32_t val, blipc_err *e) {
    uint32_t h = blipc__hash_bytes(key, len);
    int32_t k = strmap_find(m, key, len, h);
    if (k >= 0) {
        m->ents[k].val = val;
        return BLIPC_OK;
    }
    if (m->n >= (size_t)INT32_MAX - 1 || m->pool_len + len + 1 > UINT32_MAX)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "vocabulary too large");
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < m->pool_len + len + 1) cap *= 2;
        char *p = realloc(m->pool, cap);
        if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "vocabulary: cannot allocate %zu bytes", cap);
        m->pool = p;
        m->pool_cap = cap;
    }
    if (m->n == m->ents_cap) {
        size_t cap = m->ents_cap ? m->ents_cap * 2 : 1024;
        blipc_strmap_ent *p = realloc(m->ents, cap * sizeof *p);
        if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "vocabulary: cannot allocate %zu entries", cap);
        m->ents = p;
        m->ents_cap = cap;
    }
    /* keep the load factor at most 1/2 */
    if (!m->slots || (m->n + 1) * 2 > m->mask + 1) {
        size_t ns = m->slots ? (m->mask + 1) * 2 : 2048;
        while ((m->n + 1) * 2 > ns) ns *= 2;
        BLIPC_TRY(strmap_rehash(m, ns, e));
    }
    blipc_strmap_ent *en = &m->ents[m->n];
    en->off = (uint32_t)m->pool_len;
    en->len = (uint32_t)len;
    en->hash = h;
    en->val = val;
    if (len) memcpy(m->pool + m->pool_len, key, len);
    m->pool[m->pool_len + len] = 0;
    m->pool_len += len + 1;
    size_t j = h & m->mask;
    while (m->slots[j] >= 0) j = (j + 1) & m->mask;
    m->slots[j] = (int32_t)m->n;
    m->n++;
    return BLIPC_OK;
}

int blipc__strmap_get(const blipc_strmap *m, const char *key, size_t len, int32_t *val) {
    int32_t k = strmap_find(m, key, len, blipc__hash_bytes(key, len));
    if (k < 0) return 0;
    if (val) *val = m->ents[k].val;
    return 1;
}

blipc_status blipc__ivec_reserve(blipc_ivec *a, size_t need, blipc_err *e) {
    if (need <= a->cap) return BLIPC_OK;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof(int32_t)) return blipc__errf(e, BLIPC_ERR_LIMIT, "token list too long");
        cap *= 2;
    }
    int32_t *p = realloc(a->v, cap * sizeof *p);
    if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot allocate %zu token ids", cap);
    a->v = p;
    a->cap = cap;
    return BLIPC_OK;
}

blipc_status blipc__ivec_push(blipc_ivec *a, int32_t x, blipc_err *e) {
    if (a->n == a->cap) BLIPC_TRY(blipc__ivec_reserve(a, a->n + 1, e));
    a->v[a->n++] = x;
    return BLIPC_OK;
}

void blipc__ivec_free(blipc_ivec *a) {
    if (!a) return;
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

blipc_status blipc__sbuf_reserve(blipc_sbuf *b, size_t extra, blipc_err *e) {
    if (extra > SIZE_MAX / 4 - b->n) return blipc__errf(e, BLIPC_ERR_LIMIT, "text too long");
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return BLIPC_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot allocate %zu bytes of text", cap);
    b->s = p;
    b->cap = cap;
    return BLIPC_OK;
}

blipc_status blipc__sbuf_append(blipc_sbuf *b, const void *p, size_t n, blipc_err *e) {
    BLIPC_TRY(blipc__sbuf_reserve(b, n, e));
    if (n) memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
    return BLIPC_OK;
}

void blipc__sbuf_free(blipc_sbuf *b) {
    if (!b) return;
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

static void replace_all(char *s, size_t *n, const char *pat, const char *rep) {
    size_t pl = strlen(pat), rl = strlen(rep), r = 0, w = 0, len = *n;
    /* rl <= pl for every rule, so writing never overtakes reading */
    while (r < len) {
        if (r + pl <= len && s[r] == pat[0] && memcmp(s + r, pat, pl) == 0) {
            memmove(s + w, rep, rl);
            w += rl;
            r += pl;
        } else {
            s[w++] = s[r++];
        }
    }
    *n = w;
}

void blipc__text_cleanup(blipc_sbuf *b, size_t from, int with_do_not) {
    static const char *const rules[][2] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
        {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    if (!b->s || from >= b->n) return;
    size_t n = b->n - from;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!with_do_not && i == 7) continue;
        replace_all(b->s + from, &n, rules[i][0], rules[i][1]);
    }
    b->n = from + n;
    b->s[b->n] = 0;
}
