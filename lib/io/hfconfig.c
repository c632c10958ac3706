/* hfconfig.c — HF config.json parsing with transformers' defaults. */
#include "hfconfig.h"
#include "fileutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

blipc_status blipc__json_load(const char *path, cJSON **out, blipc_err *e) {
    *out = NULL;
    char *txt;
    size_t len;
    BLIPC_TRY(blipc__read_file(path, 64u << 20, &txt, &len, e));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - txt) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off && i < len; i++) line += txt[i] == '\n';
        free(txt);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: invalid JSON near line %zu (byte %zu)", path, line, off);
    }
    free(txt);
    *out = root;
    return BLIPC_OK;
}

static const cJSON *field(const cJSON *obj, const char *name) {
    if (!obj) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

blipc_status blipc__json_int(const cJSON *obj, const char *name, long long def, long long *out, const char *where,
                             blipc_err *e) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = def;
        return BLIPC_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9e15)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be an integer", where, name);
    *out = (long long)v->valuedouble;
    return BLIPC_OK;
}

blipc_status blipc__json_num(const cJSON *obj, const char *name, double def, double *out, const char *where,
                             blipc_err *e) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = def;
        return BLIPC_OK;
    }
    if (!cJSON_IsNumber(v)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be a number", where, name);
    *out = v->valuedouble;
    return BLIPC_OK;
}

blipc_status blipc__json_bool(const cJSON *obj, const char *name, int def, int *out, const char *where,
                              blipc_err *e) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = def;
        return BLIPC_OK;
    }
    if (!cJSON_IsBool(v)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be true or false", where, name);
    *out = cJSON_IsTrue(v);
    return BLIPC_OK;
}

blipc_status blipc__json_str(const cJSON *obj, const char *name, const char *def, char *buf, size_t cap,
                             const char *where, blipc_err *e) {
    const cJSON *v = field(obj, name);
    const char *s = def;
    if (v) {
        if (!cJSON_IsString(v)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be a string", where, name);
        s = v->valuestring;
    }
    if (!s) s = "";
    if (strlen(s) >= cap) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" is too long", where, name);
    strcpy(buf, s);
    return BLIPC_OK;
}

blipc_status blipc__json_req_int(const cJSON *obj, const char *name, long long *out, const char *where,
                                 blipc_err *e) {
    if (!field(obj, name)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: required field \"%s\" is missing", where, name);
    BLIPC_TRY(blipc__json_int(obj, name, 0, out, where, e));
    if (*out <= 0) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be positive", where, name);
    return BLIPC_OK;
}

/* int field with default and range check [lo, hi] */
static blipc_status get_int(const cJSON *o, const char *name, long long def, long long lo, long long hi, int *out,
                            const char *where, blipc_err *e) {
    long long v = 0;
    BLIPC_TRY(blipc__json_int(o, name, def, &v, where, e));
    if (v < lo || v > hi)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" = %lld is out of range [%lld, %lld]", where, name, v,
                           lo, hi);
    *out = (int)v;
    return BLIPC_OK;
}

static blipc_status get_eps(const cJSON *o, const char *name, double def, float *out, const char *where,
                            blipc_err *e) {
    double v = 0;
    BLIPC_TRY(blipc__json_num(o, name, def, &v, where, e));
    if (!(v > 0 && v < 1)) return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be in (0, 1)", where, name);
    *out = (float)v;
    return BLIPC_OK;
}

#define BIG 1000000

/* ------------------------------------------------------------------- BERT */

