/* bpe.h — GPT-2 byte-level BPE as run by HF's fast tokenizer for OPT: the GPT-2
 * regex pre-tokenizer (hand-written), the bytes_to_unicode alphabet and merge
 * ranks from merges.txt. Works on one segment of text that holds no added-token
 * strings; BOS and special tokens are handled by tokenizer.c.
 * Immutable after load (no cache), so one blipc_bpe may serve many threads. */
#ifndef BLIPC_TEXT_BPE_H
#define BLIPC_TEXT_BPE_H

#include "err.h"
#include "textutil.h"

typedef struct blipc_bpe_merge {
    uint64_t key;       /* (left id << 32) | right id; UINT64_MAX = empty slot */
    int32_t rank;       /* line number in merges.txt, header excluded, from 0 */
    int32_t id;         /* id of the merged token */
} blipc_bpe_merge;

typedef struct blipc_bpe {
    blipc_strmap vocab;         /* token -> id (vocab.json) */
    const char **id_tok;        /* [n_ids] id -> token (into vocab.pool), NULL for holes */
    int32_t n_ids;              /* max id in vocab.json + 1 */
    blipc_bpe_merge *merges;    /* open-addressing table, mask + 1 slots */
    size_t merges_mask, n_merges;
    int32_t byte_id[256];       /* vocab id of the one-character token of each byte */
    int32_t byte_cp[256];       /* bytes_to_unicode: byte -> code point */
    int16_t cp_byte[324];       /* its inverse (code points < 324), -1 = none */
} blipc_bpe;

/* Read vocab.json and merges.txt. Errors name the file (and line). */
blipc_status blipc__bpe_load(blipc_bpe *bpe, const char *vocab_path, const char *merges_path, blipc_err *e);
void blipc__bpe_free(blipc_bpe *bpe);

/* Pre-tokenize and BPE `len` bytes of VALID UTF-8, appending ids to out. */
blipc_status blipc__bpe_encode(const blipc_bpe *bpe, const char *text, size_t len, blipc_ivec *out, blipc_err *e);

/* ByteLevel decoder for one token string (valid UTF-8): append the bytes its
 * characters stand for, or the token's own UTF-8 bytes if a character is not in
 * the byte alphabet (e.g. an added token with such characters). */
blipc_status blipc__bpe_token_bytes(const blipc_bpe *bpe, const char *tok, blipc_sbuf *out, blipc_err *e);

/* The GPT-2 pre-tokenizer alone: split s[0..n) (valid UTF-8) into pieces;
 * calls fn(user, start, end) for each byte range in order; stops at the first
 * non-OK status fn returns. Exposed for tests. */
blipc_status blipc__gpt2_pretokenize(const char *s, size_t n,
                                     blipc_status (*fn)(void *user, size_t start, size_t end), void *user);

#endif
