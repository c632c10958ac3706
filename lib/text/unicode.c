#include "unicode.h"

#include <utf8proc.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid; *bad receives
 * the number of bytes forming the maximal invalid subsequence (>= 1) when
 * invalid (the Unicode "maximal subpart" rule, used by Python and Rust). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *bad = k;
            return 0;
        }
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = k;
            return 0;
        }
    }
    return need + 1;
}

int blipc__utf8_validate(const char *str, size_t n, size_t *bad_off) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* fast path for ASCII runs */
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad = 0, k = utf8_seq(s + i, n - i, &bad);
        if (!k) {
            if (bad_off) *bad_off = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

size_t blipc__utf8_encode(int32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t blipc__utf8_lossy(const unsigned char *s, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        size_t bad = 0, k = utf8_seq(s + i, n - i, &bad);
        if (k) {
            for (size_t j = 0; j < k; j++) out[o++] = (char)s[i + j];
            i += k;
        } else {
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i += bad;
        }
    }
    out[o] = 0;
    return o;
}

int blipc__uni_is_space(int32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

static int cat(int32_t c) { return (int)utf8proc_category(c); }

int blipc__uni_is_letter(int32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int blipc__uni_is_number(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

int blipc__uni_is_mn(int32_t c) { return c >= 0x300 && cat(c) == UTF8PROC_CATEGORY_MN; }

int blipc__uni_is_bert_punct(int32_t c) {
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int blipc__uni_is_bert_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return 1;
    if (c < 0xA0) return 0;
    int k = cat(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO;
}

int blipc__uni_is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int32_t blipc__uni_lower(int32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return utf8proc_tolower(c);
}

int blipc__uni_ccc(int32_t c) { return c < 0x300 ? 0 : utf8proc_get_property(c)->combining_class; }

size_t blipc__uni_decompose(int32_t c, int32_t *out, size_t cap) {
    if (c < 0xC0) {
        if (cap) out[0] = c;
        return 1;
    }
    int last = 0;
    utf8proc_ssize_t r = utf8proc_decompose_char(c, out, (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE, &last);
    if (r < 0) {
        if (cap) out[0] = c;
        return 1;
    }
    return (size_t)r;
}
