#!/usr/bin/python3
"""opensearch_server.py - an in-memory OpenSearch-compatible test server.

Speaks the subset of the OpenSearch REST API that libblipc-index uses, with
OpenSearch's request validation and response shapes (checked against the
official API specification in ../shared/opensearch-api-spec when PyYAML and
the spec are available: unknown query parameters are rejected as OpenSearch
does), plus fault injection for the client's retry logic.

Usage: opensearch_server.py [--auth USER:PASS] [--readonly USER:PASS]
                            [--lifetime SECONDS] [--max-content-length BYTES]
                            [--spec DIR] [--port N]
Prints the port it listens on (127.0.0.1) on stdout, then serves until its
stdin is closed (the parent exited) or the lifetime runs out.

Test-only endpoints (never need auth):
  POST /_fault   JSON, any of:
     {"reset": true}                         forget faults, request log, all state
     {"fail_requests": {"status": 503, "count": 2, "path": "_bulk", "es": false}}
     {"item_429": {"ids": ["id1", ...], "times": 1, "es": false}}
     {"drop": {"count": 1, "when": "before" | "after", "path": "_bulk"}}
     {"slow": {"seconds": 2.0, "count": 1, "path": "_bulk", "when": "before" | "after"}}
     {"ml_fail": "register" | "deploy" | null, "ml_polls": 2, "ml_no_ml_node": true}
     {"max_content_length": BYTES}
  GET  /_dump?index=NAME   {"docs": {id: source}, "versions": {id: n}, "writes": {id: n}}
  GET  /_requests          the request log (method, path, query, headers, bulk items)
"""
import gzip
import hashlib
import json
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

VERSION = "2.19.0"
MAX_HYBRID_SUBQUERIES = 5
MAX_K = 10000


class OSError_(Exception):
    """An OpenSearch error answer: status, type, reason (+ optional caused_by/extra fields)."""

    def __init__(self, status, etype, reason, caused_by=None, root=None, **extra):
        super().__init__(reason)
        self.status, self.etype, self.reason, self.caused_by, self.extra = status, etype, reason, caused_by, extra
        self.root = root

    def cause(self):
        c = {"type": self.etype, "reason": self.reason}
        c.update(self.extra)
        if self.caused_by:
            c["caused_by"] = self.caused_by
        return c

    def body(self):
        root = self.root
        if root is None:
            root = {"type": self.etype, "reason": self.reason}
            root.update(self.extra)
        return {"error": {"root_cause": [root], **self.cause()}, "status": self.status}


def bad_request(reason, etype="illegal_argument_exception", **kw):
    return OSError_(400, etype, reason, **kw)


def parse_exception(reason):
    return OSError_(400, "parse_exception", reason)


def index_not_found(name):
    return OSError_(404, "index_not_found_exception", "no such index [%s]" % name,
                    index=name, **{"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_"})


# ------------------------------------------------------------------ spec

class Spec:
    """Query parameters allowed per (method, path template), read from the OpenAPI spec."""

    NAMESPACES = ["_core", "indices", "ingest", "search_pipeline", "ml", "cluster"]

    def __init__(self, root):
        self.routes = []  # (method, regex, template, allowed, required)
        self.loaded = False
        try:
            import yaml
        except ImportError:
            return
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            glob = yaml.load(open(os.path.join(root, "_global_parameters.yaml")), Loader=loader)
            global_names = {p["name"] for p in glob["components"]["parameters"].values()}
            for ns in self.NAMESPACES:
                d = yaml.load(open(os.path.join(root, "namespaces", ns + ".yaml")), Loader=loader)
                params = d.get("components", {}).get("parameters", {})
                for tmpl, ops in d.get("paths", {}).items():
                    for method, op in ops.items():
                        if not isinstance(op, dict) or method.startswith("x-") or method == "parameters":
                            continue
                        allowed, required = set(global_names), set()
                        for p in op.get("parameters", []):
                            if "$ref" in p:
                                p = params.get(p["$ref"].split("/")[-1], {})
                            if p.get("in") == "query":
                                allowed.add(p["name"])
                                if p.get("required"):
                                    required.add(p["name"])
                        rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", re.escape(tmpl).replace(r"\{", "{").replace(r"\}", "}")) + "$"
                        literal = len([s for s in tmpl.split("/") if s and not s.startswith("{")])
                        self.routes.append((method.upper(), re.compile(rx), tmpl, allowed, required, literal))
            self.loaded = True
        except (OSError, KeyError, TypeError, ValueError):
            self.routes = []

    def check(self, method, path, query):
        if not self.loaded:
            return
        best = None
        for m, rx, tmpl, allowed, required, literal in self.routes:
            if m == method and rx.match(path):
                if best is None or literal > best[4]:
                    best = (tmpl, allowed, required, rx, literal)
        if best is None:
            return
        tmpl, allowed, required = best[0], best[1], best[2]
        for k in query:
            if k not in allowed:
                raise bad_request("request [%s] contains unrecognized parameter: [%s]" % (path, k))
        for k in required:
            if k not in query:
                raise bad_request("request [%s] is missing required parameter [%s]" % (path, k))


# ------------------------------------------------------------------ text helpers

TOKEN_RX = re.compile(r"[0-9a-z]+")


def tokenize(text):
    return TOKEN_RX.findall(str(text).lower())


def hash_embed(text, dim):
    """Deterministic stand-in for a text_embedding model: hashed bag of words, L2-normalised."""
    v = [0.0] * dim
    for tok in tokenize(text) or [""]:
        h = hashlib.sha256(tok.encode()).digest()
        for j in range(4):
            idx = int.from_bytes(h[4 * j:4 * j + 4], "little") % dim
            v[idx] += 1.0 if h[16 + j] & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def flatten_settings(obj, prefix=""):
    out = {}
    for k, v in (obj or {}).items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten_settings(v, key + "."))
        else:
            out[key] = v
    return out


def nest_settings(flat):
    out = {}
    for k, v in flat.items():
        parts = k.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


# ------------------------------------------------------------------ mapping

FIELD_TYPES = {"text", "keyword", "knn_vector", "integer", "long", "short", "byte", "float", "double",
               "half_float", "date", "boolean", "object", "nested", "match_only_text"}
SPACE_TYPES = {"l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming"}
ENGINES = {"lucene", "faiss", "nmslib"}


def validate_properties(props, path=""):
    if not isinstance(props, dict):
        raise OSError_(400, "mapper_parsing_exception", "Failed to parse mapping [_doc]: properties must be an object")
    for name, p in props.items():
        full = path + name
        if not isinstance(p, dict):
            raise OSError_(400, "mapper_parsing_exception",
                           "Failed to parse mapping [_doc]: Expected map for property [fields] on field [%s] but got a class java.lang.String" % full)
        t = p.get("type", "object" if "properties" in p else None)
        if t not in FIELD_TYPES:
            raise OSError_(400, "mapper_parsing_exception",
                           "Failed to parse mapping [_doc]: No handler for type [%s] declared on field [%s]" % (t, full))
        if t == "knn_vector":
            dim = p.get("dimension")
            if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0 or dim > 16000:
                raise OSError_(400, "mapper_parsing_exception",
                               "Failed to parse mapping [_doc]: Dimension value missing or invalid for vector: %s" % full)
            m = p.get("method")
            if m is not None:
                if not isinstance(m, dict) or "name" not in m:
                    raise OSError_(400, "mapper_parsing_exception", "Failed to parse mapping [_doc]: [name] required for method of field [%s]" % full)
                if m["name"] != "hnsw" and m["name"] != "ivf":
                    raise OSError_(400, "mapper_parsing_exception", "Failed to parse mapping [_doc]: Invalid method name: %s" % m["name"])
                eng = m.get("engine", "faiss")
                if eng not in ENGINES:
                    raise OSError_(400, "mapper_parsing_exception", "Failed to parse mapping [_doc]: Invalid engine type: %s" % eng)
                st = m.get("space_type", p.get("space_type", "l2"))
                if st not in SPACE_TYPES:
                    raise OSError_(400, "mapper_parsing_exception", "Failed to parse mapping [_doc]: Unable to find space: %s" % st)
                if eng == "lucene" and st in ("l1", "linf"):
                    raise OSError_(400, "mapper_parsing_exception",
                                   "Failed to parse mapping [_doc]: Validation Failed: 1: %s not supported for engine lucene;" % st)
        if "properties" in p:
            validate_properties(p["properties"], full + ".")
        if "fields" in p:
            validate_properties(p["fields"], full + ".")


