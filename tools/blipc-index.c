/* blipc-index — describe, embed and index every image under the given paths.
 *
 *   blipc-index [options] PATH...
 *
 * Walks files and folders for images (extension + magic bytes), hashes each
 * (sha256 = document id), skips unchanged ones (same hash at the same path),
 * updates moved ones (same hash, the old path gone), captions the rest in
 * batches with BLIP-2 (plus --ask questions), embeds the captions with MiniLM
 * and stores one document per image (embedded store or OpenSearch). Each batch
 * is committed before the next starts: Ctrl-C finishes nothing half-way, loses
 * nothing committed, and the next run resumes. */
#include "blipc.h"
#include "blipc_index.h"
#include "cli_util.h"
#include "index_cli.h"
#ifdef HAVE_MODEL_RESOLVE
#include "model_resolve.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#define PROG "blipc-index"
#define DEFAULT_CAPTION_REPO "Salesforce/blip2-opt-2.7b"
#define DEFAULT_EMBED_REPO "sentence-transformers/all-MiniLM-L12-v2"
#define MAX_ASK 16

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct opts {
    index_cli ix;
    const char *caption_model, *embed_model;
    const char *asks[MAX_ASK];
    int n_ask;
    const char *prompt;
    int batch, threads, max_new_tokens;
    int reindex, json, quiet, no_progress, register_model;
    const char **paths;
    int n_paths;
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [options] PATH...\n"
            "Caption, embed and index every image under PATH (files or folders).\n\n"
            "Models:\n"
            "  --caption-model DIR|REPO  BLIP-2 model (default " DEFAULT_CAPTION_REPO ")\n"
            "  --embed-model DIR|REPO    sentence embedder (default " DEFAULT_EMBED_REPO ")\n"
            "  --prompt TEXT             caption prompt (default: none, plain caption)\n"
            "  --ask QUESTION            also ask this question (repeatable); the answer is stored\n"
            "                            as its own field answer_<question words>\n"
            "  --max-new-tokens N        generation length (default: the model's)\n"
            "  --batch N                 images per captioning batch and per commit (default 8)\n"
            "  --threads N               threads (default: all cores)\n\n"
            "Behaviour:\n"
            "  --reindex                 caption and store again even when unchanged\n"
            "  --json                    one JSON object per image on stdout (no progress bar)\n"
            "  --quiet                   only errors and the summary\n"
            "  --no-progress             no progress bar even on a terminal\n"
            "  --register-model          (OpenSearch) register + deploy all-MiniLM-L12-v2 in ML Commons,\n"
            "                            print the model id and exit\n\n" INDEX_CLI_USAGE
            "\nExit status: 0 all images indexed or up to date; 1 some images or paths failed;\n"
            "2 usage or setup error; 130 interrupted (what was done is committed).\n");
}

static int parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    index_cli_init(&o->ix);
    o->batch = 8;
    o->paths = calloc((size_t)argc, sizeof *o->paths);
    if (!o->paths) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = index_cli_parse(&o->ix, argc, argv, &i, PROG);
        if (r < 0) return -1;
        if (r > 0) continue;
        int has_next = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--reindex")) o->reindex = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o->quiet = 1;
        else if (!strcmp(a, "--no-progress")) o->no_progress = 1;
        else if (!strcmp(a, "--register-model")) o->register_model = 1;
        else if (!strcmp(a, "--") ) {
            for (i++; i < argc; i++) o->paths[o->n_paths++] = argv[i];
        } else if (a[0] == '-' && a[1] && !has_next) {
            fprintf(stderr, PROG ": unknown option or missing value: %s\n", a);
            return -1;
        } else if (!strcmp(a, "--caption-model")) o->caption_model = argv[++i];
        else if (!strcmp(a, "--embed-model")) o->embed_model = argv[++i];
        else if (!strcmp(a, "--prompt")) o->prompt = argv[++i];
        else if (!strcmp(a, "--ask")) {
            if (o->n_ask == MAX_ASK) {
                fprintf(stderr, PROG ": at most %d --ask questions\n", MAX_ASK);
                return -1;
            }
            if (!argv[i + 1][0]) {
                fprintf(stderr, PROG ": --ask needs a non-empty question\n");
                return -1;
            }
            o->asks[o->n_ask++] = argv[++i];
        } else if (!strcmp(a, "--batch")) {
            if (parse_int_arg(PROG, a, argv[++i], 1, 256, &o->batch)) return -1;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int_arg(PROG, a, argv[++i], 1, 1024, &o->threads)) return -1;
        } else if (!strcmp(a, "--max-new-tokens")) {
            if (parse_int_arg(PROG, a, argv[++i], 1, 512, &o->max_new_tokens)) return -1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, PROG ": unknown option %s (see --help)\n", a);
            return -1;
        } else {
            o->paths[o->n_paths++] = a;
        }
    }
    if (index_cli_finish(&o->ix, PROG)) return -1;
    if (o->register_model) {
        if (o->ix.p.backend != BLIPC_INDEX_OPENSEARCH) {
            fprintf(stderr, PROG ": --register-model needs --opensearch URL\n");
            return -1;
        }
        return 0;
    }
    if (o->n_paths == 0) {
        fprintf(stderr, PROG ": no PATH given (see --help)\n");
        return -1;
    }
    return 0;
}

