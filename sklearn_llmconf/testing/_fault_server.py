"""A deterministic OpenAI-compatible test server that injects faults on request.

The "model" has a small vocabulary; the next-token logits are a pure function of
the prompt text (:func:`next_token_logprobs`), so tests can compute the exact
expected answer. Faults are selected per request by ``FAULT=<name>[x<n>]`` in the
prompt text (or the ``X-Fault`` header); ``x<n>`` fails the first ``n`` attempts
for that prompt and then answers normally.

Faults: ``429`` (with ``Retry-After: 1``), ``500``/``503`` (``retry-after-ms:
10``), ``slow`` (sleeps ``slow_s`` before answering), ``drop`` (closes the
connection without a response), ``malformed`` (200 with a broken JSON body),
``nologprobs`` (``logprobs: null``), ``few`` (two alternatives whatever was asked).
``latency`` (seconds, server-wide) delays every request, for benchmarks;
``serial`` answers one request at a time (like the llama.cpp server);
``outage`` (an HTTP status) answers every request, tokenize included, with it.
``rate_limit=(n, window_s)`` admits at most ``n`` requests in any ``window_s``
seconds and answers the others HTTP 429 with ``retry-after`` (seconds), and
every answer carries OpenAI's ``x-ratelimit-limit-requests`` /
``-remaining-requests`` / ``-reset-requests`` headers; ``arrivals`` holds the
arrival time of every request (``time.monotonic``), ``n_429`` the refusals.
Faults ``401``/``403``/``404`` answer that status (never retried by the SDK).
``bias_in_logprobs=False`` applies ``logit_bias`` to the generated token only
and reports unbiased log-probs plus that token, like llama-cpp-python.
``echo_capable`` makes ``/v1/completions`` honour ``echo=True`` with prompt
log-probabilities (like vLLM); otherwise echo requests get HTTP 400;
``echo_misaligned`` echoes wrong (shifted) values, like llama-cpp-python.
The llama-cpp-python ``/extras/tokenize`` and ``/extras/detokenize`` routes are
served, and ``logit_bias`` is applied before the log-softmax (like OpenAI).

Generation: every choice is one vocabulary token, the argmax at
``temperature=0`` and otherwise drawn by :func:`sample_token` from the
tempered distribution with the request's ``seed`` and the choice index; or the
text ``reply(prompt, seed, index)`` returns when the server's ``reply`` is set.
``n`` is honoured unless ``honor_n=False`` (like llama-cpp-python, which
answers one choice whatever ``n`` asks).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VOCAB = [
    "<s>",
    " yes",
    " no",
    "yes",
    "no",
    "Yes",
    "No",
    " ham",
    " spam",
    "ham",
    "spam",
    "Ham",
    "Spam",
    " A",
    " B",
    " C",
    "A",
    "B",
    "C",
    " sp",
    "am",
    " the",
    " a",
    " of",
    " and",
    " to",
    " is",
    ".",
    ",",
    "\n",
    " maybe",
    " it",
    " I",
    " this",
    " that",
    " not",
    " be",
    " on",
    " with",
    " for",
]
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
BOS_ID = 0

_FAULT_RE = re.compile(r"FAULT=(\w+?)(?:x(\d+))?\b")


def _unit(*parts) -> float:
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def next_token_logprobs(prompt: str, logit_bias: dict | None = None) -> dict:
    """Exact next-token log-probabilities the server reports for ``prompt``."""
    logits = [-30.0] + [6.0 * _unit(prompt, t) - 3.0 for t in VOCAB[1:]]
    for tid, b in (logit_bias or {}).items():
        logits[int(tid)] += float(b)
    m = max(logits)
    lse = m + math.log(sum(math.exp(v - m) for v in logits))
    return {t: v - lse for t, v in zip(VOCAB, logits, strict=True)}


def sample_token(prompt: str, temperature: float, seed, index: int) -> str:
    """The token choice ``index`` of a request with ``seed`` generates."""
    dist = next_token_logprobs(prompt)
    if temperature == 0:
        return max(dist, key=dist.get)
    weights = [math.exp(v / temperature) for v in dist.values()]
    u = _unit("sample", prompt, seed, index) * sum(weights)
    for token, w in zip(dist, weights, strict=True):
        u -= w
        if u <= 0:
            return token
    return token


def echo_tokens(text: str, misaligned=False) -> list[tuple[str, int, float | None]]:
    """(token, char offset, logprob) for an echoed prompt; first logprob None.

    A vocabulary token gets its next-token log-prob given the text before it
    (consistent with the non-echo answer); others a deterministic value.
    ``misaligned`` reports arbitrary values instead, like a server whose echoed
    log-probs are shifted by one position.
    """
    out = []
    for i, m in enumerate(re.finditer(r"\s*\S+|\s+", text)):
        tok, off = m.group(), m.start()
        if i == 0:
            lp = None
        elif tok in TOKEN_ID and not misaligned:
            lp = next_token_logprobs(text[:off])[tok]
        else:
            lp = -0.01 - 6.0 * _unit("echo", text[: m.end()])
        out.append((tok, off, lp))
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each response
    # waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in {**getattr(self, "_limit_headers", {}),
                         **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to do

    def do_POST(self):
        srv = self.server
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"error": {"message": "bad json"}})
        with srv.lock:
            srv.requests.append(
                {
                    "path": self.path,
                    "body": body,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )
            srv.arrivals.append(time.monotonic())
        self._limit_headers = {}
        if srv.rate_limit is not None:
            headers, wait = srv.admit()
            if wait is not None:
                return self._send(429, {"error": {"message": "rate limited"}},
                                  {**headers, "retry-after": f"{wait:.3f}"})
            self._limit_headers = headers
        if srv.outage:
            return self._send(srv.outage, {"error": {"message": "outage"}})
        if srv.serial:
            # One request at a time, like the llama.cpp server's single model.
            with srv.serial_lock:
                return self._handle(srv, body)
        return self._handle(srv, body)

    def _handle(self, srv, body):
        if srv.latency:
            self._wait_latency(srv)
        if self.path.startswith("/extras/"):
            return self._tokenizer_route(body)
        if self.path == "/v1/chat/completions":
            prompt = body["messages"][-1]["content"]
        elif self.path == "/v1/completions":
            prompt = body["prompt"]
        else:
            return self._send(404, {"error": {"message": "not found"}})
        fault = self._fault_of(srv, prompt)
        if fault in _FAULT_RESPONSES or fault in ("drop", "malformed"):
            return self._send_fault(fault)
        if fault == "slow":
            time.sleep(srv.slow_s)
        bias = body.get("logit_bias")
        dist = next_token_logprobs(prompt, bias)
        ranked = sorted(dist.items(), key=lambda kv: -kv[1])
        chosen, chosen_lp = ranked[0]
        if bias and not srv.bias_in_logprobs:
            # llama-cpp-python: the bias picks the token, the reported
            # log-probs are unbiased, and the token joins the unbiased top-k.
            dist = next_token_logprobs(prompt)
            ranked = sorted(dist.items(), key=lambda kv: -kv[1])
            chosen_lp = dist[chosen]
        n_choices = int(body.get("n") or 1) if srv.honor_n else 1
        if body.get("max_tokens", 1) > 1 or n_choices > 1:
            return self._generation(body, prompt, n_choices)
        unbiased_top = bool(bias) and not srv.bias_in_logprobs
        if self.path == "/v1/chat/completions":
            choice = _chat_choice(body, fault, ranked, chosen, chosen_lp,
                                  unbiased_top)
        elif body.get("echo"):
            if not srv.echo_capable:
                return self._send(400, {"error": {"message": "echo is not supported"}})
            choice = _echo_choice(prompt, fault, chosen, chosen_lp,
                                  srv.echo_misaligned)
        else:
            choice = _completion_choice(body, prompt, fault, ranked, chosen,
                                        chosen_lp, unbiased_top)
        return self._send_completion(body, prompt, [choice])

    def _wait_latency(self, srv):
        """Sleep the fixed latency, counting overlapping requests."""
        # Tests assert the client's bound on the overlap.
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        time.sleep(srv.latency)
        with srv.lock:
            srv.in_flight -= 1

    def _tokenizer_route(self, body):
        """llama.cpp server's /extras/tokenize and /extras/detokenize."""
        if self.path == "/extras/tokenize":
            ids = [BOS_ID] + _tokenize(body.get("input", ""))
            return self._send(200, {"tokens": ids})
        if self.path == "/extras/detokenize":
            text = "".join(VOCAB[i] for i in body.get("tokens", []) if i != BOS_ID)
            return self._send(200, {"text": text})
        return self._send(404, {"error": {"message": "not found"}})

    def _fault_of(self, srv, prompt):
        """The fault asked for (header or ``FAULT:kind[:times]`` in the prompt)."""
        fault, times = self.headers.get("X-Fault"), None
        match = _FAULT_RE.search(prompt)
        if match:
            fault, times = match.group(1), match.group(2)
        if not fault:
            return None
        with srv.lock:
            key = (fault, prompt)
            srv.attempts[key] = srv.attempts.get(key, 0) + 1
            if times is not None and srv.attempts[key] > int(times):
                return None
        return fault

    def _send_fault(self, fault):
        """An HTTP error, a dropped connection or a malformed body."""
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        if fault == "malformed":
            return self._send(200, b'{"id": "x", "choices": [{"logprobs": ')
        status, message, headers = _FAULT_RESPONSES[fault]
        return self._send(status, {"error": {"message": message}}, headers)

    def _send_completion(self, body, prompt, choices):
        """A 200 response; every choice counts one completion token."""
        n_prompt = len(prompt.split())
        chat = self.path == "/v1/chat/completions"
        return self._send(
            200,
            {
                "id": "cmpl-test",
                "object": "chat.completion" if chat else "text_completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": choices,
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": len(choices),
                    "total_tokens": n_prompt + len(choices),
                },
            },
        )

    def _generation(self, body, prompt, n_choices):
        srv, seed = self.server, body.get("seed")
        temperature = float(body.get("temperature", 1.0))
        chat = self.path == "/v1/chat/completions"
        choices = []
        for i in range(n_choices):
            if srv.reply is not None:
                text = srv.reply(prompt, seed, i)
            else:
                text = sample_token(prompt, temperature, seed, i)
            choice = {"index": i, "finish_reason": "stop", "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        return self._send_completion(body, prompt, choices)


def _tokenize(text: str) -> list[int]:
    # Greedy longest match over the tiny vocabulary; unknown characters skipped.
    ids, i = [], 0
    while i < len(text):
        best = None
        for tok, tid in TOKEN_ID.items():
            if tid != BOS_ID and text.startswith(tok, i):
                if best is None or len(tok) > len(VOCAB[best]):
                    best = tid
        if best is None:
            i += 1
            continue
        ids.append(best)
        i += len(VOCAB[best])
    return ids


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (free port) serving from a daemon thread.

    The shared lifecycle of the package's test servers: ``start()`` returns
    the server, ``base_url`` ends in ``/v1``, ``stop()`` shuts it down.
    """

    _thread = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class FaultServer(LoopbackServer):
    """The server object; see the module docstring."""

    daemon_threads = True
    # The default backlog of 5 drops bursts of connects (1 s SYN retransmit).
    request_queue_size = 256

    def __init__(
        self, latency=0.0, slow_s=2.0, echo_capable=False, echo_misaligned=False
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.slow_s = slow_s
        self.echo_capable = echo_capable
        self.echo_misaligned = echo_misaligned
        self.lock = threading.Lock()
        self.requests: list = []
        self.attempts: dict = {}
        self.in_flight = self.max_in_flight = 0
        self.honor_n = True
        self.reply = None
        self.serial = False
        self.outage = None
        self.bias_in_logprobs = True
        self.serial_lock = threading.Lock()
        self._thread = None
        self.rate_limit = None
        self.arrivals: list = []
        self.admitted: list = []
        self.n_429 = 0

    def admit(self):
        """(headers, None) for an admitted request, (headers, wait) otherwise."""
        limit, window = self.rate_limit
        with self.lock:
            now = time.monotonic()
            recent = [t for t in self.admitted if t > now - window]
            if len(recent) >= limit:
                self.n_429 += 1
                wait = recent[0] + window - now
                return {"x-ratelimit-limit-requests": str(limit),
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{wait:.3f}s"}, wait
            self.admitted.append(now)
            reset = (recent[0] if recent else now) + window - now
            return {"x-ratelimit-limit-requests": str(limit),
                    "x-ratelimit-remaining-requests": str(limit - len(recent) - 1),
                    "x-ratelimit-reset-requests": f"{reset:.3f}s"}, None

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.attempts.clear()
            self.in_flight = self.max_in_flight = 0
        self.latency, self.slow_s, self.echo_capable = 0.0, 2.0, False
        self.echo_misaligned = False
        self.honor_n, self.reply, self.serial = True, None, False
        self.outage, self.bias_in_logprobs = None, True
        self.rate_limit, self.n_429 = None, 0
        with self.lock:
            self.arrivals.clear()
            self.admitted.clear()


#: Faults answered with an HTTP error: status, message, headers.
_FAULT_RESPONSES = {
    "429": (429, "rate limited", {"Retry-After": "1"}),
    "401": (401, "denied", None),
    "403": (403, "denied", None),
    "404": (404, "denied", None),
    "500": (500, "boom", {"retry-after-ms": "10"}),
    "503": (503, "boom", {"retry-after-ms": "10"}),
}


def _chat_choice(body, fault, ranked, chosen, chosen_lp, unbiased_top):
    """One chat choice with the requested top log-probs of its one token."""
    k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
    k = 2 if fault == "few" else k
    shown = ranked[:k]
    if unbiased_top and chosen not in dict(shown):
        shown = shown + [(chosen, chosen_lp)]
    top = [{"token": t, "logprob": v, "bytes": None} for t, v in shown]
    logprobs = {"content": [{"token": chosen, "logprob": chosen_lp, "bytes": None,
                             "top_logprobs": top}]}
    return {
        "index": 0,
        "message": {"role": "assistant", "content": chosen},
        "finish_reason": "length",
        "logprobs": None if fault == "nologprobs" else logprobs,
    }


def _echo_choice(prompt, fault, chosen, chosen_lp, misaligned):
    """A completions choice echoing the prompt with its tokens' log-probs."""
    toks = echo_tokens(prompt, misaligned)
    toks.append((chosen, len(prompt), chosen_lp))
    logprobs = {
        "tokens": [t for t, _, _ in toks],
        "text_offset": [o for _, o, _ in toks],
        "token_logprobs": [v for _, _, v in toks],
        "top_logprobs": [None] + [{t: v} for t, _, v in toks[1:]],
    }
    return {"index": 0, "text": prompt + chosen, "finish_reason": "length",
            "logprobs": None if fault == "nologprobs" else logprobs}


def _completion_choice(body, prompt, fault, ranked, chosen, chosen_lp,
                       unbiased_top):
    """A completions choice with the requested top log-probs of its token."""
    k = int(body.get("logprobs") or 0)
    k = 2 if fault == "few" else k
    top = dict(ranked[:k])
    if unbiased_top:
        top = {**top, chosen: chosen_lp}
    logprobs = {"tokens": [chosen], "text_offset": [len(prompt)],
                "token_logprobs": [chosen_lp], "top_logprobs": [top]}
    return {"index": 0, "text": chosen, "finish_reason": "length",
            "logprobs": None if fault == "nologprobs" else logprobs}