def vector_space(prop):
    m = prop.get("method") or {}
    return m.get("space_type", prop.get("space_type", "l2"))


def knn_score(space, q, v):
    if space == "cosinesimil":
        nq = math.sqrt(sum(x * x for x in q))
        nv = math.sqrt(sum(x * x for x in v))
        cos = sum(a * b for a, b in zip(q, v)) / (nq * nv) if nq and nv else 0.0
        return (1.0 + cos) / 2.0
    if space == "innerproduct":
        d = sum(a * b for a, b in zip(q, v))
        return d + 1.0 if d >= 0 else 1.0 / (1.0 - d)
    if space == "l1":
        return 1.0 / (1.0 + sum(abs(a - b) for a, b in zip(q, v)))
    if space == "linf":
        return 1.0 / (1.0 + max(abs(a - b) for a, b in zip(q, v)))
    return 1.0 / (1.0 + sum((a - b) ** 2 for a, b in zip(q, v)))


# ------------------------------------------------------------------ state

class Index:
    def __init__(self, name, settings, mappings):
        self.name = name
        self.uuid = uuid.uuid4().hex[:22]
        self.settings = settings          # flat: "index.knn" -> value
        self.mappings = mappings          # {"properties": {...}}
        self.docs = {}                    # id -> source
        self.versions = {}
        self.writes = {}                  # id -> successful write ops
        self.visible = {}                 # searchable snapshot: id -> source
        self.seq = 0
        self.pending_since = None

    def prop(self, dotted):
        props = self.mappings.setdefault("properties", {})
        parts = dotted.split(".")
        p = None
        for i, part in enumerate(parts):
            if part not in props:
                if p is not None and "fields" in p and part in p["fields"]:
                    return p["fields"][part]
                return None
            p = props[part]
            props = p.get("properties", {})
        return p

    def refresh(self):
        self.visible = {k: json.loads(json.dumps(v)) for k, v in self.docs.items()}
        self.pending_since = None


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.args = args
        self.reset()

    def reset(self):
        self.indices = {}
        self.ingest = {}
        self.search_pipelines = {}
        self.models = {}
        self.tasks = {}
        self.cluster = {"persistent": {}, "transient": {}}
        self.faults = {}
        self.log = []
        self.max_content_length = self.args.get("max_content_length", 100 * 1024 * 1024)


def get_index(state, name):
    idx = state.indices.get(name)
    if idx is None:
        raise index_not_found(name)
    return idx


def auto_refresh(idx):
    # refresh_interval: 1s - documents become searchable at most a second after a write
    if idx.pending_since is not None and time.time() - idx.pending_since >= 1.0:
        idx.refresh()


# ------------------------------------------------------------------ documents

def coerce_field(idx, doc_id, name, prop, value):
    t = prop.get("type", "object")
    preview = json.dumps(value)[:40]

    def fail(cause_type, cause_reason):
        raise OSError_(400, "mapper_parsing_exception",
                       "failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'"
                       % (name, t, doc_id, preview), caused_by={"type": cause_type, "reason": cause_reason})

    if value is None:
        return
    if t == "knn_vector":
        if not isinstance(value, list):
            fail("illegal_argument_exception", "Vector must be an array of numbers")
        for x in value:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                fail("illegal_argument_exception", "Vector value must be a number, found: %s" % json.dumps(x)[:20])
            if not math.isfinite(x):
                fail("illegal_argument_exception", "KNN vector values cannot be NaN or Infinity")
        if len(value) != prop["dimension"]:
            fail("illegal_argument_exception",
                 "Vector dimension mismatch. Expected: %d, Given: %d" % (prop["dimension"], len(value)))
        if vector_space(prop) == "cosinesimil" and not any(value):
            fail("illegal_argument_exception", "zero vector is not supported when space type is [cosinesimil]")
    elif t in ("integer", "long", "short", "byte"):
        vals = value if isinstance(value, list) else [value]
        for x in vals:
            if isinstance(x, bool):
                fail("illegal_argument_exception", "Current token (VALUE_TRUE) not numeric")
            if isinstance(x, str):
                try:
                    int(x)
                except ValueError:
                    fail("number_format_exception", 'For input string: "%s"' % x[:40])
            elif isinstance(x, float) and x != int(x):
                fail("illegal_argument_exception", "Value [%s] has a decimal part" % x)
            elif not isinstance(x, (int, float)):
                fail("illegal_argument_exception", "Current token (START_OBJECT) not numeric")
    elif t in ("float", "double", "half_float"):
        vals = value if isinstance(value, list) else [value]
        for x in vals:
            if isinstance(x, str):
                try:
                    float(x)
                except ValueError:
                    fail("number_format_exception", 'For input string: "%s"' % x[:40])
            elif isinstance(x, bool) or not isinstance(x, (int, float)):
                fail("illegal_argument_exception", "Current token not numeric")
    elif t in ("text", "keyword", "match_only_text"):
        vals = value if isinstance(value, list) else [value]
        for x in vals:
            if isinstance(x, (dict, list)):
                fail("illegal_state_exception", "Can't get text on a START_OBJECT")
    elif t == "boolean":
        if not isinstance(value, bool) and value not in ("true", "false", ""):
            fail("illegal_argument_exception", "Failed to parse value [%s] as only [true] or [false] are allowed." % value)
    elif t in ("object", "nested"):
        if not isinstance(value, (dict, list)):
            raise OSError_(400, "mapper_parsing_exception",
                           "object mapping for [%s] tried to parse field [%s] as object, but found a concrete value" % (name, name))


def dynamic_type(value):
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if isinstance(value, list):
        return dynamic_type(value[0]) if value else None
    if isinstance(value, dict):
        return {"properties": {}}
    return None


def check_document(idx, doc_id, source, props=None, prefix=""):
    """Validate a source against the mapping (mapper_parsing_exception), adding dynamic fields."""
    if props is None:
        props = idx.mappings.setdefault("properties", {})
    for k, v in source.items():
        name = prefix + k
        p = props.get(k)
        if p is None:
            if str(idx.settings.get("index.mapping.dynamic", idx.mappings.get("dynamic", "true"))) == "strict":
                raise OSError_(400, "strict_dynamic_mapping_exception",
                               "mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed" % k)
            p = dynamic_type(v)
            if p is None:
                continue
            props[k] = p
        coerce_field(idx, doc_id, name, p, v)
        if isinstance(v, dict) and "properties" in p:
            check_document(idx, doc_id, v, p["properties"], name + ".")


