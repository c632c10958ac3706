/* blipc-tokenize — print the token ids HF's tokenizer(text) gives, or decode ids.
 *
 *   blipc-tokenize --model DIR [--json] [--max-length N] TEXT
 *   blipc-tokenize --model DIR [--json] --decode [--keep-special] ID...
 */
#include "blipc.h"
#include "cli_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: blipc-tokenize --model DIR [--json] [--max-length N] [--no-special] TEXT\n"
            "       blipc-tokenize --model DIR [--json] --decode [--keep-special] ID...\n"
            "\n"
            "Encode TEXT (UTF-8) as Hugging Face's tokenizer(text) does: with the model's special\n"
            "tokens ([CLS] .. [SEP] for BERT, BOS for OPT), truncated only with --max-length.\n"
            "Prints the ids separated by spaces, or with --json {\"ids\": [...], \"tokens\": [...]}.\n"
            "With --decode, the arguments are ids; prints the text (special tokens skipped unless\n"
            "--keep-special), or with --json {\"text\": ...}.\n"
            "\n"
            "  --model DIR       model directory with vocab.txt (WordPiece) or vocab.json + merges.txt (BPE)\n"
            "  --json            JSON output\n"
            "  --max-length N    truncate to N ids, keeping the special tokens\n"
            "  --no-special      do not add special tokens\n"
            "  --decode          decode ids instead of encoding text\n"
            "  --keep-special    with --decode: keep special tokens in the text\n");
}

static int do_decode(blipc_tokenizer *t, char **args, int nargs, int json, int keep_special) {
    int32_t *ids = malloc((size_t)(nargs ? nargs : 1) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "blipc-tokenize: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nargs; i++) {
        long v;
        if (!cli_parse_long(args[i], INT32_MIN, INT32_MAX, &v)) {
            fprintf(stderr, "blipc-tokenize: --decode: \"%s\" is not a token id\n", args[i]);
            free(ids);
            return 2;
        }
        ids[i] = (int32_t)v;
    }
    size_t len = 0;
    blipc_status st = blipc_tokenizer_decode(t, ids, (size_t)nargs, !keep_special, NULL, 0, &len);
    char *text = NULL;
    if (st == BLIPC_ERR_BUFFER_TOO_SMALL || st == BLIPC_OK) {
        text = malloc(len + 1);
        st = text ? blipc_tokenizer_decode(t, ids, (size_t)nargs, !keep_special, text, len + 1, &len)
                  : BLIPC_ERR_NOMEM;
    }
    free(ids);
    if (st != BLIPC_OK) {
        fprintf(stderr, "blipc-tokenize: decode failed: %s\n", blipc_status_str(st));
        free(text);
        return 1;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", text);
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, decode = 0, keep_special = 0, add_special = 1;
    long max_length = 0;
    int first_pos = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            first_pos = i + 1;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--max-length") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "blipc-tokenize: %s needs a value\n", a);
                usage(stderr);
                return 2;
            }
            if (a[2] == 'm' && a[3] == 'o') {
                model = argv[++i];
            } else if (!cli_parse_long(argv[++i], 1, 1 << 30, &max_length)) {
                fprintf(stderr, "blipc-tokenize: --max-length: \"%s\" is not a positive integer\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--decode") == 0) {
            decode = 1;
        } else if (strcmp(a, "--keep-special") == 0) {
            keep_special = 1;
        } else if (strcmp(a, "--no-special") == 0) {
            add_special = 0;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "blipc-tokenize: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            first_pos = i;
            break;
        }
    }
    int npos = argc - first_pos;
    if (!model) {
        fprintf(stderr, "blipc-tokenize: --model DIR is required\n");
        usage(stderr);
        return 2;
    }
    if (!decode && npos != 1) {
        fprintf(stderr, "blipc-tokenize: expected exactly one TEXT argument (quote it), got %d\n", npos);
        usage(stderr);
        return 2;
    }
    char err[1024];
    blipc_tokenizer *t;
    if (blipc_tokenizer_open(model, &t, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-tokenize: %s\n", err);
        return 1;
    }
    if (decode) {
        int rc = do_decode(t, argv + first_pos, npos, json, keep_special);
        blipc_tokenizer_free(t);
        return rc;
    }
    const char *text = argv[first_pos];
    size_t len = strlen(text), n = 0;
    blipc_status st = blipc_tokenizer_encode(t, text, len, add_special, (int)max_length, NULL, 0, &n, err, sizeof err);
    int32_t *ids = NULL;
    if (st == BLIPC_ERR_BUFFER_TOO_SMALL || st == BLIPC_OK) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        st = ids ? blipc_tokenizer_encode(t, text, len, add_special, (int)max_length, ids, n, &n, err, sizeof err)
                 : BLIPC_ERR_NOMEM;
        if (!ids) snprintf(err, sizeof err, "out of memory");
    }
    if (st != BLIPC_OK) {
        fprintf(stderr, "blipc-tokenize: %s\n", err);
        free(ids);
        blipc_tokenizer_free(t);
        return 1;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject(), *ja = cJSON_AddArrayToObject(o, "ids"),
              *jt = cJSON_AddArrayToObject(o, "tokens");
        for (size_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
            const char *tok = blipc_tokenizer_id_to_token(t, ids[i]);
            cJSON_AddItemToArray(jt, tok ? cJSON_CreateString(tok) : cJSON_CreateNull());
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
    }
    free(ids);
    blipc_tokenizer_free(t);
    return 0;
}
