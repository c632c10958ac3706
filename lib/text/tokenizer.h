/* tokenizer.h — internal side of the blipc_tokenizer API (for the embedder,
 * the captioner and tests). The public functions in blipc.h are thin wrappers.
 *
 * Kind detection: a directory with vocab.txt is WordPiece (BERT); one with
 * vocab.json + merges.txt is GPT-2 byte-level BPE (OPT). Optional files:
 * tokenizer_config.json (special tokens, do_lower_case, strip_accents,
 * tokenize_chinese_chars, add_bos_token, add_eos_token,
 * clean_up_tokenization_spaces, added_tokens_decoder), special_tokens_map.json
 * and added_tokens.json. Missing settings default to bert-base-uncased /
 * OPT (blip2-opt-2.7b) behaviour.
 *
 * Added tokens (the special tokens, added_tokens.json, added_tokens_decoder)
 * are matched verbatim (leftmost, longest) in the raw text before normalization
 * and pre-tokenization, as HF's fast tokenizers do.
 *
 * A blipc_tokenizer is immutable after open; every call below only reads it. */
#ifndef BLIPC_TEXT_TOKENIZER_H
#define BLIPC_TEXT_TOKENIZER_H

#include "blipc.h"
#include "err.h"

blipc_status blipc__tokenizer_open(const char *model_dir, blipc_tokenizer **out, blipc_err *e);

/* Encode `len` bytes of UTF-8 (checked first: invalid -> BLIPC_ERR_INVALID_ARG
 * naming the byte offset). *ids is malloc'd (caller frees; never NULL on success, even
 * for 0 ids). add_special / max_length as blipc_tokenizer_encode. */
blipc_status blipc__tokenizer_encode(const blipc_tokenizer *t, const char *text, size_t len, int add_special,
                                     int max_length, int32_t **ids, size_t *n_ids, blipc_err *e);

/* Decode to a malloc'd NUL-terminated string (*len without the NUL).
 * clean_up: 1 / 0 forces transformers' clean_up_tokenization_spaces, -1 uses the
 * checkpoint's setting (false for OPT, true when the config does not say).
 * Ids out of range are skipped (as the HF fast tokenizer does). */
blipc_status blipc__tokenizer_decode(const blipc_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                                     int clean_up, char **text, size_t *len, blipc_err *e);

/* Id of a special-token role or -1 if the tokenizer has none:
 * "bos", "eos", "pad", "unk", "cls", "sep", "mask".
 * OPT: bos = eos = unk = 2, pad = 1; BERT: cls 101, sep 102, pad 0, unk 100, mask 103. */
int32_t blipc__tokenizer_special_id(const blipc_tokenizer *t, const char *name);

/* Id of a token string (added tokens first, e.g. "<image>" -> 50265; then the
 * vocabulary), or -1. */
int32_t blipc__tokenizer_token_to_id(const blipc_tokenizer *t, const char *token);

/* 1 if id is an added token flagged special (dropped by skip_special decoding). */
int blipc__tokenizer_is_special(const blipc_tokenizer *t, int32_t id);

/* Number of special tokens encode adds with add_special (BERT 2, OPT 1). */
int blipc__tokenizer_num_added_specials(const blipc_tokenizer *t);

#endif
