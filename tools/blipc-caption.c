/* blipc-caption — BLIP-2 image captioning / visual question answering.
 *
 *   blipc-caption --model DIR [--prompt TEXT] [generation options] [--batch N]
 *                 [--threads N] [--json] [--dump DIR] [--exif-transpose] IMAGE...
 *
 * Exit codes: 0 every image captioned, 1 some image (or the run) failed, 2 usage
 * or model errors. */
#include "blipc.h"
#include "cli_util.h"
#ifdef HAVE_MODEL_RESOLVE
#include "model_resolve.h"
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: blipc-caption --model DIR [options] IMAGE...\n"
            "\n"
            "Caption images with a BLIP-2 (OPT) checkpoint, or answer a question about them\n"
            "(--prompt \"Question: What is in the picture? Answer:\").\n"
            "\n"
            "  --model DIR               model directory"
#ifdef HAVE_MODEL_RESOLVE
            " or Hugging Face repo id (default " BLIPC_DEFAULT_CAPTION_MODEL ")"
#endif
            "\n"
            "  --prompt TEXT             text after the image (default: none = plain caption)\n"
            "  --max-new-tokens N        (default from generation_config.json, else 30)\n"
            "  --min-new-tokens N\n"
            "  --num-beams N             beam search with N beams (1..16)\n"
            "  --do-sample               sample instead of greedy/beam search\n"
            "  --temperature T  --top-p P  --top-k K  --seed S   sampling settings\n"
            "  --repetition-penalty R    --no-repeat-ngram-size N\n"
            "  --batch N                 images run through the model at once (default 8)\n"
            "  --threads N               threads (default: number of cores)\n"
            "  --json                    one JSON object per image:\n"
            "                            {\"image\", \"caption\", \"tokens\", \"ms\"} or {\"image\", \"error\"}\n"
            "  --dump DIR                write pixel_values, vision / Q-Former outputs and the projected\n"
            "                            query embeddings of each batch to DIR/batch-NNNN.safetensors\n"
            "  --exif-transpose          apply EXIF orientation (the BLIP-2 processor ignores it)\n"
            "  --weights auto|f32|bf16   decoder weight storage: as stored (default), f32, or bf16\n"
            "                            (bf16 halves decode memory traffic; not bit-exact vs f32)\n"
            "\n"
            "Exit status: 0 ok, 1 an image failed, 2 usage or model error.\n");
}

static int parse_float(const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = (float)v;
    return 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_json_string(const char *s) {
    cJSON *j = cJSON_CreateString(s);
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(p ? p : "\"\"", stdout);
    cJSON_free(p);
    cJSON_Delete(j);
}

int main(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *dump_dir = NULL;
    int json = 0, exif = 0;
    blipc_weight_type wtype = BLIPC_WEIGHTS_AUTO;
    long batch = 8, threads = 0;
    /* generation options: applied over the model's defaults when given */
    long max_new = -1, min_new = -1, beams = -1, top_k = -1, nrng = -1;
    long long seed = -1;
    int do_sample = 0;
    float temp = -1, top_p = -1, rep = -1;
    const char **images = calloc((size_t)argc + 1, sizeof *images);
    size_t n_images = 0;
    if (!images) return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(images);
            return 0;
        } else if (!strcmp(a, "--json")) takes = 0, json = 1;
        else if (!strcmp(a, "--exif-transpose")) takes = 0, exif = 1;
        else if (!strcmp(a, "--do-sample")) takes = 0, do_sample = 1;
        else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) images[n_images++] = argv[i];
            break;
        } else if (a[0] == '-' && a[1] == '-' && !v) {
            fprintf(stderr, "blipc-caption: %s needs a value\n", a);
            free(images);
            return 2;
        } else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--dump")) dump_dir = v;
        else if (!strcmp(a, "--weights")) {
            if (!strcmp(v, "auto")) wtype = BLIPC_WEIGHTS_AUTO;
            else if (!strcmp(v, "f32")) wtype = BLIPC_WEIGHTS_F32;
            else if (!strcmp(v, "bf16")) wtype = BLIPC_WEIGHTS_BF16;
            else ok = 0;
        }
        else if (!strcmp(a, "--max-new-tokens")) ok = cli_parse_long(v, 0, 1 << 20, &max_new);
        else if (!strcmp(a, "--min-new-tokens")) ok = cli_parse_long(v, 0, 1 << 20, &min_new);
        else if (!strcmp(a, "--num-beams")) ok = cli_parse_long(v, INT_MIN, INT_MAX, &beams);
        else if (!strcmp(a, "--top-k")) ok = cli_parse_long(v, 0, INT_MAX, &top_k);
        else if (!strcmp(a, "--no-repeat-ngram-size")) ok = cli_parse_long(v, 0, 1 << 20, &nrng);
        else if (!strcmp(a, "--batch")) ok = cli_parse_long(v, 1, 256, &batch);
        else if (!strcmp(a, "--threads")) ok = cli_parse_long(v, 0, 1024, &threads);
        else if (!strcmp(a, "--temperature")) ok = parse_float(v, 0, 1e6, &temp);
        else if (!strcmp(a, "--top-p")) ok = parse_float(v, 0, 1, &top_p);
        else if (!strcmp(a, "--repetition-penalty")) ok = parse_float(v, 0, 1e6, &rep);
        else if (!strcmp(a, "--seed")) {
            long s;
            ok = cli_parse_long(v, 0, LONG_MAX, &s);
            seed = s;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "blipc-caption: unknown option %s (see --help)\n", a);
            free(images);
            return 2;
        } else {
            takes = 0;
            images[n_images++] = a;
        }
        if (!ok) {
            fprintf(stderr, "blipc-caption: bad value for %s: \"%s\"\n", a, v);
            free(images);
            return 2;
        }
        i += takes;
    }
    if (!n_images) {
        fprintf(stderr, "blipc-caption: no IMAGE given\n");
        usage(stderr);
        free(images);
        return 2;
    }
    char dir[4096];
