"""Test scaffolding, not part of hf_rec: a small, dependency-free Hugging Face Hub server on loopback, the offline
stand-in for the Hub in the test suite. Users point `HF_ENDPOINT` at a real Hub or their organisation's.

It implements the slice of the Hub HTTP API that ``huggingface_hub`` (2.x) and ``transformers`` call to create repos,
commit files, resolve revisions and download files -- enough for ``push_to_hub`` / ``from_pretrained`` /
``hf_hub_download`` / ``snapshot_download`` round trips without any network access. It is used by the test-suite
(see ``tests/hub_fixtures.py``).

Design
------
* Every file is uploaded in ``"regular"`` mode (the preupload endpoint never asks for LFS or Xet), so the whole content
  travels base64-encoded inside the NDJSON commit payload.
* Storage under ``root_dir``: ``blobs/<sha256>`` (content-addressed, shared by all repos) and, per repo,
  ``repos/<type>s/<namespace>/<name>/{repo.json,refs.json,commits/<commit-id>.json}``. A commit stores a full
  snapshot: a manifest ``path -> {sha256, size, oid}`` (``oid`` is the git blob sha1, which is also the ``ETag``).
  The commit id is the sha1 of the commit's canonical JSON content (tree, parents, message, date, author).
* All writes are atomic (temp file + ``os.replace``) and every request that touches the store holds one lock, so
  concurrent clients see consistent refs.
* Revisions resolve as: branch name, tag name, ``refs/heads/<b>`` / ``refs/tags/<t>``, then a full 40-hex commit id
  (or an unambiguous hex prefix of at least 7 characters) reachable in the repo.
* Errors follow the Hub conventions the client parses: HTTP 404 plus ``X-Error-Code`` (``RepoNotFound``,
  ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message``; 409 on conflicts; 412 on a stale parent commit.
* Authentication is fake: any token is accepted and maps to the user ``hf-rec-tester``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hf_rec.atomic import atomic_write_bytes

__all__ = ["LoopbackHub", "HubError", "FAKE_USER"]

FAKE_USER = "hf-rec-tester"
DEFAULT_BRANCH = "main"
REPO_TYPES = ("model", "dataset", "space")
_PLURAL_TO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_PREFIX_RE = re.compile(r"^[0-9a-f]{7,40}$")
_FRONT_MATTER_RE = re.compile(r"\A\s*---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(\r?\n|\Z)", re.DOTALL)
_API_SUBROUTES = {
    "revision", "tree", "paths-info", "refs", "commits", "branch", "tag", "preupload", "commit", "resolve",
}  # fmt: skip

GITATTRIBUTES = (
    "*.7z filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.ckpt filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.npy filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n"
)


class HubError(Exception):
    """An error answered to the client as ``status`` with the Hub's ``X-Error-Code`` / ``X-Error-Message``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 (``git hash-object``) of ``data``; the Hub's oid/ETag for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def _read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def parse_card_data(readme: bytes) -> dict | None:
    """The YAML front matter of a README as a dict (``None`` when absent, invalid, or PyYAML is missing)."""
    match = _FRONT_MATTER_RE.match(readme.decode("utf-8", errors="replace"))
    if not match:
        return None
    try:
        import yaml  # PyYAML is a dependency of huggingface_hub; optional here
    except ImportError:  # pragma: no cover
        return None
    try:
        data = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class HubStore:
    """On-disk storage of repos, commits, refs and blobs. All public methods are thread-safe."""

    def __init__(self, root_dir: str | os.PathLike):
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)
        self._resolved_root = self.root.resolve()
        self.lock = threading.RLock()

    # ---------------------------------------------------------------- paths
    # Repo ids, commit ids and oids come from clients: each is checked before it becomes a path, and every path must
    # still resolve inside the root, so no request reads or writes anything else the process can reach.
    def _inside(self, path: Path) -> Path:
        if not path.resolve().is_relative_to(self._resolved_root):
            raise HubError(400, "Invalid request: the path resolves outside the Hub's storage")
        return path

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        self.check_repo_id(repo_id)
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        ns, name = repo_id.split("/", 1)
        return self._inside(self.root / "repos" / f"{repo_type}s" / ns / name)

    def _blob_path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
            raise HubError(400, f"Invalid blob id {sha256!r}: expected a sha256 (64 lowercase hex characters)")
        return self._inside(self.root / "blobs" / sha256)

    # ---------------------------------------------------------------- repos
    @staticmethod
    def check_repo_id(repo_id: str) -> None:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME_RE.match(p) and ".." not in p for p in parts):
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected '<namespace>/<name>'")

    def repo_exists(self, repo_type: str, repo_id: str) -> bool:
        try:
            self.check_repo_id(repo_id)
        except HubError:
            return False
        return (self._repo_dir(repo_type, repo_id) / "repo.json").is_file()

    def require_repo(self, repo_type: str, repo_id: str) -> Path:
        if not self.repo_exists(repo_type, repo_id):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return self._repo_dir(repo_type, repo_id)

    def create_repo(self, repo_type: str, repo_id: str, private: bool = False) -> bool:
        """Create the repo with an initial commit (``.gitattributes``). Returns False if it already existed."""
        self.check_repo_id(repo_id)
        with self.lock:
            if self.repo_exists(repo_type, repo_id):
                return False
            repo_dir = self._repo_dir(repo_type, repo_id)
            if repo_dir.exists():  # leftovers of a half-created repo
                shutil.rmtree(repo_dir)
            (repo_dir / "commits").mkdir(parents=True)
            _write_json(repo_dir / "refs.json", {"branches": {}, "tags": {}})
            meta = {"id": repo_id, "type": repo_type, "private": bool(private), "createdAt": _now_iso()}
            _write_json(repo_dir / "repo.json.tmp-meta", meta)
            # initial commit must exist before repo.json marks the repo as existing
            tree = {".gitattributes": self._store_blob(GITATTRIBUTES.encode())}
            commit_id = self._write_commit(repo_dir, tree, parents=[], title="initial commit", message="")
            _write_json(repo_dir / "refs.json", {"branches": {DEFAULT_BRANCH: commit_id}, "tags": {}})
            os.replace(repo_dir / "repo.json.tmp-meta", repo_dir / "repo.json")
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            # make the deletion atomic from the readers' point of view: rename, then remove
            trash = repo_dir.with_name(f".deleted-{repo_dir.name}-{time.time_ns()}")
            os.replace(repo_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def repo_meta(self, repo_type: str, repo_id: str) -> dict:
        return _read_json(self.require_repo(repo_type, repo_id) / "repo.json")

    # ---------------------------------------------------------------- blobs / commits
    def _store_blob(self, data: bytes) -> dict:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha256)
        if not path.is_file():
            atomic_write_bytes(path, data)
        return {"sha256": sha256, "size": len(data), "oid": git_blob_oid(data)}

    def read_blob(self, entry: dict) -> bytes:
        return self._blob_path(entry["sha256"]).read_bytes()

    def _write_commit(self, repo_dir: Path, tree: dict, parents: list[str], title: str, message: str) -> str:
        content = {
            "tree": tree,
            "parents": parents,
            "title": title,
            "message": message,
            "date": _now_iso(),
            "author": FAKE_USER,
            "nonce": time.time_ns(),  # two identical commits in the same millisecond still get distinct ids
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        commit_id = hashlib.sha1(b"commit %d\0" % len(canonical) + canonical).hexdigest()
        _write_json(repo_dir / "commits" / f"{commit_id}.json", {"id": commit_id, **content})
        return commit_id

    def get_commit(self, repo_type: str, repo_id: str, commit_id: str) -> dict:
        if not _HEX40_RE.match(commit_id):
            raise HubError(404, f"Invalid rev id: {commit_id}", "RevisionNotFound")
        return _read_json(self._repo_dir(repo_type, repo_id) / "commits" / f"{commit_id}.json")

    def refs(self, repo_type: str, repo_id: str) -> dict:
        return _read_json(self.require_repo(repo_type, repo_id) / "refs.json")

    def resolve(self, repo_type: str, repo_id: str, revision: str | None) -> str:
        """Resolve a branch / tag / commit id to a commit id, or raise ``RevisionNotFound``."""
        revision = revision or DEFAULT_BRANCH
        refs = self.refs(repo_type, repo_id)
        if revision in refs["branches"]:
            return refs["branches"][revision]
        if revision in refs["tags"]:
            return refs["tags"][revision]["target"]
        for prefix, kind in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if revision.startswith(prefix) and revision[len(prefix) :] in refs[kind]:
                target = refs[kind][revision[len(prefix) :]]
                return target if kind == "branches" else target["target"]
        lowered = revision.lower()
        commits_dir = self._repo_dir(repo_type, repo_id) / "commits"
        if _HEX40_RE.match(lowered) and (commits_dir / f"{lowered}.json").is_file():
            return lowered
        if _HEX_PREFIX_RE.match(lowered) and len(lowered) < 40:
            matches = [p.stem for p in commits_dir.glob(f"{lowered}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, repo_type: str, repo_id: str, commit_id: str) -> list[dict]:
        """Commits reachable from ``commit_id`` following first parents, newest first."""
        out = []
        current: str | None = commit_id
        while current:
            commit = self.get_commit(repo_type, repo_id, current)
            out.append(commit)
            current = commit["parents"][0] if commit["parents"] else None
        return out

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: list[dict],
        title: str,
        message: str = "",
        parent_commit: str | None = None,
    ) -> str:
        """Apply ``operations`` on top of ``branch`` and advance it. Returns the new commit id."""
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if branch.startswith("refs/heads/"):
                branch = branch[len("refs/heads/") :]
            if branch not in refs["branches"]:
                raise HubError(404, f"Invalid rev id: {branch} (commits must target an existing branch)", "RevisionNotFound")
            head = refs["branches"][branch]
            if parent_commit is not None and parent_commit.lower() != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(self.get_commit(repo_type, repo_id, head)["tree"])
            for op in operations:
                kind, path = op["kind"], op["path"]
                if kind == "file":
                    tree[path] = self._store_blob(op["data"])
                elif kind == "lfsFile":
                    sha256 = op["oid"]
                    blob = self._blob_path(sha256)  # 400 unless a sha256: an oid is never a path
                    if not blob.is_file():
                        raise HubError(400, f"LFS object {sha256} for {path!r} was never uploaded to this server")
                    data = blob.read_bytes()
                    tree[path] = {"sha256": sha256, "size": len(data), "oid": git_blob_oid(data)}
                elif kind == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                elif kind == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    victims = [p for p in tree if p.startswith(prefix)]
                    if not victims:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in victims:
                        del tree[p]
                else:  # pragma: no cover - validated by the handler
                    raise HubError(400, f"Unknown operation {kind!r}")
            commit_id = self._write_commit(repo_dir, tree, parents=[head], title=title, message=message)
            refs["branches"][branch] = commit_id
            _write_json(repo_dir / "refs.json", refs)
            return commit_id

    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str | None) -> None:
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if branch in refs["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            if not branch or branch.startswith("/") or branch.endswith("/") or ".." in branch:
                raise HubError(400, f"Invalid branch name {branch!r}")
            refs["branches"][branch] = self.resolve(repo_type, repo_id, starting_point or DEFAULT_BRANCH)
            _write_json(repo_dir / "refs.json", refs)

    def delete_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if branch not in refs["branches"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if branch == DEFAULT_BRANCH:
                raise HubError(403, f"Cannot delete the default branch {branch!r}")
            del refs["branches"][branch]
            _write_json(repo_dir / "refs.json", refs)

    def create_tag(self, repo_type: str, repo_id: str, tag: str, revision: str, message: str | None) -> None:
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if tag in refs["tags"]:
                raise HubError(409, f"Tag already exists: {tag}")
            if not tag or ".." in tag:
                raise HubError(400, f"Invalid tag name {tag!r}")
            target = self.resolve(repo_type, repo_id, revision)
            refs["tags"][tag] = {"target": target, "message": message or ""}
            _write_json(repo_dir / "refs.json", refs)

    def delete_tag(self, repo_type: str, repo_id: str, tag: str) -> None:
        with self.lock:
            repo_dir = self.require_repo(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if tag not in refs["tags"]:
                raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
            del refs["tags"][tag]
            _write_json(repo_dir / "refs.json", refs)


# ====================================================================================== HTTP layer
class _Request:
    def __init__(self, handler: "_HubHandler", method: str):
        self.handler = handler
        self.method = method
        split = urlsplit(handler.path)
        self.raw_segments = [s for s in split.path.split("/") if s != ""]
        self.segments = [unquote(s) for s in self.raw_segments]
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.body = handler._read_body()

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name, "") or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from None

    @property
    def base_url(self) -> str:
        host = self.handler.headers.get("Host") or "%s:%s" % self.handler.server.server_address[:2]
        return f"http://{host}"


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries a Content-Length
    server_version = "hf-rec-loopback-hub/1.0"
    hub: "LoopbackHub"  # set on the subclass made per server

    # --------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.hub.verbose:
            sys.stderr.write("[loopback-hub] %s - %s\n" % (self.address_string(), format % args))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head_only: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head_only and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, err: HubError):
        headers = {"X-Error-Message": err.message.replace("\n", " ")[:1000], **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, json.dumps({"error": err.message}).encode(), headers)

    def _dispatch(self, method: str) -> None:
        try:
            req = _Request(self, method)
        except Exception as e:  # malformed request
            self._send_error(HubError(400, f"Malformed request: {e}"))
            return
        try:
            self.hub._route(req)
        except HubError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - report instead of killing the connection
            import traceback

            traceback.print_exc()
            self._send_error(HubError(500, f"Internal server error: {type(e).__name__}: {e}"))

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")


class LoopbackHub:
    """A Hugging Face Hub look-alike serving ``root_dir`` over HTTP on loopback.

    Example::

        with LoopbackHub(tmp_path) as hub:          # started on a free port
            api = HfApi(endpoint=hub.endpoint, token="fake")
            api.create_repo("hf-rec-tester/demo")
    """

    def __init__(self, root_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.root_dir = Path(root_dir)
        self.host = host
        self.port = port
        self.verbose = verbose
        self.store = HubStore(self.root_dir)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- lifecycle
    def _make_server(self) -> ThreadingHTTPServer:
        handler = type("_BoundHubHandler", (_HubHandler,), {"hub": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        return httpd

    def start(self) -> "LoopbackHub":
        """Start serving in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        self._httpd = self._make_server()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"loopback-hub-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the current thread (used by the CLI)."""
        self._httpd = self._make_server()
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "LoopbackHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __repr__(self) -> str:
        return f"LoopbackHub(endpoint={self.endpoint!r}, root_dir={str(self.root_dir)!r}, running={self.running})"

    # --------------------------------------------------------------- routing
    def _route(self, req: _Request) -> None:
        seg = req.segments
        if seg and seg[0] == "api":
            return self._route_api(req, seg[1:])
        # Downloads: /[datasets|spaces/]{ns}/{name}/resolve/{revision}/{path}
        repo_type = "model"
        rest, raw_rest = seg, req.raw_segments
        if rest and rest[0] in ("datasets", "spaces") and "resolve" in rest[2:]:
            repo_type = _PLURAL_TO_TYPE[rest[0]]
            rest, raw_rest = rest[1:], raw_rest[1:]
        if req.method in ("GET", "HEAD") and len(rest) >= 4 and "resolve" in rest[1:3]:
            idx = rest.index("resolve", 1)
            repo_id = "/".join(rest[:idx])
            return self._resolve_file(req, repo_type, repo_id, raw_rest[idx + 1 :])
        raise HubError(404, f"Not found: {req.method} {req.handler.path}")

    def _route_api(self, req: _Request, seg: list[str]) -> None:
        h, m = req.handler, req.method
        if seg == ["whoami-v2"] and m == "GET":
            return h._send_json(self._whoami(req))
        if seg == ["validate-yaml"] and m == "POST":
            return self._validate_yaml(req)
        if seg == ["repos", "create"] and m == "POST":
            return self._create_repo(req)
        if seg == ["repos", "delete"] and m == "DELETE":
            return self._delete_repo(req)
        if len(seg) >= 2 and seg[0] in _PLURAL_TO_TYPE:
            repo_type = _PLURAL_TO_TYPE[seg[0]]
            if len(seg) >= 3 and seg[2] not in _API_SUBROUTES:
                repo_id, rest, raw_rest = f"{seg[1]}/{seg[2]}", seg[3:], req.raw_segments[4:]
            else:
                repo_id, rest, raw_rest = seg[1], seg[2:], req.raw_segments[3:]
            return self._route_repo_api(req, repo_type, repo_id, rest, raw_rest)
        raise HubError(404, f"Not found: {m} {h.path}")

    def _route_repo_api(self, req: _Request, repo_type: str, repo_id: str, rest: list[str], raw_rest: list[str]):
        h, m, store = req.handler, req.method, self.store
        action = rest[0] if rest else None
        arg = "/".join(rest[1:]) if len(rest) > 1 else None  # revision / branch / tag (may contain '/')
        if action is None and m == "GET":
            return h._send_json(self._repo_info(req, repo_type, repo_id, None))
        if action == "revision" and m == "GET" and arg:
            return h._send_json(self._repo_info(req, repo_type, repo_id, arg))
        if action == "tree" and m == "GET" and len(rest) >= 2:
            return self._tree(req, repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if action == "paths-info" and m == "POST" and arg:
            return self._paths_info(req, repo_type, repo_id, arg)
        if action == "refs" and m == "GET":
            return self._refs(req, repo_type, repo_id)
        if action == "commits" and m == "GET":
            return self._commits(req, repo_type, repo_id, arg)
        if action == "preupload" and m == "POST" and arg:
            return self._preupload(req, repo_type, repo_id, arg)
        if action == "commit" and m == "POST" and arg:
            return self._commit(req, repo_type, repo_id, arg)
        if action == "branch" and arg:
            if m == "POST":
                payload = req.json()
                store.create_branch(repo_type, repo_id, arg, payload.get("startingPoint"))
                return h._send_json({})
            if m == "DELETE":
                store.delete_branch(repo_type, repo_id, arg)
                return h._send_json({})
        if action == "tag" and arg:
            if m == "POST":
                payload = req.json()
                if not payload.get("tag"):
                    raise HubError(400, "Missing 'tag' in payload")
                store.create_tag(repo_type, repo_id, payload["tag"], arg, payload.get("message"))
                return h._send_json({})
            if m == "DELETE":
                store.delete_tag(repo_type, repo_id, arg)
                return h._send_json({})
        if action == "resolve" and m in ("GET", "HEAD") and len(raw_rest) >= 3:
            return self._resolve_file(req, repo_type, repo_id, raw_rest[1:])
        raise HubError(404, f"Not found: {m} {h.path}")

    # --------------------------------------------------------------- endpoints
    def _whoami(self, req: _Request) -> dict:
        auth = req.handler.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise HubError(401, "Invalid credentials in Authorization header")
        return {
            "type": "user",
            "id": "0" * 24,
            "name": FAKE_USER,
            "fullname": "HF Rec Tester",
            "email": f"{FAKE_USER}@localhost",
            "emailVerified": True,
            "canPay": False,
            "isPro": False,
            "periodEnd": None,
            "avatarUrl": "",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}},
        }

    def _validate_yaml(self, req: _Request) -> None:
        payload = req.json()
        content = payload.get("content", "")
        match = _FRONT_MATTER_RE.match(content or "")
        if match and match.group(1):
            try:
                import yaml

                data = yaml.safe_load(match.group(1))
            except ImportError:  # pragma: no cover
                data = {}
            except Exception as e:  # yaml.YAMLError
                return req.handler._send(400, f"Invalid YAML metadata: {e}".encode(), {"Content-Type": "text/plain"})
            if data is not None and not isinstance(data, dict):
                return req.handler._send(400, b"YAML metadata must be a mapping", {"Content-Type": "text/plain"})
        req.handler._send_json({"errors": [], "warnings": []})

    def _repo_url(self, req: _Request, repo_type: str, repo_id: str) -> str:
        return f"{req.base_url}/{_URL_PREFIX[repo_type]}{repo_id}"

    def _repo_type_from_payload(self, payload: dict) -> str:
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        return repo_type

    def _create_repo(self, req: _Request) -> None:
        payload = req.json()
        repo_type = self._repo_type_from_payload(payload)
        name = payload.get("name")
        if not name:
            raise HubError(400, "Missing 'name'")
        repo_id = f"{payload.get('organization') or FAKE_USER}/{name}"
        private = payload.get("private")
        if payload.get("visibility") is not None:
            private = payload["visibility"] != "public"
        url = self._repo_url(req, repo_type, repo_id)
        if not self.store.create_repo(repo_type, repo_id, private=bool(private)):
            return req.handler._send_json(
                {"error": f"You already created this {repo_type} repo", "url": url}, status=409
            )
        req.handler._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, req: _Request) -> None:
        payload = req.json()
        repo_type = self._repo_type_from_payload(payload)
        repo_id = f"{payload.get('organization') or FAKE_USER}/{payload.get('name')}"
        self.store.delete_repo(repo_type, repo_id)
        req.handler._send_json({})

    def _snapshot(self, repo_type: str, repo_id: str, revision: str | None) -> tuple[str, dict]:
        with self.store.lock:
            self.store.require_repo(repo_type, repo_id)
            commit_id = self.store.resolve(repo_type, repo_id, revision)
            return commit_id, self.store.get_commit(repo_type, repo_id, commit_id)

    def _repo_info(self, req: _Request, repo_type: str, repo_id: str, revision: str | None) -> dict:
        commit_id, commit = self._snapshot(repo_type, repo_id, revision)
        meta = self.store.repo_meta(repo_type, repo_id)
        tree = commit["tree"]
        with_blobs = req.flag("blobs")
        siblings = []
        for path in sorted(tree):
            sib: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sib.update(size=tree[path]["size"], blobId=tree[path]["oid"])
            siblings.append(sib)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit_id,
            "lastModified": commit["date"],
            "createdAt": meta.get("createdAt"),
            "private": meta.get("private", False),
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e["size"] for e in tree.values()),
        }
        card_data = parse_card_data(self.store.read_blob(tree["README.md"])) if "README.md" in tree else None
        if card_data is not None:
            info["cardData"] = card_data
            tags = card_data.get("tags") or []
            info["tags"] = [str(t) for t in (tags if isinstance(tags, list) else [tags])]
            if repo_type == "model":
                if card_data.get("library_name"):
                    info["library_name"] = card_data["library_name"]
                    info["tags"].insert(0, str(card_data["library_name"]))
                if card_data.get("pipeline_tag"):
                    info["pipeline_tag"] = card_data["pipeline_tag"]
        if repo_type == "model":
            info["modelId"] = repo_id
            if "config.json" in tree:
                try:
                    config = json.loads(self.store.read_blob(tree["config.json"]))
                    info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
                except ValueError:
                    pass
        if repo_type == "space":
            info.update(sdk=(card_data or {}).get("sdk"), runtime=None)
        return info

    @staticmethod
    def _folder_oid(tree: dict, folder: str) -> str:
        prefix = folder + "/"
        h = hashlib.sha1()
        for p in sorted(x for x in tree if x.startswith(prefix)):
            h.update(f"{p}\0{tree[p]['oid']}\n".encode())
        return h.hexdigest()

    def _entries(
        self, req: _Request, repo_type: str, repo_id: str, commit: dict, paths: list[str], with_commit: bool
    ) -> list[dict]:
        tree = commit["tree"]
        folders = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
        history = self.store.history(repo_type, repo_id, commit["id"]) if with_commit else None
        out = []
        for path in paths:
            if path in tree:
                entry: dict[str, Any] = {"type": "file", "oid": tree[path]["oid"], "size": tree[path]["size"], "path": path}
                if history is not None:
                    entry["lastCommit"] = self._last_commit(history, lambda t, p=path: t.get(p, {}).get("oid"))
            elif path in folders:
                entry = {"type": "directory", "oid": self._folder_oid(tree, path), "size": 0, "path": path}
                if history is not None:
                    entry["lastCommit"] = self._last_commit(
                        history, lambda t, p=path: self._folder_oid(t, p) if any(x.startswith(p + "/") for x in t) else None
                    )
            else:
                continue
            out.append(entry)
        return out

    @staticmethod
    def _last_commit(history: list[dict], key) -> dict:
        """The most recent commit (newest first ``history``) that changed the value of ``key(tree)``."""
        chosen = history[0]
        current = key(history[0]["tree"])
        for older in history[1:]:
            if key(older["tree"]) != current:
                break
            chosen = older
        return {"id": chosen["id"], "title": chosen["title"], "date": chosen["date"]}

    def _tree(self, req: _Request, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        _, commit = self._snapshot(repo_type, repo_id, revision)
        tree = commit["tree"]
        path = path.strip("/")
        prefix = path + "/" if path else ""
        recursive = req.flag("recursive")
        if path and not any(p.startswith(prefix) for p in tree):
            if path in tree:
                raise HubError(400, f"{path!r} is a file, not a directory")
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit["id"]})
        children: set[str] = set()
        for p in tree:
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            if recursive:
                children.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            else:
                children.add(prefix + parts[0])
        entries = self._entries(req, repo_type, repo_id, commit, sorted(children), with_commit=req.flag("expand"))
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))  # folders first, then files
        req.handler._send_json(entries)

    def _paths_info(self, req: _Request, repo_type: str, repo_id: str, revision: str) -> None:
        _, commit = self._snapshot(repo_type, repo_id, revision)
        ctype = req.handler.headers.get("Content-Type", "")
        if "json" in ctype:
            payload = req.json()
            paths = payload.get("paths") or []
            expand = bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", ["false"])[0]).lower() in ("1", "true")
        paths = [p.strip("/") for p in (paths if isinstance(paths, list) else [paths])]
        req.handler._send_json(self._entries(req, repo_type, repo_id, commit, paths, with_commit=expand))

    def _refs(self, req: _Request, repo_type: str, repo_id: str) -> None:
        refs = self.store.refs(repo_type, repo_id)
        req.handler._send_json(
            {
                "branches": [
                    {"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(refs["branches"].items())
                ],
                "tags": [
                    {"name": t, "ref": f"refs/tags/{t}", "targetCommit": v["target"]} for t, v in sorted(refs["tags"].items())
                ],
                "converts": [],
                "pullRequests": [],
            }
        )

    def _commits(self, req: _Request, repo_type: str, repo_id: str, revision: str | None) -> None:
        commit_id, _ = self._snapshot(repo_type, repo_id, revision)
        formatted = "formatted" in (req.query.get("expand[]") or [])
        out = []
        for c in self.store.history(repo_type, repo_id, commit_id):
            item: dict[str, Any] = {
                "id": c["id"],
                "title": c["title"],
                "message": c["message"],
                "date": c["date"],
                "authors": [{"user": c["author"], "avatar": ""}],
            }
            if formatted:
                item["formatted"] = {"title": c["title"], "message": c["message"]}
            out.append(item)
        req.handler._send_json(out)

    def _preupload(self, req: _Request, repo_type: str, repo_id: str, revision: str) -> None:
        commit_id, commit = self._snapshot(repo_type, repo_id, revision)
        files = req.json().get("files") or []
        tree = commit["tree"]
        req.handler._send_json(
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": tree[f["path"]]["oid"] if f["path"] in tree else None,
                    }
                    for f in files
                ],
                "commitOid": commit_id,
            }
        )

    def _commit(self, req: _Request, repo_type: str, repo_id: str, revision: str) -> None:
        if req.flag("create_pr"):
            raise HubError(400, "create_pr is not supported by the loopback Hub")
        self.store.require_repo(repo_type, repo_id)
        header: dict = {}
        operations: list[dict] = []
        for line_no, line in enumerate(req.body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError) as e:
                raise HubError(400, f"Invalid NDJSON line {line_no}: {e}") from None
            if key == "header":
                header = value
            elif key == "file":
                encoding = value.get("encoding", "utf-8")
                content = value.get("content", "")
                data = base64.b64decode(content) if encoding == "base64" else content.encode("utf-8")
                operations.append({"kind": "file", "path": self._check_path(value["path"]), "data": data})
            elif key in ("deletedFile", "deletedFolder"):
                operations.append({"kind": key, "path": self._check_path(value["path"])})
            elif key == "lfsFile":
                operations.append({"kind": "lfsFile", "path": self._check_path(value["path"]), "oid": value["oid"]})
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        title = header.get("summary") or "Update files"
        commit_id = self.store.commit(
            repo_type,
            repo_id,
            revision,
            operations,
            title=title,
            message=header.get("description") or "",
            parent_commit=header.get("parentCommit"),
        )
        req.handler._send_json(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{self._repo_url(req, repo_type, repo_id)}/commit/{commit_id}",
                "pullRequestUrl": None,
                "hookOutput": "",
            }
        )

    @staticmethod
    def _check_path(path: str) -> str:
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
            raise HubError(400, f"Invalid path in repo: {path!r}")
        return path

    def _resolve_file(self, req: _Request, repo_type: str, repo_id: str, raw_rest: list[str]) -> None:
        """``raw_rest`` = still-encoded ``[revision, *path]``; an unencoded revision with '/' is tried greedily."""
        with self.store.lock:
            self.store.require_repo(repo_type, repo_id)
            commit_id = None
            for k in range(1, len(raw_rest)):
                revision = "/".join(unquote(s) for s in raw_rest[:k])
                try:
                    commit_id = self.store.resolve(repo_type, repo_id, revision)
                except HubError:
                    continue
                path = "/".join(unquote(s) for s in raw_rest[k:])
                break
            if commit_id is None:
                raise HubError(404, f"Invalid rev id: {unquote(raw_rest[0])}", "RevisionNotFound")
            commit = self.store.get_commit(repo_type, repo_id, commit_id)
        entry = commit["tree"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit_id})
        data = self.store.read_blob(entry)
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json" or path.endswith((".md", ".txt", ".json")):
            ctype = (ctype if ctype != "application/octet-stream" else "text/plain") + "; charset=utf-8"
        headers = {
            "Content-Type": ctype,
            "ETag": f'"{entry["oid"]}"',
            "X-Repo-Commit": commit_id,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{os.path.basename(path)}"',
            "Cache-Control": "private, max-age=0, must-revalidate",
        }
        status, body = 200, data
        range_header = req.handler.headers.get("Range")
        if range_header and req.method == "GET":
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if match and (match.group(1) or match.group(2)):
                size = len(data)
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                else:  # suffix range: last N bytes
                    start, end = max(size - int(match.group(2)), 0), size - 1
                if start >= size or start > end:
                    raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(len(body))
        req.handler._send(status, body, headers)
