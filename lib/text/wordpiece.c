#include "wordpiece.h"

#include "fileutil.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

blipc_status blipc__wordpiece_load(blipc_wordpiece *wp, const char *path, blipc_err *e) {
    memset(wp, 0, sizeof *wp);
    blipc__strmap_init(&wp->vocab);
    wp->unk_id = -1;
    wp->max_chars = 100;
    wp->clean_text = wp->chinese_chars = wp->strip_accents = wp->lowercase = 1;
    char *data;
    size_t size;
    BLIPC_TRY(blipc__read_file(path, 0, &data, &size, e));
    blipc_status st = BLIPC_OK;
    int32_t id = 0;
    size_t i = 0;
    while (i < size) {
        const char *line = data + i;
        const char *nl = memchr(line, '\n', size - i);
        size_t len = nl ? (size_t)(nl - line) : size - i;
        i += len + (nl ? 1 : 0);
        /* like the Rust loader: trim trailing whitespace */
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
        if (!blipc__utf8_validate(line, len, NULL)) {
            st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: line %ld: token is not valid UTF-8", path, (long)id + 1);
            goto out;
        }
        if (id == INT32_MAX) {
            st = blipc__errf(e, BLIPC_ERR_LIMIT, "%s: too many lines", path);
            goto out;
        }
        st = blipc__strmap_put(&wp->vocab, line, len, id, e);
        if (st) goto out;
        id++;
    }
    if (id == 0) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: empty vocabulary", path);
        goto out;
    }
    wp->n_ids = id;
    wp->id_tok = calloc((size_t)id, sizeof *wp->id_tok);
    if (!wp->id_tok) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate the id table", path);
        goto out;
    }
    for (size_t k = 0; k < wp->vocab.n; k++) wp->id_tok[wp->vocab.ents[k].val] = blipc__strmap_key(&wp->vocab, k);
out:
    free(data);
    if (st) blipc__wordpiece_free(wp);
    return st;
}

void blipc__wordpiece_free(blipc_wordpiece *wp) {
    if (!wp) return;
    blipc__strmap_free(&wp->vocab);
    free(wp->id_tok);
    wp->id_tok = NULL;
    wp->n_ids = 0;
}

/* Canonical ordering: stable sort of each run of non-starters by combining class. */
static void canonical_order(int32_t *c, uint8_t *cc, size_t n) {
    for (size_t i = 1; i < n; i++) {
        if (cc[i] == 0) continue;
        size_t j = i;
        while (j > 0 && cc[j - 1] > cc[j]) {
            int32_t t = c[j];
            c[j] = c[j - 1];
            c[j - 1] = t;
            uint8_t u = cc[j];
            cc[j] = cc[j - 1];
            cc[j - 1] = u;
            j--;
        }
    }
}

/* WordPiece one word w[0..m) of code points; tmp is scratch. */
static blipc_status wordpiece_word(const blipc_wordpiece *wp, const int32_t *w, size_t m, blipc_sbuf *tmp,
                                   size_t *offs, blipc_ivec *out, blipc_err *e) {
    if (m == 0) return BLIPC_OK;
    if ((int64_t)m > wp->max_chars) return wp->unk_id >= 0 ? blipc__ivec_push(out, wp->unk_id, e) : BLIPC_OK;
    /* "##" + UTF-8 of the word; offs[k] = byte offset of char k after the prefix */
    tmp->n = 0;
    BLIPC_TRY(blipc__sbuf_append(tmp, "##", 2, e));
    for (size_t k = 0; k < m; k++) {
        char u[4];
        offs[k] = tmp->n - 2;
        BLIPC_TRY(blipc__sbuf_append(tmp, u, blipc__utf8_encode(w[k], u), e));
    }
    offs[m] = tmp->n - 2;
    const char *word = tmp->s + 2;
    size_t n0 = out->n, start = 0;
    while (start < m) {
        size_t end = m;
        int32_t id = -1;
        while (start < end) {
            size_t blen = offs[end] - offs[start];
            /* a continuation piece: "##" + bytes; build it right before the bytes when start > 0 */
            int hit;
            if (start == 0) {
                hit = blipc__strmap_get(&wp->vocab, word, blen, &id);
            } else {
                char stackbuf[512];
                char *p = blen + 2 <= sizeof stackbuf ? stackbuf : malloc(blen + 2);
                if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "wordpiece: cannot allocate %zu bytes", blen + 2);
                p[0] = '#';
                p[1] = '#';
                memcpy(p + 2, word + offs[start], blen);
                hit = blipc__strmap_get(&wp->vocab, p, blen + 2, &id);
                if (p != stackbuf) free(p);
            }
            if (hit) break;
            id = -1;
            end--;
        }
        if (id < 0) {
            out->n = n0;
            return wp->unk_id >= 0 ? blipc__ivec_push(out, wp->unk_id, e) : BLIPC_OK;
        }
        BLIPC_TRY(blipc__ivec_push(out, id, e));
        start = end;
    }
    return BLIPC_OK;
}