#ifdef HAVE_MODEL_RESOLVE
    if (blipc_tool_resolve_model(model, BLIPC_DEFAULT_CAPTION_MODEL, dir, sizeof dir, 1) != 0) {
        free(images);
        return 2;
    }
#else
    if (!model) {
        fprintf(stderr, "blipc-caption: --model DIR is required\n");
        free(images);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", model);
#endif
    if (dump_dir && mkdir(dump_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "blipc-caption: --dump %s: cannot create the directory: %s\n", dump_dir, strerror(errno));
        free(images);
        return 2;
    }

    blipc_captioner_params p;
    blipc_captioner_default_params(&p);
    p.n_threads = (int)threads;
    p.max_batch = (int)batch;
    p.image.exif_transpose = exif;
    p.weights = wtype;
    p.keep_debug_tensors = dump_dir != NULL;
    blipc_captioner *c;
    char err[1024];
    if (blipc_captioner_open(dir, &p, &c, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-caption: %s\n", err);
        free(images);
        return 2;
    }
    blipc_gen_params gp;
    blipc_captioner_default_gen_params(c, &gp);
    if (max_new >= 0) gp.max_new_tokens = (int)max_new;
    if (min_new >= 0) gp.min_new_tokens = (int)min_new;
    if (beams != -1) gp.num_beams = (int)beams;
    if (do_sample) gp.do_sample = 1;
    if (temp >= 0) gp.temperature = temp;
    if (top_p >= 0) gp.top_p = top_p;
    if (top_k >= 0) gp.top_k = (int)top_k;
    if (seed >= 0) gp.seed = (uint64_t)seed;
    if (rep >= 0) gp.repetition_penalty = rep;
    if (nrng >= 0) gp.no_repeat_ngram_size = (int)nrng;

    int failed = 0;
    for (size_t at = 0, chunk = 0; at < n_images; at += (size_t)batch, chunk++) {
        size_t n = n_images - at < (size_t)batch ? n_images - at : (size_t)batch;
        double t0 = now_ms();
        blipc_status st = blipc_captioner_caption_files(c, images + at, n, prompt, &gp);
        double ms = (now_ms() - t0) / (double)n;
        if (st != BLIPC_OK) { /* concerns the whole call (prompt, parameters, ...) */
            fprintf(stderr, "blipc-caption: %s\n", blipc_captioner_errmsg(c));
            failed = 1;
            for (size_t i = 0; json && i < n; i++) {
                printf("{\"image\": ");
                print_json_string(images[at + i]);
                printf(", \"error\": ");
                print_json_string(blipc_captioner_errmsg(c));
                printf("}\n");
            }
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const char *path = images[at + i];
            if (blipc_captioner_result_status(c, i) != BLIPC_OK) {
                const char *msg = blipc_captioner_result_error(c, i);
                fprintf(stderr, "blipc-caption: %s\n", msg ? msg : "failed");
                failed = 1;
                if (json) {
                    printf("{\"image\": ");
                    print_json_string(path);
                    printf(", \"error\": ");
                    print_json_string(msg ? msg : "failed");
                    printf("}\n");
                }
                continue;
            }
            char *cap = cli_dup_trimmed(blipc_captioner_result_text(c, i));
            size_t nt;
            const int32_t *tok = blipc_captioner_result_tokens(c, i, &nt);
            if (json) {
                printf("{\"image\": ");
                print_json_string(path);
                printf(", \"caption\": ");
                print_json_string(cap ? cap : "");
                printf(", \"tokens\": [");
                for (size_t k = 0; k < nt; k++) printf(k ? ", %d" : "%d", (int)tok[k]);
                printf("], \"ms\": %.1f}\n", ms);
            } else if (n_images == 1) {
                printf("%s\n", cap ? cap : "");
            } else {
                printf("%s: %s\n", path, cap ? cap : "");
            }
            free(cap);
        }
        fflush(stdout);
        if (dump_dir) {
            char path[4200];
            snprintf(path, sizeof path, "%s/batch-%04zu.safetensors", dump_dir, chunk);
            if (blipc_captioner_dump(c, path) != BLIPC_OK) {
                fprintf(stderr, "blipc-caption: --dump: %s\n", blipc_captioner_errmsg(c));
                failed = 1;
            }
        }
    }
    blipc_captioner_free(c);
    free(images);
    return failed ? 1 : 0;
}
