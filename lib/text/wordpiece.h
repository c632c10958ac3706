/* wordpiece.h — BERT WordPiece (the HF fast tokenizer's BertNormalizer +
 * BertPreTokenizer + WordPiece model) on one segment of text that holds no
 * special-token strings. Special tokens, [CLS]/[SEP] and truncation are handled
 * by tokenizer.c. */
#ifndef BLIPC_TEXT_WORDPIECE_H
#define BLIPC_TEXT_WORDPIECE_H

#include "err.h"
#include "textutil.h"

typedef struct blipc_wordpiece {
    blipc_strmap vocab;     /* token -> id (vocab.txt line number - 1; a repeated line keeps the last id) */
    const char **id_tok;    /* [n_ids] id -> token (into vocab.pool), NULL for ids no token maps to */
    int32_t n_ids;          /* number of lines */
    int32_t unk_id;         /* id of the unk token; -1 if absent (then unmatchable words are dropped) */
    int max_chars;          /* max_input_chars_per_word: 100 */
    int clean_text;         /* 1: drop controls, whitespace -> ' ' */
    int chinese_chars;      /* 1: spaces around CJK ideographs */
    int strip_accents;      /* 1: NFD + drop Mn */
    int lowercase;          /* 1: per-character lowercase */
} blipc_wordpiece;

/* Read vocab.txt (one token per line). Normalizer flags are set to bert-base-uncased
 * defaults; the caller may change them and unk_id afterwards. */
blipc_status blipc__wordpiece_load(blipc_wordpiece *wp, const char *vocab_path, blipc_err *e);
void blipc__wordpiece_free(blipc_wordpiece *wp);

/* Normalize, pre-tokenize and WordPiece `len` bytes of VALID UTF-8, appending ids. */
blipc_status blipc__wordpiece_encode(const blipc_wordpiece *wp, const char *text, size_t len, blipc_ivec *out,
                                     blipc_err *e);

/* The WordPiece decoder (prefix "##", cleanup = true): joins the token strings
 * (the caller has already dropped skipped ids) and appends the text to out. */
blipc_status blipc__wordpiece_decode(const char *const *toks, size_t n, blipc_sbuf *out, blipc_err *e);

#endif
