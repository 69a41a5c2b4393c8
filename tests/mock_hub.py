"""A stand-in for the Hugging Face Hub on 127.0.0.1, answering the requests `huggingface_hub`'s
`create_repo` and `upload_folder` send (with `HF_HUB_DISABLE_XET=1`, which keeps uploads on the
Git LFS protocol instead of Xet storage, which this does not mock):

    POST /api/repos/create                                 the repository (name, organization, private)
    POST /api/validate-yaml                                a README's front matter; `refuse` makes it a 400
    POST /api/datasets/<repo>/preupload/<rev>              which files go through LFS (binary ones)
    POST /datasets/<repo>.git/info/lfs/objects/batch       where to PUT each LFS object
    PUT  /lfs/<oid>                                        an object's bytes, checked against its sha256
    POST /api/datasets/<repo>/commit/<rev>                 the commit: header, inline files, LFS pointers

Every request is kept in `requests` (method, path, parsed JSON or NDJSON body); LFS objects in
`objects` by sha256; each commit's files in `commits`, path -> bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MockHub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[str, bytes] = {}
        self.commits: list[dict[str, bytes]] = []
        self.refuse: str | None = None  # a validate-yaml error message to answer with
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
                body = self._body()
                oid = self.path.rsplit("/", 1)[-1]
                hub.requests.append({"method": "PUT", "path": self.path, "bytes": len(body)})
                if hashlib.sha256(body).hexdigest() != oid:
                    return self._send(400, {"error": "sha256 mismatch"})
                hub.objects[oid] = body
                self._send(200, {})

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append({"method": "GET", "path": self.path})
                self._send(404, {"error": "not mocked"})

            def do_POST(self) -> None:  # noqa: N802
                raw = self._body()
                path = self.path.split("?", 1)[0]
                base = f"http://127.0.0.1:{hub.port}"
                if path.endswith("/commit/main"):
                    body: Any = [json.loads(line) for line in raw.splitlines() if line.strip()]
                else:
                    body = json.loads(raw) if raw else None
                hub.requests.append({"method": "POST", "path": path, "body": body,
                                     "auth": self.headers.get("Authorization")})
                if path == "/api/repos/create":
                    name = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
                    return self._send(200, {"url": f"{base}/datasets/{name}", "name": name})
                if path == "/api/validate-yaml":
                    if hub.refuse:
                        return self._send(400, {"errors": [{"message": hub.refuse}], "warnings": []})
                    return self._send(200, {"errors": [], "warnings": []})
                if re.fullmatch(r"/api/datasets/.+/preupload/main", path):
                    files = [{"path": f["path"], "shouldIgnore": False,
                              "uploadMode": "lfs" if _binary(f["path"], base64.b64decode(f["sample"])) else "regular"}
                             for f in body["files"]]
                    return self._send(200, {"files": files, "commitOid": "0" * 40})
                if re.fullmatch(r"/datasets/.+\.git/info/lfs/objects/batch", path):
                    objects = [{"oid": o["oid"], "size": o["size"],
                                "actions": {"upload": {"href": f"{base}/lfs/{o['oid']}"}}} for o in body["objects"]]
                    return self._send(200, {"transfer": "basic", "objects": objects}, "application/vnd.git-lfs+json")
                match = re.fullmatch(r"/api/datasets/(.+)/commit/main", path)
                if match:
                    files: dict[str, bytes] = {}
                    for line in body:
                        value = line["value"]
                        if line["key"] == "file":
                            files[value["path"]] = base64.b64decode(value["content"])
                        elif line["key"] == "lfsFile":
                            files[value["path"]] = hub.objects[value["oid"]]
                    hub.commits.append(files)
                    url = f"{base}/datasets/{match.group(1)}/commit/{'1' * 40}"
                    return self._send(200, {"commitUrl": url, "commitOid": "1" * 40, "success": True})
                self._send(404, {"error": "not mocked"})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def posted(self, pattern: str) -> list[dict[str, Any]]:
        """The POST requests whose path matches `pattern` (a regular expression), in order."""
        return [r for r in self.requests if r["method"] == "POST" and re.fullmatch(pattern, r["path"])]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _binary(path: str, sample: bytes) -> bool:
    return b"\0" in sample or path.endswith((".parquet", ".png", ".jpg"))
