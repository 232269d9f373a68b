"""``endpoint="auto"``: find out once which request answers with label tokens.

Servers differ in what their two endpoints can do for first-token scoring:

- OpenAI's chat models have no ``/v1/completions`` (HTTP 404), and report
  log-probabilities *after* ``logit_bias``, so an equal bias on the label
  tokens pulls every label into the top-k of the chat endpoint.
- llama-cpp-python's server (and vLLM with its default raw log-probs) applies
  ``logit_bias`` to sampling only: the chat endpoint then ranks only the labels
  the chat-templated model already puts in its top-k, which for a few-shot
  cloze prompt is often none of them. ``/v1/completions`` continues the
  prompt text itself, where the labels are the likely continuations.

The probe: ``/v1/completions`` with log-probs (one request); if it answers,
one chat request with a large bias on one token shows whether chat reports
biased log-probs. Chat is chosen where completions is missing or chat ranks
biased labels; completions otherwise.
"""

from __future__ import annotations

import math

from ._requests import first_token_body, send

PROBE_TEXT = "The capital of France is"
OPENAI_REASON = "OpenAI API: chat models have no /v1/completions"
# Large enough to make the biased token the argmax of any distribution.
_PROBE_BIAS = 50.0


class EndpointProbeError(RuntimeError):
    """The probe could not tell (the server failed transiently)."""


def _transient(exc) -> bool:
    import openai

    if getattr(exc, "row_message", None):  # not sent: the breaker opened
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (401, 403, 408, 429)
    return isinstance(exc, openai.APIConnectionError)


def _probe_error(path, exc):
    from ._breaker import failure_kind
    from ._client import describe

    what = failure_kind(exc) or describe(exc, timeout="the", max_retries="the")
    return EndpointProbeError(
        f"No request succeeded: endpoint='auto' could not probe the server, "
        f"{path} failed with {what}. Check base_url, model and the API key "
        "(api_key_env), retry later, or set endpoint='chat' or "
        "endpoint='completions' to skip the probe."
    )


async def _completions_answers(client, backend):
    """(answers, reason) for ``/v1/completions`` with log-probs."""
    body = first_token_body("completions", model=backend.model, text=PROBE_TEXT,
                            top_logprobs=1)
    try:
        resp = await send(client, "completions", body, backend.extra_body)
        lp = resp.choices[0].logprobs
        if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
            return False, "/v1/completions reports no log-probabilities"
    except Exception as exc:
        if _transient(exc):
            raise _probe_error("/v1/completions", exc) from exc
        return False, f"/v1/completions unavailable ({type(exc).__name__})"
    return True, "/v1/completions reports log-probabilities"


async def _chat_reports_bias(client, backend, tokenizer):
    """Whether chat log-probs are those of the biased distribution."""
    ids = await tokenizer.tokenize(client, " zebra")
    if not ids:
        return False, "no token id to probe logit_bias with"
    body = first_token_body("chat", model=backend.model, text=PROBE_TEXT,
                            top_logprobs=5, bias={str(ids[0]): _PROBE_BIAS})
    try:
        resp = await send(client, "chat", body, backend.extra_body)
        first = resp.choices[0].logprobs.content[0]
        top = [a.logprob for a in (first.top_logprobs or [])]
    except Exception as exc:
        if _transient(exc):
            raise _probe_error("/v1/chat/completions", exc) from exc
        return False, f"chat gives no log-probabilities ({type(exc).__name__})"
    if first.logprob is None or not top or math.isnan(first.logprob):
        return False, "chat gives no log-probabilities"
    if first.logprob < max(top) - 1e-6 or first.logprob < -1.0:
        return False, ("chat reports log-probabilities without logit_bias, so it "
                       "ranks only labels already in its top-k")
    return True, "chat reports log-probabilities with logit_bias"


async def probe_endpoint(client, backend, get_tokenizer):
    """Choose the endpoint for first-token scoring.

    Parameters
    ----------
    client : openai.AsyncOpenAI
    backend : OpenAIBackend
    get_tokenizer : coroutine function
        Returns something with ``async tokenize(client, text)``, or None when
        no token ids are available (``logit_bias`` then cannot help on chat);
        awaited only when completions answers.

    Returns
    -------
    (endpoint, reason) : (str, str)

    Raises
    ------
    EndpointProbeError
        A probe request failed transiently (5xx, 429, authentication,
        connection): the answer would say nothing about the endpoints.
    """
    if backend.base_url is None:
        return "chat", OPENAI_REASON
    answers, reason = await _completions_answers(client, backend)
    if not answers:
        return "chat", reason
    tokenizer = None if backend.logit_bias is False else await get_tokenizer()
    if tokenizer is None:
        return "completions", (
            reason + "; without logit_bias chat ranks only labels already in its "
            "top-k, completions continues the prompt text"
        )
    biased, why = await _chat_reports_bias(client, backend, tokenizer)
    if biased:
        return "chat", why
    return "completions", f"{reason}; {why}"
