#!/usr/bin/python3
"""hub_server.py - a local Hugging Face Hub look-alike for the libblipc-hub tests.

Serves the fixture models under fake repo ids with the Hub's protocol:
  GET  /api/models/{repo}/revision/{rev}      model info: {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /{repo}/resolve/{rev}/{file}       regular files: 200 + ETag (git blob sha1) + X-Repo-Commit;
                                              LFS files (*.safetensors): 302 to /cdn/<sha256> with
                                              X-Linked-Etag (sha256), X-Linked-Size, X-Repo-Commit
  GET  /cdn/{sha256}                          the LFS bytes, with Range support (206 + Content-Range)
Errors like the Hub: unknown repo -> 401 (no token) / 404 with X-Error-Code RepoNotFound; unknown
revision -> 404 RevisionNotFound; unknown file -> 404 EntryNotFound (+ X-Repo-Commit); gated repo
without token -> 401 GatedRepo, with a wrong token -> 403 GatedRepo.

Repos (all at one commit each; revision "main" or the commit hash):
  blipc-test/blip2-tiny           the blip2-tiny fixture (single model.safetensors)
  blipc-test/blip2-tiny-sharded   same tensors split into 2 shards + model.safetensors.index.json
  blipc-test/missing-shard        sharded, but the second shard is not in the repo
  blipc-test/minilm-tiny          the minilm-tiny fixture (sentence-transformers layout)
  blipc-test/gated-minilm         minilm-tiny, needs "Authorization: Bearer hf_test_token"
  blipc-test/t5-model             a config.json with model_type t5 (unsupported)
  blipc-test/bin-only             BLIP-2 config + pytorch_model.bin only (no safetensors)

Test-only endpoints:
  POST /_control  JSON, any of:
     {"reset": true}                                   forget faults and the request log
     {"fail": {"status": 500, "count": 2, "path": "x"}}  next `count` requests whose path contains x fail
     {"drop": {"after": 1000, "count": 1, "path": "x"}}  GETs send `after` body bytes then drop the connection
     {"corrupt": {"count": 1, "path": "x"}}            GET bodies with one byte flipped (same length)
     {"no_range": true}                                ignore Range headers (answer 200 with everything)
     {"no_api": true}                                  /api/ answers 404 without X-Error-Code (a plain mirror)
     {"cdn_host": "localhost"}                         LFS redirects name this host (a CDN elsewhere)
  GET  /_requests  the request log: [{"method", "path", "range", "auth"}]

Usage: hub_server.py [--fixtures DIR] [--lifetime SECONDS]
Prints the port (127.0.0.1) on stdout, then serves until stdin is closed or the lifetime ends.
"""
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKEN = "hf_test_token"

