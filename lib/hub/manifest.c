/* manifest.c — which files a model kind needs, the weights manifest (weights/manifest.json)
 * and completeness checks of a model directory. */
#include "hub_internal.h"
#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BLIPC_HUB_MANIFEST_INSTALLED
#define BLIPC_HUB_MANIFEST_INSTALLED "/usr/local/share/blipc/manifest.json"
#endif

/* Built-in copy of the manifest's "kinds" (used when the manifest file is not found;
 * tests/test_hub.c checks that both agree). */
static const char *const blip2_required[] = {"config.json", "preprocessor_config.json", "vocab.json", "merges.txt",
                                             NULL};
static const char *const blip2_optional[] = {"generation_config.json", "processor_config.json", "tokenizer_config.json",
                                             "special_tokens_map.json", "added_tokens.json", "tokenizer.json", NULL};
static const char *const st_required[] = {"config.json", "vocab.txt", NULL};
static const char *const st_optional[] = {"modules.json", "1_Pooling/config.json", "sentence_bert_config.json",
                                          "tokenizer_config.json",
                                          "special_tokens_map.json", "tokenizer.json",
                                          "config_sentence_transformers.json", NULL};

static blipc_status add_all(blipc__strlist *l, const char *const *names, blipc_err *e) {
    for (; *names; names++) BLIPC_TRY(blipc__strlist_add(l, *names, e));
    return BLIPC_OK;
}

static blipc_status add_json_list(blipc__strlist *l, const cJSON *arr, const char *what, blipc_err *e) {
    const cJSON *it;
    if (!cJSON_IsArray(arr)) return blipc__errf(e, BLIPC_ERR_FORMAT, "manifest: %s is not an array", what);
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || !blipc__hub_safe_filename(it->valuestring))
            return blipc__errf(e, BLIPC_ERR_FORMAT, "manifest: %s holds a bad file name", what);
        BLIPC_TRY(blipc__strlist_add(l, it->valuestring, e));
    }
    return BLIPC_OK;
}

blipc_status blipc__hub_load_manifest(blipc_hub *h, const char *path_param, int use_env, blipc_err *e) {
    const char *cands[4];
    int nc = 0;
    if (path_param) {
        cands[nc++] = path_param;
    } else {
        const char *env = use_env ? getenv("BLIPC_MANIFEST") : NULL;
        if (env && *env) cands[nc++] = env;
        cands[nc++] = BLIPC_HUB_MANIFEST_INSTALLED;
#ifdef BLIPC_HUB_MANIFEST_SOURCE
        cands[nc++] = BLIPC_HUB_MANIFEST_SOURCE;
#endif
    }
    for (int i = 0; i < nc; i++) {
        if (!path_param && !blipc__file_exists(cands[i])) continue;
        char *txt;
        size_t n;
        BLIPC_TRY(blipc__read_file(cands[i], 4u << 20, &txt, &n, e));
        cJSON *j = cJSON_ParseWithLength(txt, n);
        free(txt);
        if (!j) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not valid JSON", cands[i]);
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
        const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(j, "kinds");
        if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "blipc-manifest") || !cJSON_IsObject(kinds)) {
            cJSON_Delete(j);
            return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not a blipc weights manifest (format/kinds missing)",
                               cands[i]);
        }
        h->manifest = j;
        snprintf(h->manifest_path, sizeof h->manifest_path, "%s", cands[i]);
        return BLIPC_OK;
    }
    blipc__logf(&h->log, BLIPC_LOG_DEBUG, "no weights manifest found (set BLIPC_MANIFEST); using built-in file lists");
    return BLIPC_OK;
}

static const cJSON *manifest_model(const blipc_hub *h, const char *repo) {
    if (!h->manifest || !repo) return NULL;
    const cJSON *m, *models = cJSON_GetObjectItemCaseSensitive(h->manifest, "models");
    cJSON_ArrayForEach(m, models) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "repo");
        if (cJSON_IsString(r) && !strcmp(r->valuestring, repo)) return m;
    }
    return NULL;
}

