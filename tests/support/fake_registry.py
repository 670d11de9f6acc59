"""A registry's HTTP API as far as the platform reads it, answering from a dict, on a real socket.

For unit tests of the mirror's admin page and mirror_gc: the catalog (two
at a time, to make the client follow its Link header), tags, manifests by tag
or digest, and deletion by digest, which it records.
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class FakeRegistry:
    def __init__(self) -> None:
        self.manifests: dict[str, bytes] = {}  # by digest
        self.tags: dict[str, dict[str, str]] = {}  # repository -> tag -> digest
        self.deleted: list[str] = []  # "repository@digest"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_image(self, name: str, *layers: int, config: int = 100) -> str:
        """Tag an image of these layer sizes (a layer's digest is its size); its manifest's digest."""
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"digest": f"sha256:config{config}-{name}", "size": config},
            "layers": [{"digest": f"sha256:layer{size}", "size": size} for size in layers],
        }
        return self._put(name, manifest)

    def add_list(self, name: str, *platforms: str, missing: int = 0) -> str:
        """Tag a list of the images (by manifest digest) given, plus `missing` the registry does not hold."""
        children = [*platforms, *(f"sha256:missing{index}" for index in range(missing))]
        manifest = {"schemaVersion": 2, "mediaType": LIST, "manifests": [{"digest": d, "size": 1} for d in children]}
        return self._put(name, manifest)

    def _put(self, name: str, manifest: dict) -> str:
        repository, tag = name.rsplit(":", 1)
        data = json.dumps(manifest).encode()
        digest = digest_of(data)
        self.manifests[digest] = data
        self.tags.setdefault(repository, {})[tag] = digest
        return digest

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/v2/_catalog":
                    return self.catalog(query)
                repository, kind, ref = self.parse(path)
                if kind == "tags" and repository in registry.tags:
                    tags = list(registry.tags[repository]) or None
                    return self.answer(200, json.dumps({"name": repository, "tags": tags}).encode())
                if kind == "manifests":
                    digest = registry.tags.get(repository, {}).get(ref, ref)
                    if digest in registry.manifests:
                        data = registry.manifests[digest]
                        kind = json.loads(data)["mediaType"]
                        return self.answer(200, data, {"Content-Type": kind, "Docker-Content-Digest": digest})
                self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

            def catalog(self, query: str) -> None:
                names = sorted(registry.tags)
                last = parse_qs(query).get("last")
                start = names.index(last[0]) + 1 if last else 0
                page = names[start : start + 2]
                headers = {}
                if start + 2 < len(names):
                    headers["Link"] = f'</v2/_catalog?last={page[-1]}&n=2>; rel="next"'
                self.answer(200, json.dumps({"repositories": page}).encode(), headers)

            def do_DELETE(self) -> None:
                repository, kind, digest = self.parse(self.path)
                tags = registry.tags.get(repository, {})
                if kind != "manifests" or digest not in tags.values():
                    return self.answer(404)
                registry.deleted.append(f"{repository}@{digest}")
                registry.tags[repository] = {tag: d for tag, d in tags.items() if d != digest}
                self.answer(202)

            @staticmethod
            def parse(path: str) -> tuple[str, str, str]:
                # /v2/<repository>/tags/list, /v2/<repository>/manifests/<reference>
                inner = path.removeprefix("/v2/")
                for kind in ("tags", "manifests"):
                    repository, found, ref = inner.rpartition(f"/{kind}/")
                    if found:
                        return repository, kind, ref
                return "", "", ""

        return Handler