/* Model argument -> local directory. */
/* ------------------------------------------------------------- progress */

typedef struct progress {
    int enabled;
    size_t total, done;
    double t0;
    int last_len;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress_draw(progress *p) {
    if (!p->enabled || p->total == 0) return;
    double el = now_s() - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "--:--";
    if (rate > 0 && p->done < p->total) {
        long s = (long)((double)(p->total - p->done) / rate + 0.5);
        if (s >= 3600) snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        else snprintf(eta, sizeof eta, "%02ld:%02ld", s / 60, s % 60);
    } else if (p->done >= p->total) {
        snprintf(eta, sizeof eta, "00:00");
    }
    int width = 30, fill = (int)((double)p->done / (double)p->total * width);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %zu/%zu  %.2f img/s  ETA %s ", bar, p->done, p->total, rate, eta);
    fflush(stderr);
    p->last_len = 1;
}

static void progress_clear(progress *p) {
    if (p->enabled && p->last_len) {
        fprintf(stderr, "\r%*s\r", 79, "");
        p->last_len = 0;
    }
}

/* ------------------------------------------------------------- logging */

typedef struct counts {
    size_t indexed, unchanged, moved, duplicate, skipped, failed, missing;
} counts;

typedef struct run {
    opts *o;
    progress prog;
    counts n;
} run;

/* Per-image log line: JSON on stdout, or text on stderr (errors/skips always). */
static void log_image(run *r, const char *path, const char *status, const char *id, const char *reason,
                      const char *caption, const char *const *answers, int width, int height, double secs) {
    opts *o = r->o;
    if (o->json) {
        printf("{\"path\":");
        json_str(stdout, path);
        printf(",\"status\":\"%s\"", status);
        if (id) {
            printf(",\"id\":");
            json_str(stdout, id);
        }
        if (reason) {
            printf(",\"reason\":");
            json_str(stdout, reason);
        }
        if (caption) {
            printf(",\"image_description\":");
            json_str(stdout, caption);
            char field[80];
            for (int i = 0; answers && i < o->n_ask; i++) {
                blipc_index_answer_field(o->asks[i], field, sizeof field);
                printf(",\"%s\":", field);
                json_str(stdout, answers[i]);
            }
            printf(",\"width\":%d,\"height\":%d", width, height);
        }
        if (secs > 0) printf(",\"seconds\":%.3f", secs);
        printf("}\n");
        fflush(stdout);
        return;
    }
    int is_problem = !strcmp(status, "failed") || !strcmp(status, "skipped") || !strcmp(status, "missing");
    if (o->quiet && !is_problem) return;
    if (!is_problem && r->prog.enabled) return;   /* the bar shows progress; problems still print */
    progress_clear(&r->prog);
    if (reason) fprintf(stderr, "%s %s: %s\n", status, path, reason);
    else if (caption) fprintf(stderr, "%s %s: %s\n", status, path, caption);
    else fprintf(stderr, "%s %s\n", status, path);
    progress_draw(&r->prog);
}

/* ------------------------------------------------------------- main work */

typedef struct todo {
    const char *path;
    char id[65];
    int64_t mtime, size;
} todo;

/* Open-addressing set of the ids met in this run (same content twice in one
 * run: the first path wins, the others are duplicates). Values are indexes
 * into the todo array + 1 (0 = empty). */
typedef struct idset {
    size_t cap;
    size_t *slot;
} idset;

static uint64_t id_hash(const char *id) {
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) h = h << 4 | (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    return h;
}

/* Returns the index of the todo with the same id, or (size_t)-1 after inserting k. */
static size_t idset_find_or_add(idset *s, const todo *t, size_t k) {
    size_t m = s->cap - 1, i = (size_t)id_hash(t[k].id) & m;
    while (s->slot[i]) {
        size_t j = s->slot[i] - 1;
        if (!strcmp(t[j].id, t[k].id)) return j;
        i = (i + 1) & m;
    }
    s->slot[i] = k + 1;
    return (size_t)-1;
}

static int gen_progress(void *user, float f) {
    (void)user;
    (void)f;
    return !g_interrupted;
}

static void free_strs(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
}

/* Caption/answer/embed/put one batch. Returns 0, or -1 on a fatal error
 * (index unusable), or 1 when interrupted (nothing of the batch committed). */
static int do_batch(run *r, blipc_captioner *cap, const blipc_gen_params *gp, blipc_embedder *emb, blipc_index *ix,
                    const char *caption_model_id, const char *embed_model_id, todo *t, size_t n) {
    opts *o = r->o;
    const char *paths[256];
    for (size_t i = 0; i < n; i++) paths[i] = t[i].path;
    double t0 = now_s();
    int dim = blipc_embedder_dim(emb);
    char *captions[256] = {0};
    char *answers[256][MAX_ASK];
    memset(answers, 0, sizeof answers);
    int ok[256], w[256], h[256];
    blipc_status cst[256];   /* captioner status of images that failed */
    char *errs[256] = {0};
    int rc = 0;
    float *vec = NULL;

    blipc_status st = blipc_captioner_caption_files(cap, paths, n, o->prompt, gp);
    if (g_interrupted || st == BLIPC_ERR_ABORTED) {
        rc = 1;
        goto out;
    }
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": captioning failed: %s\n", blipc_captioner_errmsg(cap));
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        cst[i] = blipc_captioner_result_status(cap, i);
        ok[i] = cst[i] == BLIPC_OK;
        w[i] = h[i] = 0;
        if (ok[i]) {
            captions[i] = cli_dup_trimmed(blipc_captioner_result_text(cap, i));
            blipc_captioner_result_image_size(cap, i, &w[i], &h[i]);
            if (!captions[i]) ok[i] = 0;
        } else {
            errs[i] = strdup(blipc_captioner_result_error(cap, i));
        }
    }
    for (int q = 0; q < o->n_ask; q++) {
        char prompt[2048];
        snprintf(prompt, sizeof prompt, "Question: %s Answer:", o->asks[q]);
        const char *ap[256];
        size_t idx[256], m = 0;
        for (size_t i = 0; i < n; i++)
            if (ok[i]) {
                idx[m] = i;
                ap[m++] = paths[i];
            }
        if (!m) break;
        st = blipc_captioner_caption_files(cap, ap, m, prompt, gp);
        if (g_interrupted || st == BLIPC_ERR_ABORTED) {
            rc = 1;
            goto out;
        }
        if (st != BLIPC_OK) {
            fprintf(stderr, PROG ": --ask \"%s\": %s\n", o->asks[q], blipc_captioner_errmsg(cap));
            rc = -1;
            goto out;
        }
        for (size_t j = 0; j < m; j++) {
            size_t i = idx[j];
            if (blipc_captioner_result_status(cap, j) == BLIPC_OK) {
                answers[i][q] = cli_dup_trimmed(blipc_captioner_result_text(cap, j));
                if (!answers[i][q]) ok[i] = 0;
            } else {
                ok[i] = 0;
                cst[i] = blipc_captioner_result_status(cap, j);
                free(errs[i]);
                errs[i] = strdup(blipc_captioner_result_error(cap, j));
            }
        }
    }
    /* embed the captions of the images that made it */
    const char *texts[256];
    size_t tidx[256], m = 0;
    for (size_t i = 0; i < n; i++)
        if (ok[i]) {
            tidx[m] = i;
            texts[m++] = captions[i];
        }
    vec = malloc((m ? m : 1) * (size_t)dim * sizeof(float));
    if (!vec) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = -1;
        goto out;
    }
    if (m && blipc_embedder_embed(emb, texts, m, vec) != BLIPC_OK) {
        fprintf(stderr, PROG ": embedding failed: %s\n", blipc_embedder_errmsg(emb));
        rc = -1;
        goto out;
    }
    if (g_interrupted) {
        rc = 1;
        goto out;
    }
    blipc_index_doc docs[256];
    const char *ans_ptrs[256][MAX_ASK];
    for (size_t j = 0; j < m; j++) {
        size_t i = tidx[j];
        blipc_index_doc *d = &docs[j];
        blipc_index_doc_init(d);
        d->id = t[i].id;
        d->path = t[i].path;
        d->caption = captions[i];
        for (int q = 0; q < o->n_ask; q++) ans_ptrs[j][q] = answers[i][q];
        d->questions = o->asks;
        d->answers = ans_ptrs[j];
        d->n_answers = (size_t)o->n_ask;
        d->vector = vec + j * (size_t)dim;
        d->dim = dim;
        d->width = w[i];
        d->height = h[i];
        d->mtime = t[i].mtime;
        d->size = t[i].size;
        d->caption_model = caption_model_id;
        d->embed_model = embed_model_id;
    }
    st = blipc_index_put(ix, docs, m);
    double per = n ? (now_s() - t0) / (double)n : 0;
    for (size_t j = 0; j < m; j++) {
        size_t i = tidx[j];
        if (blipc_index_put_status(ix, j) == BLIPC_OK) {
            r->n.indexed++;
            log_image(r, t[i].path, "indexed", t[i].id, NULL, captions[i], (const char *const *)answers[i], w[i], h[i],
                      per);
        } else {
            r->n.failed++;
            log_image(r, t[i].path, "failed", t[i].id, blipc_index_put_error(ix, j), NULL, NULL, 0, 0, per);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!ok[i]) {
            /* a file that cannot be decoded as an image (corrupt, truncated, over the
             * pixel limit) is skipped like a non-image; anything else is a failure */
            int undecodable = cst[i] == BLIPC_ERR_FORMAT || cst[i] == BLIPC_ERR_IO || cst[i] == BLIPC_ERR_LIMIT ||
                              cst[i] == BLIPC_ERR_UNSUPPORTED;
            if (undecodable) r->n.skipped++;
            else r->n.failed++;
            log_image(r, t[i].path, undecodable ? "skipped" : "failed", t[i].id,
                      errs[i] ? errs[i] : "captioning failed", NULL, NULL, 0, 0, per);
        }
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": writing to the index failed: %s\n", blipc_index_errmsg(ix));
        rc = -1;
    }