uint64_t blipc__hub_manifest_bytes(const blipc_hub *h, const char *repo) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(manifest_model(h, repo), "approx_bytes");
    return cJSON_IsNumber(b) && b->valuedouble > 0 ? (uint64_t)b->valuedouble : 0;
}

static blipc_status kind_files(const blipc_hub *h, blipc__hub_kind *k, blipc_err *e) {
    const cJSON *mk = h->manifest ? cJSON_GetObjectItemCaseSensitive(
                                        cJSON_GetObjectItemCaseSensitive(h->manifest, "kinds"), k->name)
                                  : NULL;
    if (mk) {
        char what[96];
        snprintf(what, sizeof what, "kinds.%s.required", k->name);
        BLIPC_TRY(add_json_list(&k->required, cJSON_GetObjectItemCaseSensitive(mk, "required"), what, e));
        snprintf(what, sizeof what, "kinds.%s.optional", k->name);
        return add_json_list(&k->optional, cJSON_GetObjectItemCaseSensitive(mk, "optional"), what, e);
    }
    if (!strcmp(k->name, "blip-2")) {
        BLIPC_TRY(add_all(&k->required, blip2_required, e));
        return add_all(&k->optional, blip2_optional, e);
    }
    BLIPC_TRY(add_all(&k->required, st_required, e));
    return add_all(&k->optional, st_optional, e);
}

void blipc__hub_kind_free(blipc__hub_kind *k) {
    blipc__strlist_free(&k->required);
    blipc__strlist_free(&k->optional);
}

blipc_status blipc__hub_detect_kind(const blipc_hub *h, const cJSON *config, const char *config_path,
                                    blipc__hub_kind *k, blipc_err *e) {
    memset(k, 0, sizeof *k);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(config, "model_type");
    if (!cJSON_IsString(mt))
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: field model_type is missing: cannot tell which model this is",
                           config_path);
    if (!strcmp(mt->valuestring, "blip-2")) {
        snprintf(k->name, sizeof k->name, "blip-2");
    } else if (!strcmp(mt->valuestring, "bert")) {
        snprintf(k->name, sizeof k->name, "sentence-transformers");
    } else {
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                           "%s: model_type '%s' is not supported (libblipc runs 'blip-2' captioners with an OPT "
                           "decoder and 'bert' sentence-transformers embedders)",
                           config_path, mt->valuestring);
    }
    blipc_status st = kind_files(h, k, e);
    if (st) blipc__hub_kind_free(k);
    return st;
}

static const cJSON *lookup_dotted(const cJSON *j, const char *key) {
    char part[128];
    const char *p = key;
    while (j && *p) {
        const char *d = strchr(p, '.');
        size_t n = d ? (size_t)(d - p) : strlen(p);
        if (n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = 0;
        j = cJSON_GetObjectItemCaseSensitive(j, part);
        p += n + (d ? 1 : 0);
    }
    return j;
}

static void json_value_str(const cJSON *v, char *buf, size_t cap) {
    if (!v) snprintf(buf, cap, "(absent)");
    else if (cJSON_IsString(v)) snprintf(buf, cap, "\"%s\"", v->valuestring);
    else if (cJSON_IsBool(v)) snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v)) snprintf(buf, cap, "%.17g", v->valuedouble);
    else snprintf(buf, cap, "(%s)", cJSON_IsNull(v) ? "null" : "object");
}

static int json_equal(const cJSON *a, const cJSON *b) {
    if (!a || !b) return 0;
    if (cJSON_IsString(a) && cJSON_IsString(b)) return !strcmp(a->valuestring, b->valuestring);
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsBool(a) && cJSON_IsBool(b)) return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    return 0;
}

static blipc_status check_values(const cJSON *expect, const cJSON *config, const char *config_path,
                                 const char *who, blipc_err *e) {
    const cJSON *it;
    cJSON_ArrayForEach(it, expect) {
        const cJSON *got = lookup_dotted(config, it->string);
        if (!json_equal(got, it)) {
            char g[128], w[128];
            json_value_str(got, g, sizeof g);
            json_value_str(it, w, sizeof w);
            return blipc__errf(e, BLIPC_ERR_MODEL, "%s: field %s is %s, but %s needs %s", config_path, it->string, g,
                               who, w);
        }
    }
    return BLIPC_OK;
}

