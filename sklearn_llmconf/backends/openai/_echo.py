"""Full-sequence scoring from echoed prompt log-probabilities, and its probe.

Servers such as vLLM and SGLang answer ``/v1/completions`` with ``echo=True``
and the log-probability of every prompt token; sending prompt + label then
gives the exact ``log P(label | prompt)``.
"""

from __future__ import annotations

import math

from .._base import Usage
from ._client import _RowError, add_usage

PROBE_PROMPT = "The capital of France is Paris"


def echo_request(model, prompt, extra_body) -> dict:
    """Keyword arguments of a ``completions.create`` call echoing ``prompt``.

    ``max_tokens=1`` rather than 0: some servers treat 0 as "no limit"; the
    generated token is ignored through its offset.
    """
    return {
        "model": model,
        "prompt": prompt,
        "extra_body": extra_body,
        "echo": True,
        "logprobs": 1,
        "max_tokens": 1,
        "temperature": 0,
    }


def _echoed_logprobs(resp, start, end):
    """Log-probs of the echoed tokens overlapping characters ``[start, end)``."""
    lp = resp.choices[0].logprobs
    if lp is None or lp.token_logprobs is None or lp.text_offset is None:
        raise _RowError("response has no prompt logprobs (echo unsupported?)")
    # A token straddling the boundary is counted with the label.
    return [
        v
        for tok, off, v in zip(
            lp.tokens, lp.text_offset, lp.token_logprobs, strict=True
        )
        if off < end and off + len(tok) > start
    ]


async def probe_echo(client, model, extra_body):
    """Ask once whether ``/v1/completions`` echoes *correct* prompt log-probs.

    Two requests: the next-token log-probs after a probe prompt, then the
    prompt plus the top token with ``echo=True``. The echoed log-prob of that
    last token must equal the next-token one; llama-cpp-python, for one,
    echoes log-probs shifted by one position, which this rejects.

    Returns
    -------
    (scoring, reason) : (str, str)
    definitive : bool
        False for a transient failure (connection, 5xx): not to be remembered.
    """
    import openai

    try:
        first = await client.completions.create(
            model=model, prompt=PROBE_PROMPT, extra_body=extra_body,
            logprobs=1, max_tokens=1, temperature=0,
        )
        lp = first.choices[0].logprobs
        token, expected = lp.tokens[0], lp.token_logprobs[0]
        resp = await client.completions.create(
            **echo_request(model, PROBE_PROMPT + token, extra_body)
        )
    except openai.APIStatusError as exc:
        definitive = exc.status_code < 500
        return ("first_token", f"echo probe: HTTP {exc.status_code}"), definitive
    except openai.APIConnectionError as exc:
        return ("first_token", f"echo probe failed: {type(exc).__name__}"), False
    except Exception:
        return ("first_token", "echo probe: no usable logprobs"), True
    try:
        lp = resp.choices[0].logprobs
        end = len(PROBE_PROMPT)
        echoed = [
            v for off, v in zip(lp.text_offset, lp.token_logprobs, strict=True)
            if off == end
        ]
    except Exception:
        return ("first_token", "echo probe: no prompt log-probabilities"), True
    if not echoed or echoed[0] is None:
        return ("first_token", "echo probe: prompt was not echoed"), True
    if abs(echoed[0] - expected) > 0.05:
        return (
            "first_token",
            "echo probe: echoed log-probs disagree with next-token log-probs "
            f"({echoed[0]:.3f} vs {expected:.3f})",
        ), True
    return ("full_sequence", "echo probe succeeded"), True


async def score_full(client, sem, text, label, *, model, extra_body, describe):
    """Exact ``log P(label | text)``; never raises for a per-row failure.

    Returns
    -------
    (value, error, usage) : (float, str or None, Usage)
    """
    usage = Usage()
    try:
        async with sem:
            usage.calls += 1
            resp = await client.completions.create(
                **echo_request(model, text + label, extra_body)
            )
        add_usage(usage, resp)
        picked = _echoed_logprobs(resp, len(text), len(text) + len(label))
        if not picked or any(v is None for v in picked):
            raise _RowError("label tokens not found in the echoed prompt")
        return float(sum(picked)), None, usage
    except Exception as exc:
        return math.nan, describe(exc), usage
