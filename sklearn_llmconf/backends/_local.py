"""What the in-process backends (llama.cpp, transformers) share: the first
token of each label, fitting a prompt into the context window, and the
sequential scorer that is their tests' exactness oracle.

Each backend supplies its own tokenizer and forward pass as callables; the
rules (which field is cut, by how much, how often; how label prefixes are
evaluated) live here once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["first_token_ids", "fit_to_context", "score_sequentially"]

# Re-tokenizing a joined prompt can merge tokens differently at the cut:
# cut this many tokens more than the excess, and try this many times.
_CUT_MARGIN = 2
_MAX_CUTS = 8


def first_token_ids(labels, label_tokens) -> np.ndarray:
    """First token of every label; raise naming the labels that share one."""
    by_first: dict[int, list[str]] = {}
    for label, toks in zip(labels, label_tokens, strict=True):
        by_first.setdefault(toks[0], []).append(label)
    clashes = [group for group in by_first.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" / ".join(repr(lab) for lab in g) for g in clashes)
        raise ValueError(
            "scoring='first_token' needs labels whose first tokens differ, but "
            f"these labels start with the same token: {shown}. Use "
            "verbalizer='letters' on the classifier (single-token letter codes), "
            "other label words, or scoring='full_sequence'."
        )
    return np.array([toks[0] for toks in label_tokens], dtype=np.intp)


def fit_to_context(prompt, budget, *, tokenize, tokenize_field, detokenize, n_ctx):
    """Tokenize a prompt, truncating its longest text field until it fits.

    Parameters
    ----------
    prompt : Prompt
    budget : int
        Most tokens the prompt may take.
    tokenize : callable
        ``tokenize(text) -> sequence of int``: a whole prompt's tokens.
    tokenize_field : callable
        ``tokenize_field(text) -> sequence of int``: a field's tokens, with no
        special token added.
    detokenize : callable
        ``detokenize(tokens) -> str``.
    n_ctx : int
        The context size, for the error message.

    Returns
    -------
    tokens : sequence of int
        What ``tokenize`` returned for the prompt that fits.
    truncated : bool

    Raises
    ------
    ValueError
        When the prompt does not fit even with its text fields emptied.
    """
    tokens = tokenize(prompt.text)
    if len(tokens) <= budget:
        return tokens, False
    for _ in range(_MAX_CUTS):
        excess = len(tokens) - budget
        fields = list(prompt.fields)
        longest = int(np.argmax([len(f) for f in fields]))
        field_tokens = tokenize_field(fields[longest])
        keep = max(0, len(field_tokens) - excess - _CUT_MARGIN)
        fields[longest] = detokenize(field_tokens[:keep])
        prompt = prompt.replace_fields(fields)
        tokens = tokenize(prompt.text)
        if len(tokens) <= budget:
            return tokens, True
    raise ValueError(
        f"The prompt does not fit in n_ctx={n_ctx} tokens even with its "
        "text fields emptied: shorten the instructions or demonstrations, or "
        "increase n_ctx."
    )


def score_sequentially(next_log_probs, tokens, label_tokens):
    """Score labels one prefix at a time, each prefix its own forward pass.

    The plainest evaluation of ``log P(label | prompt)``: no label tree, no
    batching, no custom mask. Each distinct label prefix is evaluated once.

    Parameters
    ----------
    next_log_probs : callable
        ``next_log_probs(token_ids) -> (log_probs, n_evaluated)``: float64
        log-probabilities of the next token after ``token_ids`` (a list of
        int) and the number of tokens the call evaluated.
    tokens : sequence of int
        The prompt's tokens.
    label_tokens : list of list of int

    Returns
    -------
    scores : ndarray of shape (n_labels,)
    n_evaluated : tuple of (int, int)
        Tokens evaluated for the prompt and for the label prefixes.
    """
    tokens = [int(t) for t in tokens]
    first, n_prompt = next_log_probs(tokens)
    memo = {(): first}
    n_label = 0
    scores = np.empty(len(label_tokens))
    for j, seq in enumerate(label_tokens):
        total = 0.0
        for depth, tok in enumerate(seq):
            prefix = tuple(int(t) for t in seq[:depth])
            if prefix not in memo:
                memo[prefix], n = next_log_probs(tokens + list(prefix))
                n_label += n
            total += memo[prefix][tok]
        scores[j] = total
    return scores, (n_prompt, n_label)
