"""A local stand-in for Kaggle's API, for tests: the real ``kaggle`` client talks to it on 127.0.0.1.

Kaggle is the one external service the tests cannot reach. This server speaks the part of the
protocol the workflow uses (as the kaggle 2.2.4 client speaks it): every API call is
``POST /api/v1/competitions.CompetitionApiService/<Method>`` with a JSON body, errors are
``{"code": N, "message": ...}``, a download answers 302 to a file URL. The client is pointed at it
with ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` and an HTTP proxy, see :meth:`KaggleStub.client_env`.

Failures are scripted per method: ``stub.fail("DownloadDataFiles", 429, "Too many requests", times=2)``.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

SERVICE = "/api/v1/competitions.CompetitionApiService/"
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."


@dataclass
class KaggleStub:
    username: str = "wavefold-test"
    key: str = "0123456789abcdef0123456789abcdef"
    files: dict[str, Path] = field(default_factory=dict)  # competition -> its download zip
    failures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    truncate_downloads: int = 0  # how many of the next file downloads break off halfway
    calls: list[str] = field(default_factory=list)
    # Submissions: the uploaded files, scored by ``scorer(bytes) -> (public, private)``.
    scorer: object = None
    daily_limit: int = 5
    failing_uploads: int = 0  # how many of the next upload PUTs the storage refuses (500)
    pending_polls: int = 1  # how many list calls see a new submission still PENDING
    submissions: list[dict] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)

    def fail(self, method: str, code: int, message: str, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([(code, message)] * times)

    def start(self) -> "KaggleStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{stub.username}:{stub.key}".encode()).decode()
                return self.headers.get("Authorization", "") == f"Basic {expected}"

            def do_POST(self):
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                method = path.removeprefix(SERVICE)
                stub.calls.append(method)
                if not path.startswith(SERVICE):
                    return self._json(404, {"code": 404, "message": f"no such endpoint {path}"})
                if not self._authorised():
                    return self._json(401, {"code": 401, "message": "Unauthenticated"})
                pending = stub.failures.get(method)
                if pending:
                    code, message = pending.pop(0)
                    return self._json(code, {"code": code, "message": message})
                handler = getattr(self, f"api_{method}", None)
                if handler is None:
                    return self._json(404, {"code": 404, "message": f"method {method} not implemented by the stub"})
                return handler(body)

            def _competition_zip(self, body) -> Path | None:
                zip_path = stub.files.get(body.get("competitionName", ""))
                if zip_path is None:
                    self._json(404, {"code": 404, "message": "Competition not found"})
                return zip_path

            def api_ListDataFiles(self, body):
                zip_path = self._competition_zip(body)
                if zip_path is not None:
                    files = [{"ref": zip_path.name, "name": zip_path.name, "totalBytes": zip_path.stat().st_size}]
                    self._json(200, {"files": files, "nextPageToken": ""})

            def api_DownloadDataFiles(self, body):
                zip_path = self._competition_zip(body)
                if zip_path is not None:
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost/files/{body['competitionName']}/{zip_path.name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def api_GetSubmissionLimits(self, body):
                today = len(stub.submissions)
                self._json(200, {"numToday": today, "numTotal": today,
                                 "numAllowedNow": max(0, stub.daily_limit - today)})  # fmt: skip

            def api_StartSubmissionUpload(self, body):
                token = f"upload-{len(stub.uploads) + 1}"
                stub.uploads[token] = b""
                self._json(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})

            def api_CreateSubmission(self, body):
                data = stub.uploads.get(body.get("blobFileTokens", ""))
                if not data:
                    return self._json(400, {"code": 400, "message": "The file was not uploaded"})
                if len(stub.submissions) >= stub.daily_limit:
                    return self._json(429, {"code": 429, "message": "Your team has used its daily Submission allowance"})
                public, private = stub.scorer(data) if stub.scorer else ("", "")
                ref = 50000 + len(stub.submissions)
                stub.submissions.insert(0, {"ref": ref, "description": body.get("submissionDescription", ""),
                                            "fileName": "submission.csv", "status": "PENDING",
                                            "polls": stub.pending_polls, "publicScore": str(public),
                                            "privateScore": str(private), "totalBytes": len(data)})  # fmt: skip
                self._json(200, {"message": f"Successfully submitted to {body['competitionName']}", "ref": ref})

            def api_ListSubmissions(self, body):
                listed = []
                for entry in stub.submissions:
                    if entry["status"] == "PENDING" and entry["polls"] <= 0:
                        entry["status"] = "COMPLETE"
                    entry["polls"] -= 1
                    shown = {k: v for k, v in entry.items() if k != "polls"}
                    if shown["status"] != "COMPLETE":
                        shown["publicScore"] = shown["privateScore"] = ""
                    listed.append(shown)
                self._json(200, {"submissions": listed, "nextPageToken": ""})

            def do_PUT(self):
                token = urlsplit(self.path).path.rsplit("/", 1)[-1]
                stub.calls.append(f"PUT {token}")
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if stub.failing_uploads > 0 or token not in stub.uploads:
                    stub.failing_uploads = max(0, stub.failing_uploads - 1)
                    return self._json(500, {"code": 500, "message": "storage unavailable"})
                stub.uploads[token] = data
                self._json(200, {})

            def do_GET(self):
                parts = urlsplit(self.path).path.split("/")
                stub.calls.append("GET " + "/".join(parts[-2:]))
                zip_path = stub.files.get(parts[-2]) if len(parts) >= 3 and parts[1] == "files" else None
                if zip_path is None:
                    return self._json(404, {"code": 404, "message": "no such file"})
                data = zip_path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # A dropped connection: the client gets fewer bytes than Content-Length announced.
                if stub.truncate_downloads > 0:
                    stub.truncate_downloads -= 1
                    data = data[: len(data) // 2]
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client_env(self, base_env: dict, home: Path) -> dict:
        """The environment under which the unmodified client talks to this server, with our test key."""
        env = {k: v for k, v in base_env.items() if not k.upper().startswith("KAGGLE_") and k.lower() not in ("no_proxy",)}
        proxy = f"http://127.0.0.1:{self.port}"
        config_dir = home / ".kaggle"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "kaggle.json").write_text(json.dumps({"username": self.username, "key": self.key}))
        (config_dir / "kaggle.json").chmod(0o600)
        env.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(config_dir), KAGGLE_API_ENVIRONMENT="LOCALHOST",
                   http_proxy=proxy, HTTP_PROXY=proxy)  # fmt: skip
        return env