def run_pipeline(state, idx, pname, source):
    pipe = state.ingest.get(pname)
    if pipe is None:
        raise bad_request("pipeline with id [%s] does not exist" % pname)
    for proc in pipe.get("processors", []):
        (ptype, conf), = proc.items()
        if ptype == "text_embedding":
            model = state.models.get(conf["model_id"])
            if model is None:
                raise OSError_(404, "status_exception", "Failed to find model")
            if model["model_state"] != "DEPLOYED":
                raise OSError_(400, "illegal_argument_exception",
                               "Model not ready yet. Please run this first: POST /_plugins/_ml/models/%s/_deploy" % conf["model_id"])
            for src, dst in conf["field_map"].items():
                if src in source and isinstance(source[src], str):
                    p = idx.prop(dst)
                    dim = p["dimension"] if p and p.get("type") == "knn_vector" else 384
                    source[dst] = hash_embed(source[src], dim)
        elif ptype == "set":
            source[conf["field"]] = conf.get("value")
        elif ptype == "remove":
            source.pop(conf["field"], None)
    return source


# ------------------------------------------------------------------ queries

def field_values(source, dotted):
    parts = dotted.split(".")
    cur = source
    for i, p in enumerate(parts):
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif p == "keyword" and i == len(parts) - 1:
            break  # multi-field: same value as the parent
        else:
            return []
    return cur if isinstance(cur, list) else [cur]