blipc_status blipc__hub_check_config(const blipc_hub *h, const cJSON *config, const char *config_path,
                                     const char *kind, const char *repo, blipc_err *e) {
    if (!strcmp(kind, "blip-2")) {
        const cJSON *tmt = lookup_dotted(config, "text_config.model_type");
        if (cJSON_IsString(tmt) && strcmp(tmt->valuestring, "opt"))
            return blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                               "%s: text_config.model_type is '%s': only BLIP-2 models with an OPT decoder "
                               "(e.g. Salesforce/blip2-opt-2.7b) are supported",
                               config_path, tmt->valuestring);
    }
    if (h->manifest) {
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h->manifest, "kinds"), kind);
        char who[200];
        snprintf(who, sizeof who, "a '%s' model", kind);
        BLIPC_TRY(check_values(cJSON_GetObjectItemCaseSensitive(mk, "config"), config, config_path, who, e));
        const cJSON *mm = manifest_model(h, repo);
        if (mm) {
            snprintf(who, sizeof who, "%.60s (weights manifest %.80s)", repo, h->manifest_path);
            BLIPC_TRY(check_values(cJSON_GetObjectItemCaseSensitive(mm, "config"), config, config_path, who, e));
        }
    }
    return BLIPC_OK;
}

blipc_status blipc__hub_index_shards(const char *json, const char *path, blipc__strlist *out, blipc_err *e) {
    cJSON *j = cJSON_Parse(json);
    if (!j) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not valid JSON", path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map"), *it;
    blipc_status st = BLIPC_OK;
    if (!cJSON_IsObject(wm) || !wm->child) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field weight_map is missing or empty", path);
    } else {
        cJSON_ArrayForEach(it, wm) {
            if (!cJSON_IsString(it) || !blipc__hub_safe_filename(it->valuestring)) {
                st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a valid file name", path,
                                 it->string ? it->string : "?");
                break;
            }
            if ((st = blipc__strlist_add(out, it->valuestring, e))) break;
        }
    }
    cJSON_Delete(j);
    return st;
}

blipc_status blipc__hub_check_safetensors(const char *path, blipc_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return blipc__errf(e, BLIPC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    unsigned char hl[8];
    if (fstat(fd, &st) != 0 || pread(fd, hl, 8, 0) != 8) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: incomplete safetensors file (%lld bytes, no header)", path,
                           (long long)st.st_size);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | hl[i];
    if (n == 0 || n > (100u << 20) || 8 + n > (uint64_t)st.st_size) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: incomplete or corrupt safetensors file (header of %llu bytes, "
                           "file of %lld bytes)", path, (unsigned long long)n, (long long)st.st_size);
    }
    char *hdr = malloc((size_t)n + 1);
    if (!hdr) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate the header", path);
    }
    ssize_t r = pread(fd, hdr, (size_t)n, 8);
    close(fd);
    if (r != (ssize_t)n) {
        free(hdr);
        return blipc__errf(e, BLIPC_ERR_IO, "%s: cannot read the header", path);
    }
    hdr[n] = 0;
    cJSON *j = cJSON_ParseWithLength(hdr, (size_t)n);
    free(hdr);
    if (!j) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: safetensors header is not valid JSON", path);
    double end = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, j) {
        if (t->string && !strcmp(t->string, "__metadata__")) continue;
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        const cJSON *hi = cJSON_IsArray(off) ? cJSON_GetArrayItem(off, 1) : NULL;
        if (!cJSON_IsNumber(hi)) {
            cJSON_Delete(j);
            return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: tensor %s has no data_offsets", path, t->string ? t->string : "?");
        }
        if (hi->valuedouble > end) end = hi->valuedouble;
    }
    cJSON_Delete(j);
    uint64_t want = 8 + n + (uint64_t)end;
    if (want != (uint64_t)st.st_size)
        return blipc__errf(e, want > (uint64_t)st.st_size ? BLIPC_ERR_IO : BLIPC_ERR_FORMAT, "%s: %s safetensors file: %lld bytes, its header describes %llu",
                           path, want > (uint64_t)st.st_size ? "truncated" : "oversized", (long long)st.st_size,
                           (unsigned long long)want);
    return BLIPC_OK;
}