blipc_status blipc__wordpiece_encode(const blipc_wordpiece *wp, const char *text, size_t len, blipc_ivec *out,
                                     blipc_err *e) {
    if (len == 0) return BLIPC_OK;
    if (len > SIZE_MAX / 64) return blipc__errf(e, BLIPC_ERR_LIMIT, "text: %zu bytes is too long", len);
    /* 1-2: clean + CJK spacing -> a (at most 3 code points per input byte) */
    size_t cap_a = 3 * len + 1;
    int32_t *a = malloc(cap_a * sizeof *a);
    int32_t *b = NULL, *lwbuf = NULL;
    uint8_t *cc = NULL;
    size_t *offs = NULL;
    blipc_sbuf tmp = {0};
    blipc_status st = BLIPC_OK;
    if (!a) return blipc__errf(e, BLIPC_ERR_NOMEM, "wordpiece: cannot allocate for %zu bytes of text", len);
    size_t na = 0, pos = 0;
    while (pos < len) {
        int32_t c = blipc__utf8_next(text, &pos);
        if (wp->clean_text) {
            if (c == 0 || c == 0xFFFD || blipc__uni_is_bert_control(c)) continue;
            if (blipc__uni_is_space(c)) c = ' ';
        }
        if (wp->chinese_chars && c >= 0x3400 && blipc__uni_is_cjk(c)) {
            a[na++] = ' ';
            a[na++] = c;
            a[na++] = ' ';
        } else {
            a[na++] = c;
        }
    }
    /* 3: NFD + drop Mn */
    int32_t *cur = a;
    size_t ncur = na;
    if (wp->strip_accents) {
        size_t cap_b = na + 16, nb = 0;
        b = malloc(cap_b * sizeof *b);
        cc = malloc(cap_b);
        if (!b || !cc) goto nomem;
        for (size_t i = 0; i < na; i++) {
            int32_t d[32];
            size_t k = blipc__uni_decompose(a[i], d, 32);
            if (k > 32) { /* no canonical decomposition is that long; keep the character */
                k = 1;
                d[0] = a[i];
            }
            if (nb + k > cap_b) {
                cap_b = (nb + k) * 2;
                int32_t *nb2 = realloc(b, cap_b * sizeof *b);
                if (!nb2) goto nomem;
                b = nb2;
                uint8_t *nc2 = realloc(cc, cap_b);
                if (!nc2) goto nomem;
                cc = nc2;
            }
            for (size_t j = 0; j < k; j++) {
                b[nb] = d[j];
                cc[nb] = (uint8_t)blipc__uni_ccc(d[j]);
                nb++;
            }
        }
        canonical_order(b, cc, nb);
        size_t w = 0;
        for (size_t i = 0; i < nb; i++)
            if (!blipc__uni_is_mn(b[i])) b[w++] = b[i];
        cur = b;
        ncur = w;
    }
    /* 4: lowercase (U+0130 lowercases to "i" + U+0307 in full case mapping) */
    int32_t *lw = cur;
    size_t nl = ncur;
    if (wp->lowercase) {
        lwbuf = malloc((2 * ncur + 1) * sizeof *lwbuf);
        if (!lwbuf) goto nomem;
        nl = 0;
        for (size_t i = 0; i < ncur; i++) {
            int32_t c = cur[i];
            if (c == 0x130) {
                lwbuf[nl++] = 'i';
                lwbuf[nl++] = 0x307;
            } else {
                lwbuf[nl++] = blipc__uni_lower(c);
            }
        }
        lw = lwbuf;
    }
    /* 5: split on whitespace and punctuation, WordPiece each word */
    offs = malloc((nl + 1) * sizeof *offs);
    if (!offs) goto nomem;
    size_t ws = 0;
    for (size_t i = 0; i <= nl; i++) {
        int32_t c = i < nl ? lw[i] : ' ';
        int sp = blipc__uni_is_space(c), pu = !sp && blipc__uni_is_bert_punct(c);
        if (sp || pu) {
            st = wordpiece_word(wp, lw + ws, i - ws, &tmp, offs, out, e);
            if (!st && pu) st = wordpiece_word(wp, lw + i, 1, &tmp, offs, out, e);
            if (st) goto done;
            ws = i + 1;
        }
    }
    goto done;
nomem:
    st = blipc__errf(e, BLIPC_ERR_NOMEM, "wordpiece: cannot allocate for %zu bytes of text", len);
done:
    free(a);
    free(b);
    free(lwbuf);
    free(cc);
    free(offs);
    blipc__sbuf_free(&tmp);
    return st;
}

blipc_status blipc__wordpiece_decode(const char *const *toks, size_t n, blipc_sbuf *out, blipc_err *e) {
    for (size_t i = 0; i < n; i++) {
        const char *t = toks[i];
        size_t from = out->n;
        if (i != 0) {
            if (t[0] == '#' && t[1] == '#') t += 2;
            else BLIPC_TRY(blipc__sbuf_append(out, " ", 1, e));
        }
        BLIPC_TRY(blipc__sbuf_append(out, t, strlen(t), e));
        blipc__text_cleanup(out, from, 1);
    }
    return BLIPC_OK;
}
