"""One OpenAI Batch API job: JSONL in, submit, poll, results out, resumable.

Independent of how request bodies are built or answers read (that is the
backend's job): requests are ``(custom_id, body)`` pairs for one endpoint, and
results are per-``custom_id`` records.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BatchOutcome", "BatchStateFile", "run_batch", "to_jsonl"]

TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})


def to_jsonl(requests, url: str) -> bytes:
    """The Batch API's input file: one ``{"custom_id", "method", "url", "body"}``
    line per request (also what vLLM's offline batch runner reads)."""
    return "".join(
        json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body},
                   sort_keys=True, ensure_ascii=False) + "\n"
        for cid, body in requests
    ).encode("utf-8")


class BatchStateFile:
    """Job ids of submitted, not yet collected batches, in a small JSON file.

    Keyed by the sha256 of the job's input file (and server and model), so
    submitting the same requests again finds the job already running instead of
    paying for it twice. Written atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or path-like or None
        None keeps the state in memory only (not resumable across processes).
    """

    def __init__(self, path):
        self.path = None if path is None else Path(path)
        self._memory: dict = {}

    def _read(self) -> dict:
        if self.path is None:
            return dict(self._memory)
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _write(self, state: dict) -> None:
        if self.path is None:
            self._memory = state
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, key: str):
        return self._read().get(key)

    def put(self, key: str, batch_id: str) -> None:
        state = self._read()
        state[key] = batch_id
        self._write(state)

    def pop(self, key: str) -> None:
        state = self._read()
        if state.pop(key, None) is not None:
            self._write(state)


@dataclass
class BatchOutcome:
    """What a finished batch gave.

    Attributes
    ----------
    batch_id, status : str
    bodies : dict of str to dict
        Response body per ``custom_id`` whose request succeeded (HTTP 200).
    errors : dict of str to str
        Short message per ``custom_id`` that failed, expired or never ran.
    resumed : bool
        Whether the job was found in the state file rather than submitted.
    request_counts : dict
    n_ran : int
        Requests that reached the model (an answer or an HTTP error).
    """

    batch_id: str
    status: str
    bodies: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    resumed: bool = False
    request_counts: dict = field(default_factory=dict)
    n_ran: int = 0


def _read_records(client, file_id):
    if not file_id:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _record_error(record) -> str:
    error = record.get("error") or {}
    if error:
        return f"batch request failed: {error.get('code')}: {error.get('message')}"
    response = record.get("response") or {}
    body = response.get("body") or {}
    message = (body.get("error") or {}).get("message", "")
    return f"batch request failed: HTTP {response.get('status_code')}: {message}"


def run_batch(client, requests, *, url, completion_window="24h", state=None,
              job_salt="", poll_interval=10.0, max_wait=None, metadata=None,
              sleep=time.sleep) -> BatchOutcome:
    """Submit (or resume) one batch job and wait for its results.

    Parameters
    ----------
    client : openai.OpenAI
    requests : list of (str, dict)
        ``(custom_id, body)`` pairs; custom ids must be unique.
    url : str
        The endpoint, e.g. ``"/v1/chat/completions"``.
    completion_window : str, default="24h"
    state : BatchStateFile or None
    job_salt : str
        Mixed into the job key (server, model), so that equal files sent to
        different servers are different jobs.
    poll_interval : float
        Seconds between status polls.
    max_wait : float or None
        Give up waiting after this many seconds with ``TimeoutError``; the job
        keeps running and is resumed by the next call with the same requests.
    metadata : dict or None
    sleep : callable
        Injected for tests.

    Returns
    -------
    outcome : BatchOutcome
    """
    content = to_jsonl(requests, url)
    key = hashlib.sha256(job_salt.encode() + b"\x00" + content).hexdigest()
    state = state if state is not None else BatchStateFile(None)
    batch_id = state.get(key)
    resumed = batch_id is not None
    if batch_id is None:
        upload = client.files.create(file=("requests.jsonl", content),
                                     purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint=url,
                                      completion_window=completion_window,
                                      metadata=metadata)
        batch_id = batch.id
        state.put(key, batch_id)
    start = time.monotonic()
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            break
        if max_wait is not None and time.monotonic() - start > max_wait:
            raise TimeoutError(
                f"batch {batch_id} is still {batch.status!r} after {max_wait:.0f} "
                "s; it keeps running, and calling again with the same texts "
                "resumes it."
            )
        sleep(poll_interval)
    outcome = BatchOutcome(batch_id, batch.status, resumed=resumed)
    counts = batch.request_counts
    outcome.request_counts = counts.model_dump() if counts is not None else {}
    records = _read_records(client, batch.output_file_id)
    errors = _read_records(client, batch.error_file_id)
    outcome.n_ran = sum(bool(r.get("response")) for r in records + errors)
    for record in records:
        response = record.get("response") or {}
        if response.get("status_code") == 200 and not record.get("error"):
            outcome.bodies[record["custom_id"]] = response["body"]
        else:
            outcome.errors[record["custom_id"]] = _record_error(record)
    for record in errors:
        outcome.errors[record["custom_id"]] = _record_error(record)
    if batch.status == "failed":
        details = "; ".join(
            e.message or "" for e in (batch.errors.data or [])
        ) if batch.errors else ""
        reason = f"batch {batch_id} failed: {details or 'no reason given'}"
    else:
        reason = f"batch {batch_id} ended {batch.status} before this request ran"
    for cid, _ in requests:
        if cid not in outcome.bodies and cid not in outcome.errors:
            outcome.errors[cid] = reason
    state.pop(key)  # collected: a later call with these texts submits anew
    return outcome