static blipc_status require(const char *dir, const char *name, blipc__strlist *missing, int *n_missing,
                            blipc_err *e) {
    char p[BLIPC_HUB_PATH_MAX];
    BLIPC_TRY(blipc__path_join(p, sizeof p, dir, name, e));
    if (blipc__file_exists(p)) return BLIPC_OK;
    (*n_missing)++;
    BLIPC_TRY(blipc__strlist_add(missing, name, e));
    return BLIPC_OK;
}

blipc_status blipc__hub_check_dir(const blipc_hub *h, const char *dir, const char *repo, char *kind, size_t kind_cap,
                                  blipc__strlist *missing, blipc_err *e) {
    blipc__strlist local = {0};
    if (!missing) {
        blipc_status st2 = blipc__hub_check_dir(h, dir, repo, kind, kind_cap, &local, e);
        blipc__strlist_free(&local);
        return st2;
    }
    char cfg_path[BLIPC_HUB_PATH_MAX], p[BLIPC_HUB_PATH_MAX];
    BLIPC_TRY(blipc__path_join(cfg_path, sizeof cfg_path, dir, "config.json", e));
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: no such directory", dir);
    if (!blipc__file_exists(cfg_path)) {
        BLIPC_TRY(blipc__strlist_add(missing, "config.json", e));
        return blipc__errf(e, BLIPC_ERR_IO, "%s: config.json is missing: not a model directory", dir);
    }
    char *txt;
    size_t n;
    BLIPC_TRY(blipc__read_file(cfg_path, 16u << 20, &txt, &n, e));
    cJSON *cfg = cJSON_ParseWithLength(txt, n);
    free(txt);
    if (!cfg) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not valid JSON", cfg_path);
    blipc__hub_kind k;
    blipc_status st = blipc__hub_detect_kind(h, cfg, cfg_path, &k, e);
    if (st) {
        cJSON_Delete(cfg);
        return st;
    }
    if (kind && kind_cap) snprintf(kind, kind_cap, "%s", k.name);
    st = blipc__hub_check_config(h, cfg, cfg_path, k.name, repo, e);
    cJSON_Delete(cfg);
    int n_missing = 0;
    blipc__strlist shards = {0};
    for (size_t i = 0; !st && i < k.required.n; i++) st = require(dir, k.required.v[i], missing, &n_missing, e);
    if (!st) st = blipc__path_join(p, sizeof p, dir, "model.safetensors.index.json", e);
    if (!st && blipc__file_exists(p)) {
        char *idx;
        st = blipc__read_file(p, 64u << 20, &idx, &n, e);
        if (!st) {
            st = blipc__hub_index_shards(idx, p, &shards, e);
            free(idx);
        }
    } else if (!st) {
        st = blipc__strlist_add(&shards, "model.safetensors", e);
    }
    for (size_t i = 0; !st && i < shards.n; i++) st = require(dir, shards.v[i], missing, &n_missing, e);
    if (!st && n_missing) {
        char list[600];
        size_t k2 = 0;
        list[0] = 0;
        for (size_t i = 0; i < missing->n && k2 < sizeof list - 64; i++)
                k2 += (size_t)snprintf(list + k2, sizeof list - k2, "%s%s", i ? ", " : "", missing->v[i]);
        st = blipc__errf(e, BLIPC_ERR_IO, "%s: incomplete %s model: %d required file%s missing%s%s", dir, k.name,
                         n_missing, n_missing > 1 ? "s" : "", ": ", list);
    }
    for (size_t i = 0; !st && i < shards.n; i++) {
        st = blipc__path_join(p, sizeof p, dir, shards.v[i], e);
        if (!st) st = blipc__hub_check_safetensors(p, e);
    }
    blipc__strlist_free(&shards);
    blipc__hub_kind_free(&k);
    return st;
}
