/* model_resolve.c — --model resolution shared by all tools (see model_resolve.h). */
#include "model_resolve.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef BLIPC_HAVE_HUB
#include "blipc_hub.h"
#endif

const char *blipc_tool_human_bytes(unsigned long long n, char *buf, size_t cap) {
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%llu B", n);
    else snprintf(buf, cap, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void blipc_tool_progress_init(blipc_tool_progress *p, int quiet) {
    memset(p, 0, sizeof *p);
    p->quiet = quiet;
    p->tty = isatty(2);
    p->t_start = now_s();
}

void blipc_tool_hub_log(void *user, blipc_log_level level, const char *msg) {
    const blipc_tool_progress *p = user;
    if (level < BLIPC_LOG_WARN || (p && p->quiet)) return;
    fprintf(stderr, "%s%s: %s\n", p && p->tty ? "\r\033[K" : "", level == BLIPC_LOG_WARN ? "warning" : "error", msg);
}

#ifdef BLIPC_HAVE_HUB
int blipc_tool_hub_progress(void *user, const struct blipc_hub_progress *hp) {
    blipc_tool_progress *p = user;
    if (!p || p->quiet) return 1;
    char a[32], b[32], c[32];
    double t = now_s();
    switch (hp->event) {
    case BLIPC_HUB_EVENT_PLAN:
        fprintf(stderr, "downloading %d file%s (%s%s%s) of %s@%.12s%s%s\n", hp->n_files, hp->n_files == 1 ? "" : "s",
                blipc_tool_human_bytes(hp->bytes_total - hp->bytes_done, a, sizeof a),
                hp->bytes_done ? ", resuming; total " : "",
                hp->bytes_done ? blipc_tool_human_bytes(hp->bytes_total, b, sizeof b) : "", hp->repo_id, hp->commit,
                p->cache_dir ? " into " : "", p->cache_dir ? p->cache_dir : "");
        break;
    case BLIPC_HUB_EVENT_FILE_START:
        p->t_file = t;
        p->file_start_done = hp->file_done;
        if (!p->tty || hp->file_done)
            fprintf(stderr, "  [%d/%d] %s (%s)%s%s\n", hp->file_index + 1, hp->n_files, hp->filename,
                    blipc_tool_human_bytes(hp->file_total, a, sizeof a), hp->file_done ? " resuming at " : "",
                    hp->file_done ? blipc_tool_human_bytes(hp->file_done, b, sizeof b) : "");
        break;
    case BLIPC_HUB_EVENT_FILE_PROGRESS:
        if (p->tty && t - p->t_last >= 0.2) {
            p->t_last = t;
            double frac = hp->file_total ? (double)hp->file_done / (double)hp->file_total : 1.0;
            double el = t - p->t_file;
            double rate = el > 0.05 ? (double)(hp->file_done - p->file_start_done) / el : 0;
            char bar[31];
            int fill = (int)(frac * 30);
            for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
            bar[30] = 0;
            double eta = rate > 0 ? (double)(hp->file_total - hp->file_done) / rate : 0;
            fprintf(stderr, "\r\033[K  [%d/%d] %.40s [%s] %3d%% %s/%s %s/s ETA %dm%02ds", hp->file_index + 1,
                    hp->n_files, hp->filename, bar, (int)(frac * 100), blipc_tool_human_bytes(hp->file_done, a, sizeof a),
                    blipc_tool_human_bytes(hp->file_total, b, sizeof b),
                    blipc_tool_human_bytes((unsigned long long)rate, c, sizeof c), (int)eta / 60, (int)eta % 60);
        }
        break;
    case BLIPC_HUB_EVENT_FILE_DONE:
        if (p->tty)
            fprintf(stderr, "\r\033[K  [%d/%d] %s %s done\n", hp->file_index + 1, hp->n_files, hp->filename,
                    blipc_tool_human_bytes(hp->file_total, a, sizeof a));
        break;
    case BLIPC_HUB_EVENT_RETRY:
        fprintf(stderr, "%s  retrying %s: %s\n", p->tty ? "\r\033[K" : "", hp->filename ? hp->filename : "",
                hp->message ? hp->message : "");
        break;
    case BLIPC_HUB_EVENT_WAIT_LOCK:
        fprintf(stderr, "%s  waiting: another process is downloading %s\n", p->tty ? "\r\033[K" : "",
                hp->filename ? hp->filename : "");
        break;
    }
    return 1;
}
#endif

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int blipc_tool_resolve_model(const char *arg_or_null, const char *default_repo, char *dir, size_t cap,
                             int allow_pull) {
    const char *m = arg_or_null && *arg_or_null ? arg_or_null : default_repo;
    if (!m || !*m) {
        fprintf(stderr, "error: no model given (--model DIR or ORG/NAME)\n");
        return BLIPC_ERR_INVALID_ARG;
    }
#ifdef BLIPC_HAVE_HUB
    blipc_tool_progress prog;
    blipc_tool_progress_init(&prog, 0);
    blipc_hub_params hp;
    blipc_hub_default_params(&hp);
    hp.allow_pull = allow_pull;
    hp.progress = blipc_tool_hub_progress;
    hp.progress_user = &prog;
    hp.log_fn = blipc_tool_hub_log;
    hp.log_user = &prog;
    blipc_hub *hub;
    char err[1024];
    blipc_status st = blipc_hub_open(&hp, &hub, err, sizeof err);
    if (st != BLIPC_OK) {
        fprintf(stderr, "error: model %s: %s\n", m, err);
        return st;
    }
    prog.cache_dir = blipc_hub_cache_dir(hub);
    st = blipc_hub_resolve(hub, m, dir, cap);
    if (st != BLIPC_OK) {
        fprintf(stderr, "error: model %s: %s\n", m, blipc_hub_errmsg(hub));
        if (!is_dir(m)) {
            switch (st) {
            case BLIPC_ERR_NOT_FOUND:
            case BLIPC_ERR_NETWORK:
                fprintf(stderr,
                        "  to get it: `blipc-pull %s` on a machine with network access (see docs/models.md for sizes),\n"
                        "  or copy a huggingface_hub cache that holds it into %s (HF_HUB_CACHE / HF_HOME),\n"
                        "  or name a local copy of the model files (--model DIR; --caption-model/--embed-model DIR for blipc-index/blipc-search).\n",
                        m, blipc_hub_cache_dir(hub));
                break;
            case BLIPC_ERR_AUTH:
                fprintf(stderr, "  set HF_TOKEN to a Hugging Face access token that may read %s.\n", m);
                break;
            default:
                break;
            }
        }
    }
    blipc_hub_free(hub);
    return st;
#else
    (void)allow_pull;
    if (is_dir(m)) {
        size_t n = strlen(m);
        if (n + 1 > cap) {
            fprintf(stderr, "error: model path too long: %s\n", m);
            return BLIPC_ERR_BUFFER_TOO_SMALL;
        }
        memcpy(dir, m, n + 1);
        return 0;
    }
    fprintf(stderr,
            "error: model %s: no such directory, and this build has no Hugging Face Hub support (libcurl);\n"
            "  name a local copy of the model files (--model DIR; --caption-model/--embed-model DIR for blipc-index/blipc-search).\n", m);
    return BLIPC_ERR_UNSUPPORTED;
#endif
}