class Matcher:
    """Evaluates a query DSL tree over an index's visible documents."""

    def __init__(self, idx, state=None):
        self.idx = idx
        self.state = state
        self.docs = idx.visible
        n = len(self.docs) or 1
        self.n = n

    def run(self, q, top=False):
        """Returns {doc_id: score} of matching documents."""
        if not isinstance(q, dict) or len(q) != 1:
            raise parse_exception("query malformed, must start with start_object" if not isinstance(q, dict)
                                  else "[_na] query malformed, no start_object after query name")
        (qt, body), = q.items()
        if qt == "hybrid" and not top:
            raise bad_request("hybrid query must be a top level query and cannot be wrapped into other queries")
        fn = getattr(self, "q_" + qt, None)
        if fn is None:
            raise parse_exception("unknown query [%s]" % qt)
        return fn(body)

    def q_match_all(self, body):
        return {k: 1.0 for k in self.docs}

    def q_ids(self, body):
        vals = set(body.get("values", []))
        return {k: 1.0 for k in self.docs if k in vals}

    def q_match(self, body):
        if not isinstance(body, dict) or len(body) != 1:
            raise parse_exception("[match] query doesn't support multiple fields, found [%s]" % ",".join(body))
        (field, spec), = body.items()
        if isinstance(spec, dict):
            if "query" not in spec:
                raise parse_exception("[match] requires query value")
            text, op = spec["query"], spec.get("operator", "or").lower()
        else:
            text, op = spec, "or"
        terms = tokenize(text)
        if not terms:
            return {}
        df = {}
        lengths = {}
        toks = {}
        for did, src in self.docs.items():
            words = []
            for v in field_values(src, field):
                words += tokenize(v)
            toks[did] = words
            lengths[did] = len(words)
            for t in set(words):
                df[t] = df.get(t, 0) + 1
        avg = (sum(lengths.values()) / len(lengths)) if lengths else 1.0
        k1, b = 1.2, 0.75
        out = {}
        for did, words in toks.items():
            score, hit = 0.0, 0
            for t in terms:
                tf = words.count(t)
                if tf:
                    hit += 1
                    idf = math.log(1 + (len(self.docs) - df[t] + 0.5) / (df[t] + 0.5))
                    score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[did] / (avg or 1)))
            if hit and (op == "or" or hit == len(set(terms))):
                out[did] = score
        return out

    def q_term(self, body):
        (field, spec), = body.items()
        val = spec["value"] if isinstance(spec, dict) else spec
        return {k: 1.0 for k, s in self.docs.items() if val in field_values(s, field)}

    def q_terms(self, body):
        (field, vals), = [(k, v) for k, v in body.items() if k != "boost"]
        return {k: 1.0 for k, s in self.docs.items() if any(v in vals for v in field_values(s, field))}

    def q_range(self, body):
        (field, spec), = body.items()
        out = {}
        for k, s in self.docs.items():
            for v in field_values(s, field):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                ok = True
                if "gte" in spec and not v >= spec["gte"]: ok = False
                if "gt" in spec and not v > spec["gt"]: ok = False
                if "lte" in spec and not v <= spec["lte"]: ok = False
                if "lt" in spec and not v < spec["lt"]: ok = False
                if ok:
                    out[k] = 1.0
                    break
        return out

    def q_exists(self, body):
        return {k: 1.0 for k, s in self.docs.items() if field_values(s, body["field"])}

    def q_bool(self, body):
        allowed = {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
        for k in body:
            if k not in allowed:
                raise parse_exception("[bool] query does not support [%s]" % k)
        as_list = lambda v: v if isinstance(v, list) else [v]
        cands = set(self.docs)
        score = {k: 0.0 for k in self.docs}
        for q in as_list(body.get("must", [])):
            r = self.run(q)
            cands &= set(r)
            for k, s in r.items():
                score[k] += s
        for q in as_list(body.get("filter", [])):
            cands &= set(self.run(q))
        for q in as_list(body.get("must_not", [])):
            cands -= set(self.run(q))
        shoulds = as_list(body.get("should", []))
        if shoulds:
            hits = {}
            for q in shoulds:
                for k, s in self.run(q).items():
                    score[k] += s
                    hits[k] = hits.get(k, 0) + 1
            msm = body.get("minimum_should_match", 0 if ("must" in body or "filter" in body) else 1)
            cands = {k for k in cands if hits.get(k, 0) >= int(msm)}
        return {k: (score[k] if score[k] > 0 else 1.0 if not body.get("must") and not shoulds else score[k]) for k in cands}

    def q_neural(self, body):
        if not isinstance(body, dict) or len(body) != 1:
            raise parse_exception("[neural] query doesn't support multiple fields")
        (field, spec), = body.items()
        if "query_text" not in spec or "model_id" not in spec and "model_id" not in self.idx.settings.get("neural_default", {}):
            raise bad_request("[neural] requires query_text and model_id")
        model = self.state.models.get(spec["model_id"])
        if model is None or model["model_state"] != "DEPLOYED":
            raise bad_request("Model not ready yet. Please run this first: POST /_plugins/_ml/models/%s/_deploy" % spec["model_id"])
        prop = self.idx.prop(field)
        if prop is None or prop.get("type") != "knn_vector":
            raise bad_request("Field '%s' is not knn_vector type." % field)
        knn = {"vector": hash_embed(spec["query_text"], prop["dimension"])}
        for k in ("k", "filter", "min_score", "max_distance"):
            if k in spec:
                knn[k] = spec[k]
        return self.q_knn({field: knn})

    def q_knn(self, body):
        if not isinstance(body, dict) or len(body) != 1:
            raise parse_exception("[knn] query doesn't support multiple fields")
        (field, spec), = body.items()
        if not isinstance(spec, dict):
            raise parse_exception("[knn] query malformed")
        for k in spec:
            if k not in ("vector", "k", "filter", "min_score", "max_distance", "boost", "method_parameters",
                         "rescore", "expand_nested_docs", "_name"):
                raise parse_exception("[knn] unknown token [%s] after [%s]" % (k, field))
        if "vector" not in spec:
            raise bad_request("[knn] requires query vector")
        prop = self.idx.prop(field)
        if prop is None or prop.get("type") != "knn_vector":
            raise bad_request("Field '%s' is not knn_vector type." % field)
        vec = spec["vector"]
        if not isinstance(vec, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in vec):
            raise parse_exception("[knn] field vector must be an array of numbers")
        if len(vec) != prop["dimension"]:
            raise bad_request("Query vector has invalid dimension: %d. Dimension should be: %d" % (len(vec), prop["dimension"]))
        has_k = "k" in spec
        if has_k + ("min_score" in spec) + ("max_distance" in spec) != 1:
            raise bad_request("[knn] requires exactly one of k, distance or score to be set")
        k = spec.get("k")
        if has_k and (isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k > MAX_K):
            raise bad_request("[knn] requires k to be in the range (0, %d]" % MAX_K)
        space = vector_space(prop)
        cands = set(self.run(spec["filter"])) if spec.get("filter") else set(self.docs)
        scored = []
        for did in cands:
            v = field_values(self.docs[did], field)
            if len(v) == prop["dimension"]:
                scored.append((knn_score(space, vec, v), did))
        scored.sort(key=lambda t: (-t[0], t[1]))
        if has_k:
            scored = scored[:k]
        elif "min_score" in spec:
            scored = [t for t in scored if t[0] >= spec["min_score"]]
        return {did: s for s, did in scored}


def normalization_processor(pipeline):
    for proc in (pipeline or {}).get("phase_results_processors", []):
        if "normalization-processor" in proc:
            return proc["normalization-processor"]
    return None


def hybrid_search(matcher, body, pipeline, depth):
    if not isinstance(body, dict) or "queries" not in body:
        raise parse_exception("[hybrid] requires 'queries' field")
    for key in body:
        if key not in ("queries", "pagination_depth", "filter", "boost", "_name"):
            raise parse_exception("[hybrid] query does not support [%s]" % key)
    subs = body["queries"]
    if not isinstance(subs, list) or not subs:
        raise parse_exception("[hybrid] requires 'queries' field with at least one clause")
    if len(subs) > MAX_HYBRID_SUBQUERIES:
        raise parse_exception("Number of sub-queries exceeds maximum supported by [hybrid] query")
    norm = normalization_processor(pipeline)
    if norm is None:
        raise bad_request("hybrid query requires a search pipeline with a normalization-processor "
                          "(set the search_pipeline parameter or index.search.default_pipeline)")
    filt = set(matcher.run(body["filter"])) if body.get("filter") else None
    results = []
    for q in subs:
        r = matcher.run(q)
        if filt is not None:
            r = {k: v for k, v in r.items() if k in filt}
        top = sorted(r.items(), key=lambda t: (-t[1], t[0]))[:depth]
        results.append(dict(top))
    technique = norm.get("normalization", {}).get("technique", "min_max")
    weights = norm.get("combination", {}).get("parameters", {}).get("weights")
    if weights is None:
        weights = [1.0 / len(subs)] * len(subs)
    if len(weights) != len(subs):
        raise bad_request("number of weights [%d] must match number of sub-queries [%d] in hybrid query"
                          % (len(weights), len(subs)))
    normed = []
    for r in results:
        if not r:
            normed.append({})
            continue
        if technique == "l2":
            n = math.sqrt(sum(s * s for s in r.values())) or 1.0
            normed.append({k: s / n for k, s in r.items()})
        else:
            lo, hi = min(r.values()), max(r.values())
            out = {}
            for k, s in r.items():
                if hi == lo:
                    out[k] = 1.0
                else:
                    out[k] = (s - lo) / (hi - lo) or 0.001
            normed.append(out)
    combined = {}
    for k in set().union(*[set(r) for r in normed]):
        num = sum(w * r.get(k, 0.0) for w, r in zip(weights, normed))
        combined[k] = num / (sum(weights) or 1.0)
    return combined


# ------------------------------------------------------------------ HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small responses: no 40 ms delayed-ACK stalls
    server_version = "opensearch-test"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- plumbing
    def note_status(self, status, obj=None):
        entry = getattr(self, "log_entry", None)
        if entry is not None:
            entry["status"] = status
            if isinstance(obj, dict) and isinstance(obj.get("items"), list):
                entry["item_status"] = [next(iter(it.values())).get("status") for it in obj["items"]]

    def send_json(self, status, obj, extra_headers=None):
        self.note_status(status, obj)
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def drop(self):
        self.note_status("dropped")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self): self.handle_any()
    def do_POST(self): self.handle_any()
    def do_PUT(self): self.handle_any()
    def do_DELETE(self): self.handle_any()
    def do_HEAD(self): self.handle_any()

    def take_fault(self, key, path, when=None):
        st = self.server.state
        with st.lock:
            f = st.faults.get(key)
            if not f or f.get("count", 0) <= 0:
                return None
            if f.get("path") and f["path"] not in path:
                return None
            if when is not None and f.get("when", "before") != when:
                return None
            f["count"] -= 1
            return dict(f)

    def handle_any(self):
        st = self.server.state
        self.log_entry = None
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                line = self.rfile.readline().strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(n)
                self.rfile.readline()
        else:
            raw = self.rfile.read(length) if length else b""
        try:
            if path == "/_fault":
                return self.control_fault(raw)
            if path == "/_dump":
                return self.control_dump(query)
            if path == "/_requests":
                with st.lock:
                    return self.send_json(200, {"requests": st.log})
            entry = {"method": self.command, "path": path, "query": query, "conn": self.client_address[1],
                     "content_type": self.headers.get("Content-Type"),
                     "content_encoding": self.headers.get("Content-Encoding"),
                     "length": len(raw), "user": None,
                     "amz": {k: self.headers.get(k) for k in ("x-amz-date", "x-amz-content-sha256")
                             if self.headers.get(k)},
                     "authorization_scheme": (self.headers.get("Authorization") or " ").split(" ")[0]}
            if entry["amz"].get("x-amz-content-sha256"):
                entry["amz_sha256_ok"] = entry["amz"]["x-amz-content-sha256"] == hashlib.sha256(raw).hexdigest()
            self.log_entry = entry
            with st.lock:
                st.log.append(entry)
            if len(raw) > st.max_content_length:
                # Netty's aggregator answers 413 without a body and closes the connection
                self.close_connection = True
                return self.send_json(413, None, {"Connection": "close"})
            user = self.check_auth()
            if user is False:
                return self.send_json(401, None, {"WWW-Authenticate": 'Basic realm="OpenSearch Security"'})
            entry["user"] = user
            f = self.take_fault("slow", path, "before")
            if f:
                time.sleep(float(f.get("seconds", 1.0)))
            f = self.take_fault("fail_requests", path)
            if f:
                return self.send_fault_status(f)
            drop = self.take_fault("drop", path)
            if drop and drop.get("when", "before") == "before":
                return self.drop()
            if self.headers.get("Content-Encoding", "").lower() == "gzip" and raw:
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError):
                    raise bad_request("failed to decompress the request body (Content-Encoding: gzip)")
            self.server.spec.check(self.command, path, query)
            if user is not None and user in self.server.readonly and self.command in ("PUT", "POST", "DELETE") \
                    and not path.endswith("/_search") and not path.endswith("/_count"):
                raise OSError_(403, "security_exception",
                               "no permissions for [indices:data/write/bulk] and User [name=%s, backend_roles=[], requestedTenant=null]" % user)
            status, obj = self.route(path, query, raw, entry)
            self.note_status(status, obj)  # what was applied, even if the answer is then lost
            if drop:  # "after": the request was applied, the answer is lost
                return self.drop()
            f = self.take_fault("slow", path, "after")
            if f:  # applied, answered late
                time.sleep(float(f.get("seconds", 1.0)))
            return self.send_json(status, obj)
        except OSError_ as e:
            return self.send_json(e.status, e.body() if self.command != "HEAD" else None)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            err = OSError_(400, "json_parse_exception", "Unexpected character: %s" % e)
            return self.send_json(400, err.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_fault_status(self, f):
        status = int(f.get("status", 503))
        if status == 429:
            t = "es_rejected_execution_exception" if f.get("es") else "rejected_execution_exception"
            err = OSError_(429, t, "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                                   "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=1]")
            return self.send_json(429, err.body())
        if status == 503:
            err = OSError_(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];")
            return self.send_json(503, err.body())
        if status in (502, 504):
            # a proxy in front of the cluster: plain text body
            data = b"<html><body>%d Gateway error</body></html>" % status
            self.note_status(status)
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        err = OSError_(status, "exception", "injected failure")
        return self.send_json(status, err.body())

    def check_auth(self):
        users = self.server.users
        if not users:
            return None
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        import base64
        try:
            u, _, p = base64.b64decode(h[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return u if users.get(u) == p else False

    # -- control endpoints
    def control_fault(self, raw):
        st = self.server.state
        conf = json.loads(raw or b"{}")
        with st.lock:
            if conf.get("reset"):
                st.reset()
            for key in ("fail_requests", "drop", "slow"):
                if key in conf:
                    st.faults[key] = dict(conf[key])
            if "item_429" in conf:
                f = conf["item_429"]
                st.faults["item_429"] = {"left": {i: int(f.get("times", 1)) for i in f.get("ids", [])},
                                         "es": bool(f.get("es"))}
            for key in ("ml_fail", "ml_polls", "ml_no_ml_node"):
                if key in conf:
                    st.faults[key] = conf[key]
            if "max_content_length" in conf:
                st.max_content_length = int(conf["max_content_length"])
        return self.send_json(200, {"acknowledged": True})

    def control_dump(self, query):
        st = self.server.state
        with st.lock:
            name = query.get("index")
            if name not in st.indices:
                return self.send_json(404, index_not_found(name or "").body())
            idx = st.indices[name]
            return self.send_json(200, {"docs": idx.docs, "versions": idx.versions, "writes": idx.writes,
                                        "settings": idx.settings, "mappings": idx.mappings})

    # -- router
    def route(self, path, query, raw, entry):
        st = self.server.state
        m = self.command
        parts = [p for p in path.split("/") if p]
        body = None

        def json_body(required=False):
            if not raw.strip():
                if required:
                    raise parse_exception("request body is required")
                return {}
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in ("application/json", "application/x-ndjson", ""):
                raise OSError_(406, "media_type_header_exception", "Content-Type header [%s] is not supported" % ctype)
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                raise parse_exception("request body must be a JSON object")
            return obj

        with st.lock:
            if not parts:
                if m in ("GET", "HEAD"):
                    return 200, {"name": "node-1", "cluster_name": "blipc-test", "cluster_uuid": "test",
                                 "version": {"distribution": "opensearch", "number": VERSION,
                                             "build_type": "tar", "lucene_version": "9.12.1",
                                             "minimum_wire_compatibility_version": "7.10.0",
                                             "minimum_index_compatibility_version": "7.0.0"},
                                 "tagline": "The OpenSearch Project: https://opensearch.org/"}
            if parts == ["_bulk"] and m in ("POST", "PUT"):
                return self.bulk(None, query, raw, entry)
            if parts == ["_refresh"] and m in ("POST", "GET"):
                for idx in st.indices.values():
                    idx.refresh()
                return 200, {"_shards": {"total": len(st.indices), "successful": len(st.indices), "failed": 0}}
            if parts == ["_cluster", "settings"]:
                if m == "PUT":
                    b = json_body(True)
                    for scope in ("persistent", "transient"):
                        st.cluster[scope].update(flatten_settings(b.get(scope, {})))
                    return 200, {"acknowledged": True, "persistent": nest_settings(st.cluster["persistent"]),
                                 "transient": nest_settings(st.cluster["transient"])}
                if m == "GET":
                    return 200, {"persistent": nest_settings(st.cluster["persistent"]),
                                 "transient": nest_settings(st.cluster["transient"])}
            if parts[:2] == ["_ingest", "pipeline"]:
                return self.ingest_pipeline(parts[2:], json_body)
            if parts[:2] == ["_search", "pipeline"]:
                return self.search_pipeline(parts[2:], json_body)
            if parts[:2] == ["_plugins", "_ml"]:
                return self.ml(parts[2:], json_body)
            if parts[0].startswith("_"):
                raise bad_request("no handler found for uri [%s] and method [%s]" % (path, m),
                                  etype="illegal_argument_exception")
            name = parts[0]
            rest = parts[1:]
            if not rest:
                if m == "HEAD":
                    return (200 if name in st.indices else 404), None
                if m == "PUT":
                    return self.create_index(name, json_body())
                if m == "DELETE":
                    if name not in st.indices:
                        raise index_not_found(name)
                    del st.indices[name]
                    return 200, {"acknowledged": True}
                if m == "GET":
                    idx = get_index(st, name)
                    return 200, {name: {"aliases": {}, "mappings": idx.mappings,
                                        "settings": {"index": nest_settings(idx.settings)["index"]}}}
            if rest == ["_mapping"] or rest == ["_mappings"]:
                idx = get_index(st, name)
                if m == "GET":
                    return 200, {name: {"mappings": idx.mappings}}
                if m in ("PUT", "POST"):
                    b = json_body(True)
                    props = b.get("properties", {})
                    validate_properties(props)
                    for k, p in props.items():
                        old = idx.mappings.setdefault("properties", {}).get(k)
                        if old is not None and old.get("type") != p.get("type"):
                            raise bad_request("mapper [%s] cannot be changed from type [%s] to [%s]"
                                              % (k, old.get("type"), p.get("type")))
                        if old is not None and old.get("type") == "knn_vector" and old.get("dimension") != p.get("dimension"):
                            raise bad_request("Cannot update parameter [dimension] from [%s] to [%s]"
                                              % (old.get("dimension"), p.get("dimension")))
                        idx.mappings["properties"][k] = p
                    return 200, {"acknowledged": True}
            if rest == ["_settings"]:
                idx = get_index(st, name)
                if m == "GET":
                    return 200, {name: {"settings": {"index": nest_settings(idx.settings)["index"]}}}
                if m == "PUT":
                    flat = flatten_settings(json_body(True))
                    for k, v in flat.items():
                        key = k if k.startswith("index.") else "index." + k
                        if key in ("index.knn", "index.number_of_shards"):
                            raise bad_request("final %s setting [%s], not updateable" % (name, key))
                        idx.settings[key] = v
                    return 200, {"acknowledged": True}
            if rest == ["_bulk"] and m in ("POST", "PUT"):
                return self.bulk(name, query, raw, entry)
            if rest == ["_refresh"] and m in ("POST", "GET"):
                get_index(st, name).refresh()
                return 200, {"_shards": {"total": 2, "successful": 1, "failed": 0}}
            if rest == ["_count"] and m in ("POST", "GET"):
                idx = get_index(st, name)
                auto_refresh(idx)
                b = json_body()
                hits = Matcher(idx, st).run(b["query"], top=True) if "query" in b else idx.visible
                return 200, {"count": len(hits), "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
            if rest == ["_search"] and m in ("POST", "GET"):
                return self.search(name, query, json_body())
            if len(rest) == 2 and rest[0] == "_doc" and m in ("GET", "HEAD"):
                idx = get_index(st, name)
                did = rest[1]
                if did in idx.docs:
                    src = idx.docs[did]
                    inc = [x for x in query.get("_source_includes", "").split(",") if x]
                    exc = [x for x in query.get("_source_excludes", "").split(",") if x]
                    if inc or exc:
                        src = {k: v for k, v in src.items() if (not inc or k in inc) and k not in exc}
                    return 200, {"_index": name, "_id": did, "_version": idx.versions[did],
                                 "_seq_no": 0, "_primary_term": 1, "found": True, "_source": src}
                return 404, {"_index": name, "_id": did, "found": False}
            if len(rest) == 2 and rest[0] == "_doc" and m == "DELETE":
                idx = get_index(st, name)
                did = rest[1]
                found = idx.docs.pop(did, None) is not None
                if found:
                    idx.versions[did] += 1
                    if idx.pending_since is None:
                        idx.pending_since = time.time()
                return (200 if found else 404), {"_index": name, "_id": did, "_version": idx.versions.get(did, 1),
                                                 "result": "deleted" if found else "not_found",
                                                 "_shards": {"total": 2, "successful": 1, "failed": 0},
                                                 "_seq_no": idx.seq, "_primary_term": 1}
            if len(rest) == 2 and rest[0] == "_update" and m == "POST":
                idx = get_index(st, name)
                did = rest[1]
                b = json_body(True)
                if "doc" not in b or not isinstance(b["doc"], dict):
                    raise OSError_(400, "action_request_validation_exception", "Validation Failed: 1: script or doc is missing;")
                if did not in idx.docs:
                    raise OSError_(404, "document_missing_exception", "[%s]: document missing" % did,
                                   index=name, shard="0", index_uuid=idx.uuid)
                merged = dict(idx.docs[did])
                merged.update(b["doc"])
                check_document(idx, did, merged)
                idx.docs[did] = merged
                idx.versions[did] += 1
                idx.writes[did] = idx.writes.get(did, 0) + 1
                if idx.pending_since is None:
                    idx.pending_since = time.time()
                return 200, {"_index": name, "_id": did, "_version": idx.versions[did], "result": "updated",
                             "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": idx.seq, "_primary_term": 1}
        raise bad_request("no handler found for uri [%s] and method [%s]" % (path, m))

    # -- indices
    def create_index(self, name, body):
        st = self.server.state
        if name != name.lower() or name.startswith(("_", "-", "+")) or any(c in name for c in '\\/*?"<>| ,#:'):
            raise OSError_(400, "invalid_index_name_exception",
                           "Invalid index name [%s], must be lowercase" % name if name != name.lower()
                           else "Invalid index name [%s], must not start with '_', '-', or '+'" % name,
                           index=name, index_uuid="_na_")
        for k in body:
            if k not in ("settings", "mappings", "aliases"):
                raise parse_exception("unknown key [%s] for create index" % k)
        if name in st.indices:
            idx = st.indices[name]
            raise OSError_(400, "resource_already_exists_exception", "index [%s/%s] already exists" % (name, idx.uuid),
                           index=name, index_uuid=idx.uuid)
        settings = {}
        for k, v in flatten_settings(body.get("settings", {})).items():
            settings[k if k.startswith("index.") else "index." + k] = v
        mappings = body.get("mappings", {}) or {}
        for k in mappings:
            if k not in ("properties", "dynamic", "_source", "dynamic_templates", "_meta"):
                raise OSError_(400, "mapper_parsing_exception", "Root mapping definition has unsupported parameters:  [%s : %s]"
                               % (k, json.dumps(mappings[k])))
        validate_properties(mappings.get("properties", {}))
        knn = str(settings.get("index.knn", "false")).lower() == "true"
        for fname, p in mappings.get("properties", {}).items():
            if p.get("type") == "knn_vector" and not knn and (p.get("method") or {}).get("engine", "faiss") != "lucene":
                raise OSError_(400, "mapper_parsing_exception",
                               "Failed to parse mapping [_doc]: Cannot create knn_vector field [%s] with engine %s "
                               "when index.knn is false" % (fname, (p.get("method") or {}).get("engine", "faiss")))
        mappings.setdefault("properties", {})
        st.indices[name] = Index(name, settings, json.loads(json.dumps(mappings)))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    # -- bulk
    def bulk(self, default_index, query, raw, entry):
        st = self.server.state
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/x-ndjson", "application/json"):
            raise OSError_(406, "media_type_header_exception", "Content-Type header [%s] is not supported" % ctype)
        if not raw:
            raise OSError_(400, "action_request_validation_exception",
                           "Validation Failed: 1: no requests added;")
        if not raw.endswith(b"\n"):
            raise bad_request("The bulk request must be terminated by a newline [\\n]")
        text = raw.decode("utf-8")
        lines = text.split("\n")[:-1]
        ops = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            try:
                action = json.loads(line)
            except json.JSONDecodeError:
                raise bad_request("Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]" % (i + 1))
            if not isinstance(action, dict) or len(action) != 1:
                raise bad_request("Malformed action/metadata line [%d], expected a simple value for field [_index] but found [START_OBJECT]" % (i + 1))
            (op, meta), = action.items()
            if op not in ("index", "create", "update", "delete"):
                raise bad_request("Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%s]" % (i + 1, op))
            for k in meta:
                if k not in ("_index", "_id", "routing", "pipeline", "require_alias", "if_seq_no", "if_primary_term",
                             "version", "version_type", "op_type", "retry_on_conflict", "_source"):
                    raise bad_request("Action/metadata line [%d] contains an unknown parameter [%s]" % (i + 1, k))
            idxname = meta.get("_index", default_index)
            if not idxname:
                raise OSError_(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
            src = None
            if op != "delete":
                if i + 1 >= len(lines):
                    raise bad_request("The bulk request must be terminated by a newline [\\n]")
                src = lines[i + 1]
                i += 1
            ops.append((op, meta, idxname, src))
            i += 1
        items = []
        errors = False
        entry["bulk"] = []
        t0 = time.time()
        ingest = False
        f429 = st.faults.get("item_429")
        for op, meta, idxname, src in ops:
            doc_id = meta.get("_id")
            info = {"op": op, "id": doc_id, "index": idxname, "pipeline": None}
            entry["bulk"].append(info)
            res = {"_index": idxname, "_id": doc_id}
            try:
                if f429 and doc_id in f429["left"] and f429["left"][doc_id] > 0:
                    f429["left"][doc_id] -= 1
                    t = "es_rejected_execution_exception" if f429["es"] else "rejected_execution_exception"
                    raise OSError_(429, t, "rejected execution of primary operation [shard_detail=[%s][0][P], "
                                           "shard_coordinating_and_primary_bytes=0, shard_operation_bytes=1, "
                                           "shard_max_coordinating_and_primary_bytes=1]" % idxname)
                if op == "delete":
                    idx = get_index(st, idxname)
                    if doc_id in idx.docs:
                        del idx.docs[doc_id]
                        res.update(result="deleted", status=200)
                    else:
                        res.update(result="not_found", status=404)
                    items.append({op: res})
                    continue
                if op == "update":
                    raise bad_request("update is not supported by this test server")
                if idxname not in st.indices:
                    self.create_index(idxname, {})
                idx = st.indices[idxname]
                try:
                    source = json.loads(src)
                except json.JSONDecodeError as e:
                    raise OSError_(400, "mapper_parsing_exception", "failed to parse",
                                   caused_by={"type": "json_parse_exception", "reason": str(e)})
                if not isinstance(source, dict):
                    raise OSError_(400, "mapper_parsing_exception", "failed to parse",
                                   caused_by={"type": "not_x_content_exception",
                                              "reason": "Compressor detection can only be called on some xcontent bytes"})
                if doc_id is None:
                    doc_id = uuid.uuid4().hex[:20]
                    res["_id"] = info["id"] = doc_id
                pname = meta.get("pipeline", query.get("pipeline", idx.settings.get("index.default_pipeline")))
                info["pipeline"] = pname
                info["fields"] = sorted(source.keys())
                if pname and pname != "_none":
                    source = run_pipeline(st, idx, pname, source)
                    ingest = True
                check_document(idx, doc_id, source)
                if op == "create" and doc_id in idx.docs:
                    raise OSError_(409, "version_conflict_engine_exception",
                                   "[%s]: version conflict, document already exists (current version [%d])"
                                   % (doc_id, idx.versions[doc_id]), index=idxname, shard="0", index_uuid=idx.uuid)
                existed = doc_id in idx.docs
                idx.docs[doc_id] = source
                idx.versions[doc_id] = idx.versions.get(doc_id, 0) + 1
                idx.writes[doc_id] = idx.writes.get(doc_id, 0) + 1
                idx.seq += 1
                if idx.pending_since is None:
                    idx.pending_since = time.time()
                res.update({"_version": idx.versions[doc_id], "result": "updated" if existed else "created",
                            "_shards": {"total": 2, "successful": 1, "failed": 0},
                            "_seq_no": idx.seq - 1, "_primary_term": 1, "status": 200 if existed else 201})
            except OSError_ as e:
                errors = True
                res["status"] = e.status
                res["error"] = e.cause()
                if e.etype == "mapper_parsing_exception" or e.status == 409:
                    res["error"].setdefault("index", idxname)
                    res["error"].setdefault("shard", "0")
                info["error"] = e.etype
            items.append({op: res})
        refresh = query.get("refresh")
        if refresh in ("", "true", "wait_for"):
            for name in {o[2] for o in ops if o[2] in st.indices}:
                st.indices[name].refresh()
        out = {"took": int((time.time() - t0) * 1000), "errors": errors, "items": items}
        if ingest:
            out["ingest_took"] = 0
        return 200, out

    # -- search
    def search(self, name, query, body):
        st = self.server.state
        idx = get_index(st, name)
        auto_refresh(idx)
        for k in body:
            if k not in ("query", "size", "from", "_source", "sort", "track_total_hits", "min_score", "timeout",
                         "explain", "stored_fields", "docvalue_fields", "search_pipeline"):
                raise parse_exception("Unknown key for a START_OBJECT in [%s]." % k)
        size = int(query.get("size", body.get("size", 10)))
        frm = int(query.get("from", body.get("from", 0)))
        if size < 0:
            raise bad_request("[size] parameter cannot be negative, found [%d]" % size)
        if size + frm > 10000:
            raise bad_request("Result window is too large, from + size must be less than or equal to: [10000] but was [%d]."
                              % (size + frm))
        q = body.get("query", {"match_all": {}})
        pname = query.get("search_pipeline", idx.settings.get("index.search.default_pipeline"))
        pipeline = None
        if pname and pname != "_none":
            pipeline = st.search_pipelines.get(pname)
            if pipeline is None:
                raise bad_request("Pipeline %s is not defined" % pname)
        matcher = Matcher(idx, st)
        try:
            if isinstance(q, dict) and "hybrid" in q and len(q) == 1:
                depth = q["hybrid"].get("pagination_depth", max(size + frm, 10)) if isinstance(q["hybrid"], dict) else 10
                scores = hybrid_search(matcher, q["hybrid"], pipeline, depth)
            else:
                scores = matcher.run(q, top=True)
        except OSError_ as e:
            if e.status == 400 and e.etype != "parse_exception":
                raise OSError_(400, "search_phase_execution_exception", "all shards failed",
                               caused_by=e.cause(), root=e.cause(), phase="query", grouped=True,
                               failed_shards=[{"shard": 0, "index": name, "node": "node-1", "reason": e.cause()}])
            raise
        ranked = sorted(scores.items(), key=lambda t: (-t[1], t[0]))
        if "min_score" in body:
            ranked = [t for t in ranked if t[1] >= body["min_score"]]
        page = ranked[frm:frm + size]
        hits = []
        src_spec = body.get("_source", True)
        for did, s in page:
            h = {"_index": name, "_id": did, "_score": s}
            src = idx.visible[did]
            if src_spec is False:
                pass
            elif isinstance(src_spec, dict) or isinstance(src_spec, list):
                inc = src_spec if isinstance(src_spec, list) else src_spec.get("includes", src_spec.get("include"))
                exc = [] if isinstance(src_spec, list) else src_spec.get("excludes", src_spec.get("exclude", []))
                h["_source"] = {k: v for k, v in src.items() if (not inc or k in inc) and k not in exc}
            else:
                h["_source"] = src
            hits.append(h)
        return 200, {"took": 1, "timed_out": False,
                     "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                     "hits": {"total": {"value": len(ranked), "relation": "eq"},
                              "max_score": ranked[0][1] if ranked else None, "hits": hits}}

    # -- pipelines
    def ingest_pipeline(self, rest, json_body):
        st = self.server.state
        m = self.command
        if not rest:
            if m == "GET":
                return 200, st.ingest
        pid = rest[0]
        if m == "PUT":
            b = json_body(True)
            procs = b.get("processors")
            if not isinstance(procs, list):
                raise parse_exception("[processors] required property is missing")
            for p in procs:
                if not isinstance(p, dict) or len(p) != 1:
                    raise parse_exception("processor must be an object with a single key")
                (ptype, conf), = p.items()
                if ptype == "text_embedding":
                    for req in ("model_id", "field_map"):
                        if req not in conf:
                            raise OSError_(400, "parse_exception", "[%s] required property is missing" % req,
                                           processor_type="text_embedding", property_name=req)
                    if not isinstance(conf["field_map"], dict) or not conf["field_map"] or \
                            not all(isinstance(v, str) for v in conf["field_map"].values()):
                        raise bad_request("Unable to create the processor as field_map has invalid key or value")
                    if conf["model_id"] not in st.models:
                        pass  # OpenSearch only checks the model when documents are ingested
                elif ptype not in ("set", "remove", "rename", "lowercase"):
                    raise parse_exception("No processor type exists with name [%s]" % ptype)
            st.ingest[pid] = b
            return 200, {"acknowledged": True}
        if m == "GET":
            if pid not in st.ingest:
                return 404, {}
            return 200, {pid: st.ingest[pid]}
        if m == "DELETE":
            if pid not in st.ingest:
                raise OSError_(404, "resource_not_found_exception", "pipeline [%s] is missing" % pid)
            del st.ingest[pid]
            return 200, {"acknowledged": True}
        raise bad_request("no handler found for uri and method [%s]" % m)

    def search_pipeline(self, rest, json_body):
        st = self.server.state
        m = self.command
        if not rest and m == "GET":
            return 200, st.search_pipelines
        pid = rest[0]
        if m == "PUT":
            b = json_body(True)
            for key in b:
                if key not in ("description", "request_processors", "response_processors", "phase_results_processors", "version"):
                    raise parse_exception("unknown key [%s] in search pipeline" % key)
            for p in b.get("phase_results_processors", []):
                (ptype, conf), = p.items()
                if ptype != "normalization-processor":
                    raise bad_request("Invalid processor type %s" % ptype)
                tech = conf.get("normalization", {}).get("technique", "min_max")
                if tech not in ("min_max", "l2", "z_score"):
                    raise bad_request("provided normalization technique is not supported")
                comb = conf.get("combination", {})
                if comb.get("technique", "arithmetic_mean") not in ("arithmetic_mean", "geometric_mean", "harmonic_mean"):
                    raise bad_request("provided combination technique is not supported")
                w = comb.get("parameters", {}).get("weights")
                if w is not None:
                    if not isinstance(w, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 or x > 1 for x in w):
                        raise bad_request("all weights must be in range [0.0 ... 1.0]")
                    if abs(sum(w) - 1.0) > 1e-6:
                        raise bad_request("sum of weights for combination must be equal to 1.0")
            st.search_pipelines[pid] = b
            return 200, {"acknowledged": True}
        if m == "GET":
            if pid not in st.search_pipelines:
                return 404, {}
            return 200, {pid: st.search_pipelines[pid]}
        if m == "DELETE":
            st.search_pipelines.pop(pid, None)
            return 200, {"acknowledged": True}
        raise bad_request("no handler found for method [%s]" % m)

    # -- ML Commons
    PRETRAINED = {"huggingface/sentence-transformers/all-MiniLM-L12-v2": ("1.0.1", 384),
                  "huggingface/sentence-transformers/all-MiniLM-L6-v2": ("1.0.1", 384),
                  "huggingface/sentence-transformers/msmarco-distilbert-base-tas-b": ("1.0.1", 768)}

    def ml(self, rest, json_body):
        st = self.server.state
        m = self.command
        now = int(time.time() * 1000)
        if rest == ["models", "_register"] and m == "POST":
            b = json_body(True)
            if "name" not in b:
                raise bad_request("model name is null")
            name = b["name"]
            if "url" not in b and "connector_id" not in b:
                if name not in self.PRETRAINED:
                    raise bad_request("Unable to find pretrained model %s" % name)
                if b.get("version") != self.PRETRAINED[name][0]:
                    raise bad_request("Unable to find pretrained model %s version %s" % (name, b.get("version")))
                if b.get("model_format") not in ("TORCH_SCRIPT", "ONNX"):
                    raise bad_request("model_format is required for pretrained models: TORCH_SCRIPT or ONNX")
            task_id = uuid.uuid4().hex[:20]
            st.tasks[task_id] = {"task_type": "REGISTER_MODEL", "function_name": "TEXT_EMBEDDING",
                                 "state": "CREATED", "polls": 0, "create_time": now, "last_update_time": now,
                                 "is_async": True, "model_name": name,
                                 "fail": st.faults.get("ml_fail") == "register"}
            return 200, {"task_id": task_id, "status": "CREATED"}
        if len(rest) == 2 and rest[0] == "tasks" and m == "GET":
            t = st.tasks.get(rest[1])
            if t is None:
                raise OSError_(404, "status_exception", "Fail to find task")
            t["polls"] += 1
            need = int(st.faults.get("ml_polls", 2))
            if t["state"] == "CREATED":
                t["state"] = "RUNNING"
            elif t["state"] == "RUNNING" and t["polls"] > need:
                t["last_update_time"] = now
                if t["fail"]:
                    t["state"] = "FAILED"
                    if t["task_type"] == "REGISTER_MODEL":
                        t["error"] = ("Connection timed out while downloading model %s from "
                                      "https://artifacts.opensearch.org" % t["model_name"])
                    else:
                        t["error"] = json.dumps({"node-1-id": "Exception occurred when deploying model: "
                                                              "java.lang.OutOfMemoryError: native memory"})
                    if t["task_type"] == "DEPLOY_MODEL":
                        st.models[t["model_id"]]["model_state"] = "DEPLOY_FAILED"
                else:
                    t["state"] = "COMPLETED"
                    if t["task_type"] == "REGISTER_MODEL":
                        mid = uuid.uuid4().hex[:20]
                        t["model_id"] = mid
                        st.models[mid] = {"name": t["model_name"], "model_state": "REGISTERED",
                                          "algorithm": "TEXT_EMBEDDING", "model_format": "TORCH_SCRIPT",
                                          "model_config": {"model_type": "bert", "framework_type": "sentence_transformers",
                                                           "embedding_dimension": self.PRETRAINED.get(t["model_name"], ("", 384))[1]}}
                    else:
                        st.models[t["model_id"]]["model_state"] = "DEPLOYED"
            out = {k: t[k] for k in ("task_type", "function_name", "state", "create_time",
                                     "last_update_time", "is_async") if k in t}
            if "model_id" in t:
                out["model_id"] = t["model_id"]
            if t["state"] in ("RUNNING", "COMPLETED", "FAILED"):
                out["worker_node"] = ["node-1-id"]
            if "error" in t:
                out["error"] = t["error"]
            return 200, out
        if len(rest) == 3 and rest[0] == "models" and rest[2] == "_deploy" and m == "POST":
            mid = rest[1]
            if mid not in st.models:
                raise OSError_(404, "status_exception", "Failed to find model")
            if st.faults.get("ml_no_ml_node") and \
                    str(st.cluster["persistent"].get("plugins.ml_commons.only_run_on_ml_node", "true")).lower() != "false":
                raise bad_request("No eligible node found to execute this request. It's best practice to provision ML "
                                  "nodes to serve your models. You can disable this setting to serve the model on your "
                                  "data node for development purposes by disabling the "
                                  "\"plugins.ml_commons.only_run_on_ml_node\" configuration using the _cluster/setting api")
            task_id = uuid.uuid4().hex[:20]
            st.models[mid]["model_state"] = "DEPLOYING"
            st.tasks[task_id] = {"task_type": "DEPLOY_MODEL", "function_name": "TEXT_EMBEDDING", "state": "CREATED",
                                 "polls": 0, "create_time": now, "last_update_time": now, "is_async": True,
                                 "model_id": mid, "fail": st.faults.get("ml_fail") == "deploy"}
            return 200, {"task_id": task_id, "task_type": "DEPLOY_MODEL", "status": "CREATED"}
        if len(rest) == 2 and rest[0] == "models" and m == "GET":
            mod = st.models.get(rest[1])
            if mod is None:
                raise OSError_(404, "status_exception", "Failed to find model")
            return 200, dict(mod, model_id=rest[1])
        raise bad_request("no handler found for uri [/_plugins/_ml/%s] and method [%s]" % ("/".join(rest), m))


def main():
    args = {"lifetime": 600.0}
    argv = sys.argv[1:]
    users, readonly = {}, set()
    here = os.path.dirname(os.path.abspath(__file__))
    spec_dir = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "opensearch-api-spec", "spec"))
    port = 0
    i = 0
    while i < len(argv):
        a = argv[i]
        v = argv[i + 1] if i + 1 < len(argv) else ""
        if a in ("--auth", "--readonly"):
            u, _, p = v.partition(":")
            users[u] = p
            if a == "--readonly":
                readonly.add(u)
        elif a == "--lifetime":
            args["lifetime"] = float(v)
        elif a == "--max-content-length":
            args["max_content_length"] = int(v)
        elif a == "--spec":
            spec_dir = v
        elif a == "--port":
            port = int(v)
        else:
            sys.stderr.write("opensearch_server.py: unknown argument %s\n" % a)
            sys.exit(2)
        i += 2
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    srv.users = users
    srv.readonly = readonly
    srv.spec = Spec(spec_dir)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Timer(args["lifetime"], lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
