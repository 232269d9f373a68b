"""A local stand-in of the OpenAI Batch API (files and batches) for tests.

It runs each request line of a batch against an upstream OpenAI-compatible
server (the fault-injecting :class:`tests._fault_server.FaultServer`) over real
HTTP, so a batch answers exactly what the same requests answer one by one.
Other ``POST`` paths (completions, tokenize) are forwarded to the upstream
server unchanged.

Routes, as openai-python calls them: ``POST /v1/files`` (multipart, purpose
``batch``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.

A batch advances one state per ``GET``: ``validating`` -> ``in_progress``
(for ``in_progress_polls`` polls) -> ``finalizing`` -> ``completed``, then its
output file (status 200 lines) and error file (other lines) exist. Behaviour
set on the server:

``expire_after``
    Run only this many lines, then end ``expired``; the other lines go to the
    error file with code ``batch_expired`` (as the real API does).
``fail_validation``
    End ``failed`` at validation, with ``errors.data``, and no files.
A line whose prompt holds ``FAULT=500`` (see the fault server) gets that status
and goes to the error file: a partially failed batch.
"""

from __future__ import annotations

import email
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

from sklearn_llmconf.testing._fault_server import LoopbackServer

_ids = itertools.count(1)


def _now() -> int:
    return int(time.time())


def _parse_multipart(content_type: str, body: bytes) -> dict:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = {}
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        parts[name] = (part.get_filename(), part.get_payload(decode=True))
    return parts


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each response
    # waits ~40 ms for the client's delayed ACK (as in the fault server).
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        srv, parts = self.server, self.path.strip("/").split("/")
        with srv.lock:
            srv.calls.append(("GET", self.path))
            if parts[:2] == ["v1", "files"] and len(parts) >= 3:
                file = srv.files.get(parts[2])
                if file is None:
                    return self._send(404, {"error": {"message": "no such file"}})
                if len(parts) == 4 and parts[3] == "content":
                    return self._send(200, file["content"], "application/octet-stream")
                return self._send(200, file["object"])
            if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                batch = srv.batches.get(parts[2])
                if batch is None:
                    return self._send(404, {"error": {"message": "no such batch"}})
                srv.advance(batch)
                return self._send(200, batch["object"])
        return self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        srv, parts = self.server, self.path.strip("/").split("/")
        body = self._read()
        with srv.lock:
            srv.calls.append(("POST", self.path))
        if parts == ["v1", "files"]:
            form = _parse_multipart(self.headers["Content-Type"], body)
            filename, content = form["file"]
            purpose = form["purpose"][1].decode()
            return self._send(200, srv.add_file(content, filename, purpose))
        if parts == ["v1", "batches"]:
            return self._send(200, srv.create_batch(json.loads(body)))
        if parts[:2] == ["v1", "batches"] and parts[3:] == ["cancel"]:
            with srv.lock:
                batch = srv.batches[parts[2]]
                batch["object"]["status"] = "cancelled"
                batch["object"]["cancelled_at"] = _now()
                return self._send(200, batch["object"])
        status, data = srv.forward(self.path, body)
        return self._send(status, data)


class BatchServer(LoopbackServer):
    """The server object; see the module docstring."""

    daemon_threads = True

    def serve_forever(self, poll_interval=0.05):
        # stop() waits for the serving loop's next poll: 0.5 s by default,
        # paid by every test (the server is per test).
        super().serve_forever(poll_interval)

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream  # base URL of the upstream server, with /v1
        self.lock = threading.RLock()
        self.files: dict = {}
        self.batches: dict = {}
        self.calls: list = []
        self.in_progress_polls = 1
        self.expire_after = None
        self.fail_validation = False
        self._thread = None

    # -- API objects -------------------------------------------------------
    def add_file(self, content: bytes, filename: str, purpose: str) -> dict:
        with self.lock:
            file_id = f"file-{next(_ids)}"
            obj = {"id": file_id, "object": "file", "bytes": len(content),
                   "created_at": _now(), "filename": filename, "purpose": purpose,
                   "status": "processed"}
            self.files[file_id] = {"object": obj, "content": content}
            return obj

    def create_batch(self, request: dict) -> dict:
        with self.lock:
            batch_id = f"batch_{next(_ids)}"
            obj = {
                "id": batch_id, "object": "batch", "endpoint": request["endpoint"],
                "input_file_id": request["input_file_id"],
                "completion_window": request["completion_window"],
                "status": "validating", "created_at": _now(),
                "metadata": request.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            self.batches[batch_id] = {"object": obj, "polls": 0}
            return obj

    def forward(self, path: str, body: bytes):
        root = self.upstream.rsplit("/v1", 1)[0]
        request = urllib.request.Request(
            root + path, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    # -- the batch's life ---------------------------------------------------
    def advance(self, batch: dict) -> None:
        obj = batch["object"]
        status = obj["status"]
        if status == "validating":
            if self.fail_validation:
                obj.update(status="failed", failed_at=_now(), errors={
                    "object": "list",
                    "data": [{"code": "invalid_request", "line": 1,
                              "message": "stand-in validation failure",
                              "param": None}]})
                return
            obj.update(status="in_progress", in_progress_at=_now())
        elif status == "in_progress":
            batch["polls"] += 1
            if batch["polls"] >= self.in_progress_polls:
                self._run(obj)
        elif status == "finalizing":
            obj.update(status="completed", completed_at=_now())

    def _run(self, obj: dict) -> None:
        lines = self.files[obj["input_file_id"]]["content"].decode().splitlines()
        requests = [json.loads(line) for line in lines if line.strip()]
        outputs, errors = [], []
        for n, req in enumerate(requests):
            record = {"id": f"batch_req_{next(_ids)}", "custom_id": req["custom_id"]}
            if self.expire_after is not None and n >= self.expire_after:
                record.update(response=None, error={
                    "code": "batch_expired",
                    "message": "This request could not be executed before the "
                               "completion window expired."})
                errors.append(record)
                continue
            path = "/" + req["url"].lstrip("/")
            status, data = self.forward(path, json.dumps(req["body"]).encode())
            try:
                body = json.loads(data)
            except ValueError:
                body = {"error": {"message": data.decode(errors="replace")}}
            record.update(response={"status_code": status,
                                    "request_id": f"req_{next(_ids)}",
                                    "body": body}, error=None)
            (outputs if status == 200 else errors).append(record)
        for records, key, name in ((outputs, "output_file_id", "output"),
                                   (errors, "error_file_id", "errors")):
            if records:
                content = "".join(json.dumps(r) + "\n" for r in records).encode()
                obj[key] = self.add_file(content, f"{obj['id']}_{name}.jsonl",
                                         "batch_output")["id"]
        obj["request_counts"] = {"total": len(requests), "completed": len(outputs),
                                 "failed": len(errors)}
        if self.expire_after is not None and self.expire_after < len(requests):
            obj.update(status="expired", expired_at=_now())
        else:
            obj.update(status="finalizing", finalizing_at=_now())