BLIP2_FILES = ["config.json", "preprocessor_config.json", "processor_config.json", "vocab.json", "merges.txt",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json"]
MINILM_FILES = ["config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "vocab.txt",
                "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "model.safetensors"]
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def split_safetensors(data):
    """Split a safetensors file into two shards (by tensor name order) + an index."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    body = data[8 + n:]
    names = sorted(header)
    half = len(names) // 2
    shards, weight_map, total = [], {}, 0
    for k, part in enumerate([names[:half], names[half:]]):
        fname = "model-%05d-of-00002.safetensors" % (k + 1)
        hdr, blob, off = {}, bytearray(), 0
        for name in part:
            t = header[name]
            a, b = t["data_offsets"]
            chunk = body[a:b]
            hdr[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + len(chunk)]}
            blob += chunk
            off += len(chunk)
            weight_map[name] = fname
        if meta is not None:
            hdr["__metadata__"] = meta
        hj = json.dumps(hdr, separators=(",", ":")).encode()
        hj += b" " * ((8 - len(hj) % 8) % 8)
        shards.append((fname, struct.pack("<Q", len(hj)) + hj + bytes(blob)))
        total += len(blob)
    index = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2).encode()
    return shards, index


class Repo:
    def __init__(self, name, files, gated=False, hidden=()):
        self.name = name
        self.files = files            # filename -> bytes
        self.gated = gated
        self.hidden = set(hidden)     # listed nowhere, served nowhere (missing from the repo)
        self.commit = hashlib.sha1(("blipc-test-commit:" + name).encode()).hexdigest()

    @staticmethod
    def is_lfs(fname):
        return fname.endswith(".safetensors") or fname.endswith(".bin")


def load_repos(fixtures):
    def read(rel):
        with open(os.path.join(fixtures, rel), "rb") as f:
            return f.read()

    readme = b"---\nlicense: mit\n---\n# test model\n"
    blip = {f: read("blip2-tiny/" + f) for f in BLIP2_FILES}
    blip[".gitattributes"] = GITATTRIBUTES
    blip["README.md"] = readme
    single = dict(blip)
    single["model.safetensors"] = read("blip2-tiny/model.safetensors")
    shards, index = split_safetensors(single["model.safetensors"])
    sharded = dict(blip)
    for fname, data in shards:
        sharded[fname] = data
    sharded["model.safetensors.index.json"] = index
    minilm = {f: read("minilm-tiny/" + f) for f in MINILM_FILES}
    minilm[".gitattributes"] = GITATTRIBUTES
    minilm["README.md"] = readme
    t5 = {"config.json": b'{"model_type": "t5", "d_model": 8}\n', "README.md": readme}
    binonly = dict(blip)
    binonly["pytorch_model.bin"] = b"\x80\x02not really a pickle" * 16
    repos = [
        Repo("blipc-test/blip2-tiny", single),
        Repo("blipc-test/blip2-tiny-sharded", sharded),
        Repo("blipc-test/missing-shard", dict(sharded), hidden=[shards[1][0]]),
        Repo("blipc-test/minilm-tiny", minilm),
        Repo("blipc-test/gated-minilm", dict(minilm), gated=True),
        Repo("blipc-test/t5-model", t5),
        Repo("blipc-test/bin-only", binonly),
    ]
    return {r.name: r for r in repos}


class State:
    def __init__(self, repos):
        self.repos = repos
        self.lock = threading.Lock()
        self.cdn = {}  # sha256 -> bytes
        for r in repos.values():
            for fname, data in r.files.items():
                if Repo.is_lfs(fname):
                    self.cdn[hashlib.sha256(data).hexdigest()] = data
        self.reset()

    def reset(self):
        self.faults = {"fail": [], "drop": [], "corrupt": []}
        self.no_range = False
        self.no_api = False
        self.cdn_host = None
        self.log = []

    def take(self, kind, path):
        """Consume one matching fault of this kind (or None)."""
        with self.lock:
            for f in self.faults[kind]:
                if f.get("count", 1) > 0 and f.get("path", "") in path:
                    f["count"] = f.get("count", 1) - 1
                    return f
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "blipc-hub-test/1"

    def log_message(self, fmt, *args):
        pass

    # ---------------------------------------------------------------- helpers
    def send(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        hdrs = {"Content-Type": "application/json" if body[:1] in (b"{", b"[") else "text/plain"}
        hdrs.update(headers or {})
        if "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def error(self, status, code, message, head, commit=None):
        h = {"X-Error-Message": message}
        if code:
            h["X-Error-Code"] = code
        if commit:
            h["X-Repo-Commit"] = commit
        self.send(status, json.dumps({"error": message}).encode(), h, head)

    def authorized(self, repo, head):
        """None when the request may go on; otherwise the answer was sent."""
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization", "")
        if not auth:
            self.error(401, "GatedRepo", "Access to model %s is restricted. You must be authenticated." % repo.name, head)
            return False
        if auth != "Bearer " + TOKEN:
            self.error(403, "GatedRepo", "Access to model %s is restricted and you are not in the authorized list."
                       % repo.name, head)
            return False
        return True

    def find_repo(self, parts):
        """parts = path split on '/'; repo ids have 2 components here."""
        if len(parts) < 2:
            return None, parts
        return self.server.state.repos.get(parts[0] + "/" + parts[1]), parts[2:]

    def serve_bytes(self, full, path, head, extra):
        st = self.server.state
        self.full = full
        data, start, status = full, 0, 200
        hdrs = {"Accept-Ranges": "bytes"}
        hdrs.update(extra)
        rng = self.headers.get("Range")
        if rng and not st.no_range and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            a = int(a)
            b = int(b) if b else len(full) - 1
            if a >= len(full):
                self.send(416, b"", {"Content-Range": "bytes */%d" % len(full)}, head)
                return
            data, start, status = full[a:b + 1], a, 206
            hdrs["Content-Range"] = "bytes %d-%d/%d" % (a, a + len(data) - 1, len(full))
        if head:
            self.send(status, data, hdrs, head=True)
            return
        if st.take("corrupt", path) and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        drop = st.take("drop", path)
        if drop:
            n = max(0, min(int(drop.get("after", 0)) - start, len(data))) if drop.get("absolute") else \
                min(int(drop.get("after", 0)), len(data))
            self.send_response(status)
            hdrs["Content-Length"] = str(len(data))
            for k, v in hdrs.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data[:n])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send(status, data, hdrs)

    # ---------------------------------------------------------------- routes
    def handle_any(self, head):
        st = self.server.state
        u = urlsplit(self.path)
        path = unquote(u.path)
        with st.lock:
            st.log.append({"method": self.command, "path": path, "range": self.headers.get("Range"),
                           "auth": self.headers.get("Authorization")})
        if path.startswith("/_"):
            return self.send(404, b"{}", head=head)
        fail = st.take("fail", path)
        if fail:
            return self.error(int(fail.get("status", 500)), None, "injected failure", head)
        if path.startswith("/cdn/"):
            data = st.cdn.get(path[5:])
            if data is None:
                return self.error(404, None, "no such object", head)
            return self.serve_bytes(data, path, head, {"ETag": '"%s"' % path[5:]})
        if path.startswith("/api/models/"):
            if st.no_api:
                return self.send(404, b"Not Found", head=head)
            rest = path[len("/api/models/"):].split("/")
            repo, rest = self.find_repo(rest)
            if repo is None:
                has_auth = bool(self.headers.get("Authorization"))
                return self.error(404 if has_auth else 401, "RepoNotFound", "Repository not found", head)
            if not self.authorized(repo, head):
                return
            rev = "/".join(rest[1:]) if len(rest) >= 2 and rest[0] == "revision" else "main"
            if rev not in ("main", repo.commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
            info = {"id": repo.name, "modelId": repo.name, "sha": repo.commit, "private": False,
                    "gated": "manual" if repo.gated else False,
                    "siblings": [{"rfilename": f} for f in sorted(repo.files) if f not in repo.hidden]}
            return self.send(200, json.dumps(info).encode(), head=head)
        parts = path.lstrip("/").split("/")
        repo, rest = self.find_repo(parts)
        if repo is None or len(rest) < 3 or rest[0] != "resolve":
            if repo is None and len(rest) >= 1:
                has_auth = bool(self.headers.get("Authorization"))
                return self.error(404 if has_auth else 401, "RepoNotFound", "Repository not found", head)
            return self.error(404, None, "Not Found", head)
        if not self.authorized(repo, head):
            return
        rev, fname = rest[1], "/".join(rest[2:])
        if rev not in ("main", repo.commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
        data = repo.files.get(fname)
        if data is None or fname in repo.hidden:
            return self.error(404, "EntryNotFound", "Entry not found", head, commit=repo.commit)
        common = {"X-Repo-Commit": repo.commit}
        if Repo.is_lfs(fname):
            sha = hashlib.sha256(data).hexdigest()
            host = self.headers.get("Host", "127.0.0.1:%d" % self.server.server_port)
            if st.cdn_host:  # another host name for the CDN: credentials must not follow the redirect
                host = "%s:%d" % (st.cdn_host, self.server.server_port)
            hdrs = dict(common)
            hdrs.update({"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                         "ETag": '"%s"' % git_oid(b"version https://git-lfs.github.com/spec/v1\n"),
                         "Location": "http://%s/cdn/%s" % (host, sha)})
            return self.send(302, b"", hdrs, head)
        hdrs = dict(common)
        hdrs["ETag"] = 'W/"%s"' % git_oid(data) if fname.endswith(".md") else '"%s"' % git_oid(data)
        return self.serve_bytes(data, path, head, hdrs)

    def do_HEAD(self):
        self.handle_any(True)

    def do_GET(self):
        st = self.server.state
        if self.path == "/_requests":
            with st.lock:
                body = json.dumps(st.log).encode()
            return self.send(200, body)
        self.handle_any(False)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        if self.path != "/_control":
            return self.send(404, b"{}")
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            return self.send(400, b'{"error":"bad json"}')
        with st.lock:
            if req.get("reset"):
                st.reset()
            for kind in ("fail", "drop", "corrupt"):
                if kind in req:
                    st.faults[kind].append(dict(req[kind]))
            if "no_range" in req:
                st.no_range = bool(req["no_range"])
            if "no_api" in req:
                st.no_api = bool(req["no_api"])
            if "cdn_host" in req:
                st.cdn_host = req["cdn_host"]
        self.send(200, b'{"ok":true}')


def main():
    fixtures = os.environ.get("BLIPC_FIXTURES", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                             "fixtures"))
    lifetime = 600.0
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--fixtures":
            fixtures = args.pop(0)
        elif a == "--lifetime":
            lifetime = float(args.pop(0))
        else:
            sys.stderr.write("unknown argument %s\n" % a)
            return 2
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.state = State(load_repos(fixtures))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdout.write("%d\n" % srv.server_port)
    sys.stdout.flush()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    time.sleep(lifetime)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