blipc_status blipc__bert_config_load(const char *dir, blipc_bert_config *c, blipc_err *e) {
    memset(c, 0, sizeof *c);
    char path[4096];
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "config.json", e));
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: model directory does not exist", dir);
    cJSON *root;
    BLIPC_TRY(blipc__json_load(path, &root, e));
    blipc_status rc = BLIPC_OK;
    char mt[32];
    if (!cJSON_IsObject(root)) rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not a JSON object", path);
    if (!rc) rc = blipc__json_str(root, "model_type", "bert", mt, sizeof mt, path, e);
    if (!rc && strcmp(mt, "bert") != 0)
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (need \"bert\")", path, mt);
    if (!rc) rc = get_int(root, "vocab_size", 30522, 1, 10 * BIG, &c->vocab_size, path, e);
    if (!rc) rc = get_int(root, "hidden_size", 768, 1, BIG, &c->hidden_size, path, e);
    if (!rc) rc = get_int(root, "num_hidden_layers", 12, 1, 1000, &c->num_hidden_layers, path, e);
    if (!rc) rc = get_int(root, "num_attention_heads", 12, 1, 1000, &c->num_attention_heads, path, e);
    if (!rc) rc = get_int(root, "intermediate_size", 3072, 1, BIG, &c->intermediate_size, path, e);
    if (!rc) rc = get_int(root, "max_position_embeddings", 512, 1, BIG, &c->max_position_embeddings, path, e);
    if (!rc) rc = get_int(root, "type_vocab_size", 2, 1, 1000, &c->type_vocab_size, path, e);
    if (!rc) rc = get_eps(root, "layer_norm_eps", 1e-12, &c->layer_norm_eps, path, e);
    if (!rc) rc = blipc__json_str(root, "hidden_act", "gelu", c->hidden_act, sizeof c->hidden_act, path, e);
    if (!rc && strcmp(c->hidden_act, "gelu") != 0)
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (need \"gelu\")", path,
                         c->hidden_act);
    if (!rc && c->hidden_size % c->num_attention_heads)
        rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                         c->hidden_size, c->num_attention_heads);
    char pos[32];
    if (!rc) rc = blipc__json_str(root, "position_embedding_type", "absolute", pos, sizeof pos, path, e);
    if (!rc && strcmp(pos, "absolute"))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported", path, pos);
    cJSON_Delete(root);
    if (rc) return rc;

    /* sentence-transformers modules */
    c->max_seq_length = 128 < c->max_position_embeddings ? 128 : c->max_position_embeddings;
    c->pooling_mean = 1;
    c->normalize = 1;
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "sentence_bert_config.json", e));
    if (blipc__file_exists(path)) {
        BLIPC_TRY(blipc__json_load(path, &root, e));
        rc = get_int(root, "max_seq_length", c->max_seq_length, 2, c->max_position_embeddings, &c->max_seq_length,
                     path, e);
        cJSON_Delete(root);
        if (rc) return rc;
    }
    char pool_dir[256] = "1_Pooling";
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "modules.json", e));
    if (blipc__file_exists(path)) {
        BLIPC_TRY(blipc__json_load(path, &root, e));
        if (!cJSON_IsArray(root)) {
            cJSON_Delete(root);
            return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: expected a JSON array of modules", path);
        }
        c->normalize = 0;
        int has_pool = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, root) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
            const cJSON *mp = cJSON_GetObjectItemCaseSensitive(m, "path");
            if (!cJSON_IsString(type)) {
                cJSON_Delete(root);
                return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: a module has no \"type\" string", path);
            }
            const char *t = type->valuestring;
            if (!strcmp(t, "sentence_transformers.models.Normalize")) c->normalize = 1;
            else if (!strcmp(t, "sentence_transformers.models.Pooling")) {
                has_pool = 1;
                if (cJSON_IsString(mp) && strlen(mp->valuestring) < sizeof pool_dir && !strstr(mp->valuestring, ".."))
                    strcpy(pool_dir, mp->valuestring);
            } else if (strcmp(t, "sentence_transformers.models.Transformer") != 0) {
                blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: module type \"%s\" is not supported", path, t);
                cJSON_Delete(root); /* t points into root: format the message first */
                return BLIPC_ERR_UNSUPPORTED;
            }
        }
        cJSON_Delete(root);
        if (!has_pool) return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: no Pooling module", path);
    }
    char pdir[4096];
    BLIPC_TRY(blipc__path_join(pdir, sizeof pdir, dir, pool_dir, e));
    BLIPC_TRY(blipc__path_join(path, sizeof path, pdir, "config.json", e));
    if (blipc__file_exists(path)) {
        BLIPC_TRY(blipc__json_load(path, &root, e));
        int mean = 1, cls = 0, mx = 0, sq = 0;
        rc = blipc__json_bool(root, "pooling_mode_mean_tokens", 1, &mean, path, e);
        if (!rc) rc = blipc__json_bool(root, "pooling_mode_cls_token", 0, &cls, path, e);
        if (!rc) rc = blipc__json_bool(root, "pooling_mode_max_tokens", 0, &mx, path, e);
        if (!rc) rc = blipc__json_bool(root, "pooling_mode_mean_sqrt_len_tokens", 0, &sq, path, e);
        long long wdim = c->hidden_size;
        if (!rc) rc = blipc__json_int(root, "word_embedding_dimension", c->hidden_size, &wdim, path, e);
        cJSON_Delete(root);
        if (rc) return rc;
        if (!mean || cls || mx || sq)
            return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: only pooling_mode_mean_tokens is supported", path);
        if (wdim != c->hidden_size)
            return blipc__errf(e, BLIPC_ERR_MODEL, "%s: word_embedding_dimension %lld != config.json hidden_size %d",
                               path, wdim, c->hidden_size);
    }
    return BLIPC_OK;
}

