/* unicode.h — UTF-8 and Unicode helpers for the tokenizers (categories, case and
 * decomposition come from utf8proc; the White_Space property is a fixed table). */
#ifndef BLIPC_TEXT_UNICODE_H
#define BLIPC_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 check (no overlongs, surrogates or code points over U+10FFFF).
 * Returns 1 if s[0..n) is valid; otherwise returns 0 and, if bad_off != NULL,
 * stores the byte offset of the first byte of the first invalid sequence. */
int blipc__utf8_validate(const char *s, size_t n, size_t *bad_off);

/* Decode the code point at s[*pos] of VALID UTF-8 and advance *pos. */
static inline int32_t blipc__utf8_next(const char *str, size_t *pos) {
    const unsigned char *s = (const unsigned char *)str + *pos;
    if (s[0] < 0x80) {
        *pos += 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *pos += 2;
        return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *pos += 3;
        return ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *pos += 4;
    return ((int32_t)(s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Encode one code point (0..0x10FFFF); returns the byte count (1..4). */
size_t blipc__utf8_encode(int32_t cp, char out[4]);

/* Decode arbitrary bytes to valid UTF-8 replacing each maximal invalid
 * subsequence with U+FFFD, like Python's errors="replace" / Rust's
 * String::from_utf8_lossy. `out` must hold 3 * n + 1 bytes; returns the output
 * length (out is NUL-terminated). */
size_t blipc__utf8_lossy(const unsigned char *in, size_t n, char *out);

/* Unicode White_Space property (Rust char::is_whitespace, regex \s). */
int blipc__uni_is_space(int32_t cp);
/* General category L* (Lu Ll Lt Lm Lo) / N* (Nd Nl No) / Mn. */
int blipc__uni_is_letter(int32_t cp);
int blipc__uni_is_number(int32_t cp);
int blipc__uni_is_mn(int32_t cp);
/* BERT: ASCII punctuation or categories Pc Pd Ps Pe Pi Pf Po. */
int blipc__uni_is_bert_punct(int32_t cp);
/* BERT "control": Cc, Cf or Co, except \t \n \r. */
int blipc__uni_is_bert_control(int32_t cp);
/* BERT's CJK ideograph ranges (tokenize_chinese_chars). */
int blipc__uni_is_cjk(int32_t cp);
/* Simple lowercase mapping (U+0130 is handled by the caller). */
int32_t blipc__uni_lower(int32_t cp);
/* Canonical combining class. */
int blipc__uni_ccc(int32_t cp);
/* Full canonical decomposition of one code point (not reordered) into out[cap];
 * returns the number of code points (may exceed cap: then call again bigger). */
size_t blipc__uni_decompose(int32_t cp, int32_t *out, size_t cap);

#endif
