"""A local stand-in for Kaggle's API, for tests: the real ``kaggle`` client talks to it on 127.0.0.1.

Kaggle is the one external service the tests cannot reach. This server speaks the part of the
protocol the workflow uses (as the kaggle 2.2.4 client speaks it): every API call is
``POST /api/v1/<service>/<Method>`` with a JSON body (competitions, and for a code competition's
notebook datasets, blobs and kernels), errors are ``{"code": N, "message": ...}``, a download answers
302 to a file URL, an upload is a PUT to the URL the start call gave. The client is pointed at it
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
API = "/api/v1/"
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
    # A code competition's notebook: Datasets (id -> versions' files), notebooks (id -> versions).
    datasets: dict[str, dict] = field(default_factory=dict)
    processing_polls: int = 1  # status calls that see a new Dataset version still being processed
    kernels: dict[str, dict] = field(default_factory=dict)
    running_polls: int = 2  # status calls that see a pushed notebook QUEUED, then RUNNING
    kernel_outcome: str = "COMPLETE"  # how the next pushed notebook's run ends: COMPLETE | ERROR
    kernel_log: str = "clip 1/1\n"  # its log (kernels output)
    code_scorer: object = None  # (the notebook's version entry) -> (public, private)
    dataset_requests: list[dict] = field(default_factory=list)
    blob_name: dict[str, str] = field(default_factory=dict)  # upload token -> the file's name

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
                method = path.rsplit("/", 1)[-1]
                stub.calls.append(method)
                if not path.startswith(API) or path.count("/") != 4:
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

            # --------------------------------------------------------------- a notebook's submission
            def api_StartBlobUpload(self, body):
                token = f"blob-{len(stub.uploads) + 1}"
                stub.uploads[token], stub.blob_name[token] = b"", body.get("name", "")
                self._json(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})

            def _new_version(self, dataset_id, files):
                entry = stub.datasets.setdefault(dataset_id, {"versions": []})
                entry["versions"].append({name: stub.uploads.get(f.get("token", ""), b"") for name, f in
                                          zip(stub.blob_names(files), files)})  # fmt: skip
                entry["polls"] = stub.processing_polls
                self._json(200, {"ref": dataset_id, "url": f"https://www.kaggle.com/datasets/{dataset_id}", "status": "ok"})

            def api_CreateDataset(self, body):
                dataset_id = f"{body['ownerSlug']}/{body['slug']}"
                if dataset_id in stub.datasets:
                    return self._json(200, {"status": "error", "error": "The dataset already exists"})
                stub.dataset_requests.append(body)
                self._new_version(dataset_id, body.get("files", []))

            def api_CreateDatasetVersion(self, body):
                dataset_id = f"{body['ownerSlug']}/{body['datasetSlug']}"
                if dataset_id not in stub.datasets:
                    return self._json(404, {"code": 404, "message": "Dataset not found"})
                stub.dataset_requests.append(body)
                self._new_version(dataset_id, body.get("body", {}).get("files", []))

            def api_GetDatasetStatus(self, body):
                entry = stub.datasets.get(f"{body['ownerSlug']}/{body['datasetSlug']}")
                if entry is None:
                    return self._json(404, {"code": 404, "message": "Dataset not found"})
                entry["polls"] -= 1
                self._json(200, {"status": "BLOBS_RECEIVED" if entry["polls"] >= 0 else "READY"})

            def api_SaveKernel(self, body):
                entry = stub.kernels.setdefault(body["slug"], {"versions": []})
                entry["versions"].append({**body, "outcome": stub.kernel_outcome, "log": stub.kernel_log})
                entry["polls"] = stub.running_polls
                self._json(200, {"ref": body["slug"], "url": f"https://www.kaggle.com/code/{body['slug']}",
                                 "versionNumber": len(entry["versions"]), "kernelId": 7})  # fmt: skip

            def _kernel(self, body):
                entry = stub.kernels.get(f"{body['userName']}/{body['kernelSlug']}")
                if entry is None:
                    self._json(404, {"code": 404, "message": "Notebook not found"})
                return entry

            def api_GetKernelSessionStatus(self, body):
                entry = self._kernel(body)
                if entry is not None:
                    entry["polls"] -= 1
                    last = entry["versions"][-1]
                    if entry["polls"] >= 0:
                        status = "QUEUED" if entry["polls"] >= stub.running_polls - 1 else "RUNNING"
                        return self._json(200, {"status": status})
                    failure = {"failureMessage": "Your notebook hit an error"} if last["outcome"] == "ERROR" else {}
                    self._json(200, {"status": last["outcome"], **failure})

            def api_ListKernelSessionOutput(self, body):
                entry = self._kernel(body)
                if entry is not None:
                    self._json(200, {"files": [], "log": entry["versions"][-1]["log"], "nextPageToken": ""})

            def api_CreateCodeSubmission(self, body):
                kernel = f"{body['kernelOwner']}/{body['kernelSlug']}"
                entry = stub.kernels.get(kernel)
                version = body.get("kernelVersion")
                if entry is None or not version or version > len(entry["versions"]):
                    return self._json(404, {"code": 404, "message": f"no notebook {kernel} version {version}"})
                if len(stub.submissions) >= stub.daily_limit:
                    return self._json(429, {"code": 429, "message": "Your team has used its daily Submission allowance"})
                public, private = stub.code_scorer(entry["versions"][version - 1]) if stub.code_scorer else ("", "")
                ref = 60000 + len(stub.submissions)
                stub.submissions.insert(0, {"ref": ref, "description": body.get("submissionDescription", ""),
                                            "fileName": body.get("fileName", ""), "status": "PENDING",
                                            "polls": stub.pending_polls, "publicScore": str(public),
                                            "privateScore": str(private), "totalBytes": 0})  # fmt: skip
                self._json(200, {"message": f"Successfully submitted to {body['competitionName']}", "ref": ref})

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

    def blob_names(self, files: list[dict]) -> list[str]:
        """The uploaded files' names, by their tokens (StartBlobUpload's name)."""
        return [self.blob_name.get(f.get("token", ""), "") for f in files]

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
