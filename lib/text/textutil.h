/* textutil.h — small containers shared by the tokenizers: a string -> int32 hash
 * map (vocabularies), a growable int32 vector and a growable byte buffer.
 * None of them keeps global state; all report allocation failure. */
#ifndef BLIPC_TEXT_TEXTUTIL_H
#define BLIPC_TEXT_TEXTUTIL_H

#include "err.h"
#include <stddef.h>
#include <stdint.h>

/* ---- string -> int32 map (open addressing, keys copied into one pool) ---- */
typedef struct blipc_strmap_ent {
    uint32_t off;   /* key offset in pool (keys are NUL-terminated there) */
    uint32_t len;   /* key length in bytes */
    uint32_t hash;
    int32_t val;
} blipc_strmap_ent;

typedef struct blipc_strmap {
    char *pool;
    size_t pool_len, pool_cap;
    blipc_strmap_ent *ents;
    size_t n, ents_cap;
    int32_t *slots;     /* entry index or -1; size mask + 1 (power of two) */
    size_t mask;
} blipc_strmap;

uint32_t blipc__hash_bytes(const void *p, size_t n);
void blipc__strmap_init(blipc_strmap *m);
void blipc__strmap_free(blipc_strmap *m);
/* Insert or overwrite key -> val. Returns BLIPC_ERR_NOMEM / BLIPC_ERR_LIMIT (over 4 GiB of keys). */
blipc_status blipc__strmap_put(blipc_strmap *m, const char *key, size_t len, int32_t val, blipc_err *e);
/* 1 and *val if found, else 0. */
int blipc__strmap_get(const blipc_strmap *m, const char *key, size_t len, int32_t *val);
/* Entry i's key (NUL-terminated, valid until the next put). */
static inline const char *blipc__strmap_key(const blipc_strmap *m, size_t i) { return m->pool + m->ents[i].off; }

/* ---- growable int32 vector ---- */
typedef struct blipc_ivec {
    int32_t *v;
    size_t n, cap;
} blipc_ivec;

blipc_status blipc__ivec_reserve(blipc_ivec *a, size_t need, blipc_err *e);
blipc_status blipc__ivec_push(blipc_ivec *a, int32_t x, blipc_err *e);
void blipc__ivec_free(blipc_ivec *a);

/* ---- growable byte buffer (always NUL-terminated when non-empty) ---- */
typedef struct blipc_sbuf {
    char *s;
    size_t n, cap;
} blipc_sbuf;

blipc_status blipc__sbuf_reserve(blipc_sbuf *b, size_t extra, blipc_err *e);
blipc_status blipc__sbuf_append(blipc_sbuf *b, const void *p, size_t n, blipc_err *e);
void blipc__sbuf_free(blipc_sbuf *b);

/* transformers' clean_up_tokenization (" ." -> ".", " ?", " !", " ,", " ' " -> "'",
 * " n't", " 'm", " 's", " 've", " 're"), applied in place to b->s[from..b->n).
 * with_do_not also maps " do not" -> " don't" (tokenizers' WordPiece decoder). */
void blipc__text_cleanup(blipc_sbuf *b, size_t from, int with_do_not);

#endif