/* ----------------------------------------------------------------- BLIP-2 */

static const cJSON *section(const cJSON *root, const char *name, const char *path, blipc_err *e, blipc_status *rc) {
    const cJSON *s = field(root, name);
    if (s && !cJSON_IsObject(s)) *rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: \"%s\" must be an object", path, name);
    return s; /* NULL (absent) means all defaults */
}

blipc_status blipc__blip2_config_load(const char *dir, blipc_blip2_config *c, blipc_err *e) {
    memset(c, 0, sizeof *c);
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: model directory does not exist", dir);
    char path[4096], w[4200];
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "config.json", e));
    cJSON *root;
    BLIPC_TRY(blipc__json_load(path, &root, e));
    blipc_status rc = BLIPC_OK;
    if (!cJSON_IsObject(root)) rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not a JSON object", path);
    char mt[32] = "";
    if (!rc) rc = blipc__json_str(root, "model_type", "", mt, sizeof mt, path, e);
    if (!rc && strcmp(mt, "blip-2") != 0)
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a BLIP-2 checkpoint (need \"blip-2\")",
                         path, mt);
    const cJSON *vs = rc ? NULL : section(root, "vision_config", path, e, &rc);
    const cJSON *qs = rc ? NULL : section(root, "qformer_config", path, e, &rc);
    const cJSON *ts = rc ? NULL : section(root, "text_config", path, e, &rc);
    if (!rc) rc = get_int(root, "num_query_tokens", 32, 1, 4096, &c->num_query_tokens, path, e);
    if (!rc) rc = get_int(root, "image_token_index", -1, -1, 10 * BIG, &c->image_token_index, path, e);

    blipc_blip2_vision_config *v = &c->vision;
    snprintf(w, sizeof w, "%s: vision_config", path);
    if (!rc) rc = get_int(vs, "hidden_size", 1408, 1, BIG, &v->hidden_size, w, e);
    if (!rc) rc = get_int(vs, "intermediate_size", 6144, 1, BIG, &v->intermediate_size, w, e);
    if (!rc) rc = get_int(vs, "num_hidden_layers", 39, 1, 1000, &v->num_hidden_layers, w, e);
    if (!rc) rc = get_int(vs, "num_attention_heads", 16, 1, 1000, &v->num_attention_heads, w, e);
    if (!rc) rc = get_int(vs, "image_size", 224, 1, 16384, &v->image_size, w, e);
    if (!rc) rc = get_int(vs, "patch_size", 14, 1, 16384, &v->patch_size, w, e);
    if (!rc) rc = get_int(vs, "num_channels", 3, 3, 3, &v->num_channels, w, e);
    if (!rc) rc = get_eps(vs, "layer_norm_eps", 1e-6, &v->layer_norm_eps, w, e);
    if (!rc) rc = blipc__json_bool(vs, "qkv_bias", 1, &v->qkv_bias, w, e);
    if (!rc) rc = blipc__json_str(vs, "hidden_act", "gelu", v->hidden_act, sizeof v->hidden_act, w, e);
    if (!rc && strcmp(v->hidden_act, "gelu"))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s.hidden_act \"%s\" is not supported", w, v->hidden_act);
    if (!rc && v->hidden_size % v->num_attention_heads)
        rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", w,
                         v->hidden_size, v->num_attention_heads);
    if (!rc && v->image_size % v->patch_size)
        rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: image_size %d is not a multiple of patch_size %d", w, v->image_size,
                         v->patch_size);

    blipc_blip2_qformer_config *q = &c->qformer;
    snprintf(w, sizeof w, "%s: qformer_config", path);
    if (!rc) rc = get_int(qs, "hidden_size", 768, 1, BIG, &q->hidden_size, w, e);
    if (!rc) rc = get_int(qs, "num_hidden_layers", 12, 1, 1000, &q->num_hidden_layers, w, e);
    if (!rc) rc = get_int(qs, "num_attention_heads", 12, 1, 1000, &q->num_attention_heads, w, e);
    if (!rc) rc = get_int(qs, "intermediate_size", 3072, 1, BIG, &q->intermediate_size, w, e);
    if (!rc) rc = get_int(qs, "cross_attention_frequency", 2, 1, 1000, &q->cross_attention_frequency, w, e);
    if (!rc) rc = get_int(qs, "vocab_size", 30522, 1, 10 * BIG, &q->vocab_size, w, e);
    if (!rc) rc = get_int(qs, "max_position_embeddings", 512, 1, BIG, &q->max_position_embeddings, w, e);
    if (!rc) rc = get_eps(qs, "layer_norm_eps", 1e-12, &q->layer_norm_eps, w, e);
    if (!rc) rc = blipc__json_bool(qs, "use_qformer_text_input", 0, &q->use_qformer_text_input, w, e);
    if (!rc) rc = blipc__json_str(qs, "hidden_act", "gelu", q->hidden_act, sizeof q->hidden_act, w, e);
    if (!rc && strcmp(q->hidden_act, "gelu"))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s.hidden_act \"%s\" is not supported", w, q->hidden_act);
    if (!rc && q->hidden_size % q->num_attention_heads)
        rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", w,
                         q->hidden_size, q->num_attention_heads);
    /* transformers always overwrites encoder_hidden_size with the vision width;
       a config that states another value is inconsistent. */
    if (!rc) {
        int ehs = 0;
        rc = get_int(qs, "encoder_hidden_size", v->hidden_size, 1, BIG, &ehs, w, e);
        if (!rc && ehs != v->hidden_size)
            rc = blipc__errf(e, BLIPC_ERR_MODEL,
                             "%s: encoder_hidden_size %d does not match vision_config.hidden_size %d", w, ehs,
                             v->hidden_size);
        q->encoder_hidden_size = v->hidden_size;
    }

    blipc_opt_config *t = &c->text;
    snprintf(w, sizeof w, "%s: text_config", path);
    if (!rc) rc = blipc__json_str(ts, "model_type", "opt", t->model_type, sizeof t->model_type, w, e);
    if (!rc && strcmp(t->model_type, "opt"))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s.model_type \"%s\" is not supported (only OPT decoders)", w,
                         t->model_type);
    if (!rc) rc = get_int(ts, "vocab_size", 50272, 1, 10 * BIG, &t->vocab_size, w, e);
    if (!rc) rc = get_int(ts, "hidden_size", 768, 1, BIG, &t->hidden_size, w, e);
    if (!rc) rc = get_int(ts, "num_hidden_layers", 12, 1, 1000, &t->num_hidden_layers, w, e);
    if (!rc) rc = get_int(ts, "ffn_dim", 3072, 1, BIG, &t->ffn_dim, w, e);
    if (!rc) rc = get_int(ts, "max_position_embeddings", 2048, 1, BIG, &t->max_position_embeddings, w, e);
    if (!rc) rc = get_int(ts, "num_attention_heads", 12, 1, 1000, &t->num_attention_heads, w, e);
    if (!rc) rc = get_int(ts, "word_embed_proj_dim", t->hidden_size, 1, BIG, &t->word_embed_proj_dim, w, e);
    if (!rc) rc = blipc__json_bool(ts, "do_layer_norm_before", 1, &t->do_layer_norm_before, w, e);
    if (!rc) rc = blipc__json_bool(ts, "enable_bias", 1, &t->enable_bias, w, e);
    if (!rc) rc = blipc__json_bool(ts, "layer_norm_elementwise_affine", 1, &t->layer_norm_elementwise_affine, w, e);
    if (!rc) rc = blipc__json_bool(ts, "tie_word_embeddings", 1, &t->tie_word_embeddings, w, e);
    if (!rc) rc = get_int(ts, "bos_token_id", 2, 0, 10 * BIG, &t->bos_token_id, w, e);
    if (!rc) rc = get_int(ts, "pad_token_id", 1, 0, 10 * BIG, &t->pad_token_id, w, e);
    if (!rc) rc = get_int(ts, "eos_token_id", 2, 0, 10 * BIG, &t->eos_token_id, w, e);
    if (!rc) rc = blipc__json_str(ts, "activation_function", "relu", t->activation_function,
                                  sizeof t->activation_function, w, e);
    t->layer_norm_eps = 1e-5f;
    if (!rc && strcmp(t->activation_function, "relu"))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s.activation_function \"%s\" is not supported (need relu)", w,
                         t->activation_function);
    if (!rc && t->hidden_size % t->num_attention_heads)
        rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", w,
                         t->hidden_size, t->num_attention_heads);
    if (!rc && t->word_embed_proj_dim != t->hidden_size)
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                         "%s: word_embed_proj_dim %d != hidden_size %d (project_in/out) is not supported", w,
                         t->word_embed_proj_dim, t->hidden_size);
    if (!rc && (!t->do_layer_norm_before || !t->enable_bias || !t->layer_norm_elementwise_affine))
        rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                         "%s: do_layer_norm_before/enable_bias/layer_norm_elementwise_affine must be true", w);
    if (!rc && c->image_token_index >= t->vocab_size)
        rc = blipc__errf(e, BLIPC_ERR_MODEL, "%s: image_token_index %d is outside text_config.vocab_size %d", path,
                         c->image_token_index, t->vocab_size);
    cJSON_Delete(root);
    return rc;
}