out:
    free(vec);
    free_strs(captions, n);
    free_strs(errs, n);
    for (size_t i = 0; i < n; i++) free_strs(answers[i], (size_t)o->n_ask);
    return rc;
}

static void index_log(void *user, blipc_log_level lvl, const char *msg) {
    opts *o = user;
    if (lvl >= BLIPC_LOG_WARN || (!o->quiet && !o->json && lvl >= BLIPC_LOG_INFO && o->register_model))
        fprintf(stderr, "%s\n", msg);
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o)) {
        free(o.paths);
        index_cli_free(&o.ix);
        return 2;
    }
    o.ix.p.log_fn = index_log;
    o.ix.p.log_user = &o;
    char err[2048];

    if (o.register_model) {
        char model_id[256];
        blipc_status st = blipc_index_register_model(&o.ix.p, NULL, NULL, NULL, model_id, sizeof model_id, err,
                                                     sizeof err);
        free(o.paths);
        index_cli_free(&o.ix);
        if (st != BLIPC_OK) {
            fprintf(stderr, PROG ": register model: %s\n", err[0] ? err : blipc_status_str(st));
            return 2;
        }
        printf("%s\n", model_id);
        return 0;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    int exit_code = 0;
    blipc_embedder *emb = NULL;
    blipc_captioner *cap = NULL;
    blipc_index *ix = NULL;
    blipc_index_scan *scan = NULL;
    todo *todos = NULL, *seen_arr = NULL;
    size_t n_todo = 0, n_seen = 0;
    idset seen = {16, NULL};
    char target[2300];
    index_cli_describe(&o.ix, target, sizeof target);

    /* 1. find the images */
    blipc_status st = blipc_index_scan_paths(o.paths, (size_t)o.n_paths, &scan, err, sizeof err);
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        exit_code = 2;
        goto done;
    }
    size_t n_entries = blipc_index_scan_count(scan), n_images = 0;
    for (size_t i = 0; i < n_entries; i++) {
        blipc_scan_kind k = blipc_index_scan_kind(scan, i);
        const char *p = blipc_index_scan_path(scan, i);
        if (k == BLIPC_SCAN_IMAGE) {
            n_images++;
        } else if (k == BLIPC_SCAN_MISSING) {
            r.n.missing++;
            log_image(&r, p, "missing", NULL, blipc_index_scan_reason(scan, i), NULL, NULL, 0, 0, 0);
        } else {
            r.n.skipped++;
            log_image(&r, p, "skipped", NULL, blipc_index_scan_reason(scan, i), NULL, NULL, 0, 0, 0);
        }
    }
    if (n_images == 0) {
        fprintf(stderr, PROG ": no images found in the given path%s (%zu other file%s skipped)\n",
                o.n_paths > 1 ? "s" : "", r.n.skipped, r.n.skipped == 1 ? "" : "s");
        exit_code = r.n.missing ? 1 : 0;
        goto done;
    }

    /* 2. the embedder (its dimension sizes the index), then the index */
    char embed_dir[4096], caption_dir[4096];
    if (index_cli_resolve_model(PROG, o.embed_model, DEFAULT_EMBED_REPO, "embed", embed_dir, sizeof embed_dir)) {
        exit_code = 2;
        goto done;
    }
    blipc_embedder_params ep;
    blipc_embedder_default_params(&ep);
    ep.n_threads = o.threads;
    st = blipc_embedder_open(embed_dir, &ep, &emb, err, sizeof err);
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": embed model %s: %s\n", embed_dir, err);
        exit_code = 2;
        goto done;
    }
    o.ix.p.dim = blipc_embedder_dim(emb);
    st = blipc_index_open(&o.ix.p, &ix, err, sizeof err);
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": %s: %s\n", target, err);
        exit_code = 2;
        goto done;
    }

    /* 3. hash + skip unchanged / update moved */
    todos = calloc(n_images, sizeof *todos);
    seen_arr = calloc(n_images, sizeof *seen_arr);
    while (seen.cap < 2 * n_images) seen.cap *= 2;
    seen.slot = calloc(seen.cap, sizeof *seen.slot);
    if (!todos || !seen_arr || !seen.slot) {
        fprintf(stderr, PROG ": out of memory\n");
        exit_code = 2;
        goto done;
    }
    for (size_t i = 0; i < n_entries && !g_interrupted; i++) {
        if (blipc_index_scan_kind(scan, i) != BLIPC_SCAN_IMAGE) continue;
        const char *p = blipc_index_scan_path(scan, i);
        todo *t = &todos[n_todo];
        t->path = p;
        t->mtime = blipc_index_scan_mtime(scan, i);
        t->size = blipc_index_scan_size(scan, i);
        if (blipc_index_file_sha256(p, t->id, err, sizeof err) != BLIPC_OK) {
            r.n.skipped++;
            log_image(&r, p, "skipped", NULL, err, NULL, NULL, 0, 0, 0);
            continue;
        }
        int found = 0;
        char stored[4096] = "";
        if (!o.reindex) {
            if (blipc_index_has(ix, t->id, &found, stored, sizeof stored) != BLIPC_OK) {
                fprintf(stderr, PROG ": %s: %s\n", target, blipc_index_errmsg(ix));
                exit_code = 2;
                goto done;
            }
            if (found && !strcmp(stored, p)) {
                r.n.unchanged++;
                log_image(&r, p, "unchanged", t->id, NULL, NULL, NULL, 0, 0, 0);
                continue;
            }
            struct stat sb;
            if (found && stat(stored, &sb) == 0) {   /* the other copy still exists */
                char why[4200];
                snprintf(why, sizeof why, "same content as %s (already indexed)", stored);
                r.n.duplicate++;
                log_image(&r, p, "duplicate", t->id, why, NULL, NULL, 0, 0, 0);
                continue;
            }
        }
        /* the same content met earlier in this run (to be indexed or moved): the first path wins */
        seen_arr[n_seen] = *t;
        size_t first = idset_find_or_add(&seen, seen_arr, n_seen);
        if (first != (size_t)-1) {
            char why[4200];
            snprintf(why, sizeof why, "same content as %s", seen_arr[first].path);
            r.n.duplicate++;
            log_image(&r, p, "duplicate", t->id, why, NULL, NULL, 0, 0, 0);
            continue;
        }
        n_seen++;
        /* stored under a path that no longer exists: moved, update the path only */
        if (found && blipc_index_set_path(ix, t->id, p, t->mtime) == BLIPC_OK) {
            char why[4200];
            snprintf(why, sizeof why, "moved from %s", stored);
            r.n.moved++;
            log_image(&r, p, "moved", t->id, why, NULL, NULL, 0, 0, 0);
            continue;
        }
        n_todo++;
    }
    if (g_interrupted) goto interrupted;

    /* 4. caption + embed + store in batches */
    if (n_todo > 0) {
        if (index_cli_resolve_model(PROG, o.caption_model, DEFAULT_CAPTION_REPO, "caption", caption_dir,
                                    sizeof caption_dir)) {
            exit_code = 2;
            goto done;
        }
        blipc_captioner_params cp;
        blipc_captioner_default_params(&cp);
        cp.n_threads = o.threads;
        cp.max_batch = o.batch;
        st = blipc_captioner_open(caption_dir, &cp, &cap, err, sizeof err);
        if (st != BLIPC_OK) {
            fprintf(stderr, PROG ": caption model %s: %s (%s)\n", caption_dir, err, blipc_status_str(st));
            exit_code = 2;
            goto done;
        }
        blipc_gen_params gp;
        blipc_captioner_default_gen_params(cap, &gp);
        if (o.max_new_tokens > 0) gp.max_new_tokens = o.max_new_tokens;
        gp.progress = gen_progress;
        const char *cap_id = o.caption_model ? o.caption_model : DEFAULT_CAPTION_REPO;
        const char *emb_id = o.embed_model ? o.embed_model : DEFAULT_EMBED_REPO;

        r.prog.enabled = !o.json && !o.quiet && !o.no_progress && isatty(2);
        r.prog.total = n_todo;
        r.prog.t0 = now_s();
        progress_draw(&r.prog);
        for (size_t b = 0; b < n_todo && !g_interrupted; b += (size_t)o.batch) {
            size_t m = n_todo - b < (size_t)o.batch ? n_todo - b : (size_t)o.batch;
            int rc = do_batch(&r, cap, &gp, emb, ix, cap_id, emb_id, todos + b, m);
            if (rc < 0) {
                exit_code = 2;
                break;
            }
            if (rc > 0) break;   /* interrupted: this batch is not committed */
            r.prog.done += m;
            progress_draw(&r.prog);
        }
        progress_clear(&r.prog);
    }
    if (ix) blipc_index_flush(ix);
    if (g_interrupted) goto interrupted;
    if (!exit_code && (r.n.failed || r.n.missing)) exit_code = 1;
    goto done;

interrupted:
    progress_clear(&r.prog);
    if (ix) blipc_index_flush(ix);
    fprintf(stderr, PROG ": interrupted: %zu image%s committed; run again to resume\n", r.n.indexed,
            r.n.indexed == 1 ? "" : "s");
    exit_code = 130;

done:
    if (scan && exit_code != 2)
        fprintf(stderr,
                PROG ": %zu indexed, %zu unchanged, %zu moved, %zu duplicate, %zu failed, %zu skipped (not images or "
                "unreadable), %zu missing -> %s\n",
                r.n.indexed, r.n.unchanged, r.n.moved, r.n.duplicate, r.n.failed, r.n.skipped, r.n.missing, target);
    free(todos);
    free(seen_arr);
    free(seen.slot);
    if (cap) blipc_captioner_free(cap);
    blipc_embedder_free(emb);
    blipc_index_close(ix);
    blipc_index_scan_free(scan);
    free(o.paths);
    index_cli_free(&o.ix);
    return exit_code;
}
