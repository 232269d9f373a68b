"""Exact label scoring on a Hugging Face causal LM: all labels of a prompt at once.

``log P(label | prompt)`` of a multi-token label is the sum of its tokens'
log-probabilities, each given the prompt and the label's earlier tokens. The
labels' token prefixes form a trie; every internal node (a prefix that a
longer label continues) needs the next-token logits at that point.

One forward pass per chunk of prompts evaluates, for every prompt of the
chunk (a row of the batch), the prompt's tokens after the prefix shared by all
prompts of the call, followed by every trie node. A 4-D attention mask gives
each node the prompt and its own ancestors only, and position ids give it the
position it would have in ``prompt + label``, so each node's logits are those
of the one-prefix-at-a-time evaluation (tree attention). The shared prefix is
evaluated once per call and its key/value cache broadcast over the rows.

Mathematically this is the sequential evaluation; numerically, sums over a
different number of keys round differently: the tests bound the difference
against :func:`score_one_reference` (the sequential oracle) at 1e-5 in
float32.
"""

from __future__ import annotations

import numpy as np

from .._label_tree import label_entries, label_nodes
from .._local import score_sequentially

__all__ = [
    "LabelTree",
    "common_prefix_length",
    "eval_prefix",
    "score_one_reference",
    "score_rows",
]


class LabelTree:
    """The labels' token prefixes, with what each node may attend to.

    Parameters
    ----------
    label_tokens : list of list of int
        Tokens of every label (non-empty).

    Attributes
    ----------
    node_tokens : ndarray of shape (n_nodes,)
        Last token of each internal node, parents before children.
    node_depth : ndarray of shape (n_nodes,)
        Length of each node's prefix (1 for a label's first token).
    visible : ndarray of shape (n_nodes, n_nodes), dtype bool
        ``visible[i, j]``: node ``i`` attends to node ``j`` (an ancestor or
        itself).
    entry_row, entry_token, entry_label : ndarray
        One entry per label token: the logits row it is read from (0: the
        prompt's last token, ``1 + i``: node ``i``), the token, the label.
    """

    def __init__(self, label_tokens):
        index, parent, depth, tokens = label_nodes(label_tokens)
        n = len(tokens)
        self.node_tokens = np.asarray(tokens, dtype=np.int64)
        self.node_depth = np.asarray(depth, dtype=np.int64)
        self.visible = np.eye(n, dtype=bool)
        for i in range(n):
            p = parent[i]
            while p >= 0:
                self.visible[i, p] = True
                p = parent[p]
        self.entry_row, self.entry_token, self.entry_label = label_entries(
            label_tokens, index)
        self.n_labels = len(label_tokens)

    @property
    def n_nodes(self) -> int:
        return len(self.node_tokens)


def common_prefix_length(sequences) -> int:
    """Length of the token prefix shared by all ``sequences``."""
    sequences = list(sequences)
    if not sequences:
        return 0
    n = min(len(s) for s in sequences)
    first = np.asarray(sequences[0][:n])
    for s in sequences[1:]:
        mismatch = np.flatnonzero(np.asarray(s[:n]) != first[:n])
        if mismatch.size:
            n = int(mismatch[0])
            first = first[:n]
    return n


def _head_log_softmax64(model, hidden):
    """Next-token log-probabilities in float64 from final hidden states.

    The output projection and the ``log_softmax`` are computed in float64 on
    the positions read only (``hidden`` of shape (..., d_model), in the
    model's dtype): in float32 the projection's rounding alone moved a label's
    log-probability by ~1e-5 between two shapes of the same evaluation.

    Returns
    -------
    log_probs : ndarray of shape (..., vocab)
    """
    import torch

    head = model.get_output_embeddings()
    weight = head.weight.double()
    bias = None if getattr(head, "bias", None) is None else head.bias.double()
    logits = torch.nn.functional.linear(hidden.double(), weight, bias)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1).cpu().numpy()


def _hidden(model, **kwargs):
    """Final hidden states (after the last norm) of a causal LM's body."""
    return model.base_model(**kwargs).last_hidden_state


def _row_layout(suffixes, tree, n_prefix, first_token_only):
    """Token ids, position ids, and the 4-D mask of one chunk of rows."""
    n_nodes = 0 if first_token_only else tree.n_nodes
    lengths = [len(s) for s in suffixes]
    width = max(lengths) + n_nodes
    n_rows = len(suffixes)
    ids = np.zeros((n_rows, width), dtype=np.int64)
    pos = np.zeros((n_rows, width), dtype=np.int64)
    allowed = np.zeros((n_rows, width, n_prefix + width), dtype=bool)
    allowed[:, :, :n_prefix] = True  # every query sees the shared prefix
    causal = np.tril(np.ones((width, width), dtype=bool))
    for r, (suffix, m) in enumerate(zip(suffixes, lengths)):
        ids[r, :m] = suffix
        pos[r, :m] = n_prefix + np.arange(m)
        allowed[r, :m, n_prefix:n_prefix + m] = causal[:m, :m]
        if n_nodes:
            ids[r, m:m + n_nodes] = tree.node_tokens
            pos[r, m:m + n_nodes] = n_prefix + m - 1 + tree.node_depth
            allowed[r, m:m + n_nodes, n_prefix:n_prefix + m] = True
            allowed[r, m:m + n_nodes, n_prefix + m:n_prefix + m + n_nodes] = \
                tree.visible
        # Padding queries see themselves, so that no softmax row is empty.
        pad = np.arange(m + n_nodes, width)
        allowed[r, pad, n_prefix + pad] = True
        pos[r, m + n_nodes:] = pos[r, max(m + n_nodes - 1, 0)]
    return ids, pos, allowed, lengths


def _additive_mask(allowed, dtype, device):
    import torch

    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(torch.from_numpy(~allowed).to(device), torch.finfo(dtype).min)
    return mask[:, None]


def _prefix_cache(kv, n_rows):
    """A fresh DynamicCache holding the shared prefix, broadcast over rows.

    ``kv`` holds one row (broadcast, not copied) or ``n_rows`` rows. The
    cache's tensors are replaced, never written in place, so ``kv`` is reused
    by every chunk.
    """
    from transformers import DynamicCache

    if kv is None:
        return None
    return DynamicCache(ddp_cache_data=[
        (k.expand(n_rows, *k.shape[1:]), v.expand(n_rows, *v.shape[1:]))
        for k, v in kv
    ])


def eval_prefix(model, prefix_tokens, n_rows=1):
    """Evaluate the shared prefix once; return its keys and values per layer.

    With ``n_rows > 1`` the prefix is evaluated as that many identical rows,
    each with its own dropout noise when the model is in training mode (one
    row per Monte-Carlo pass).
    """
    import torch

    if not len(prefix_tokens):
        return None
    device = model.device
    ids = torch.as_tensor(np.asarray(prefix_tokens, dtype=np.int64),
                          device=device)[None].expand(n_rows, -1)
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in out.cache.layers]


def score_rows(model, prefix_kv, n_prefix, suffixes, tree, first_tokens=None):
    """Score every label after ``prefix + suffixes[r]`` for each row ``r``.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    prefix_kv : list of (Tensor, Tensor) or None
        Keys and values of the shared prefix (from :func:`eval_prefix`), with
        one row or ``len(suffixes)`` rows.
    n_prefix : int
        Length of the shared prefix.
    suffixes : list of ndarray of int
        Each row's tokens after the prefix (at least one).
    tree : LabelTree
    first_tokens : ndarray or None
        When given, score only each label's first token.

    Returns
    -------
    scores : ndarray of shape (n_rows, n_labels)
    n_label_tokens : int
        Label tokens evaluated (trie nodes, per row).
    """
    import torch

    device = model.device
    first_only = first_tokens is not None
    ids, pos, allowed, lengths = _row_layout(suffixes, tree, n_prefix, first_only)
    n_rows = len(suffixes)
    hidden = _hidden(
        model,
        input_ids=torch.from_numpy(ids).to(device),
        position_ids=torch.from_numpy(pos).to(device),
        attention_mask=_additive_mask(allowed, model.dtype, device),
        cache=_prefix_cache(prefix_kv, n_rows),
        use_cache=prefix_kv is not None,
    )
    last = torch.as_tensor(np.asarray(lengths) - 1, device=device)
    rows = torch.arange(n_rows, device=device)
    if first_only:
        logp = _head_log_softmax64(model, hidden[rows, last])
        return logp[:, first_tokens], 0
    n_nodes = tree.n_nodes
    # Row 0: the prompt's last position; rows 1..n_nodes: the trie nodes.
    at = last[:, None] + torch.arange(n_nodes + 1, device=device)[None]
    logp = _head_log_softmax64(model, hidden[rows[:, None], at])
    entries = logp[:, tree.entry_row, tree.entry_token]
    scores = np.zeros((n_rows, tree.n_labels))
    for e, label in enumerate(tree.entry_label):  # token by token, in order
        scores[:, label] += entries[:, e]
    return scores, n_nodes * n_rows


# -- the sequential scorer: the oracle of the tests --------------------------
def score_one_reference(model, tokens, label_tokens):
    """Score labels one prefix at a time, each a full forward pass from scratch.

    No cache, no batching, no custom mask: the plainest evaluation of
    ``log P(label | prompt)`` (``score_sequentially``, shared with the
    llama.cpp backend), kept as the exactness oracle of the tests.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    tokens : sequence of int
        The prompt's tokens.
    label_tokens : list of list of int

    Returns
    -------
    scores : ndarray of shape (n_labels,)
    """
    import torch

    def next_log_probs(ids):
        batch = torch.tensor([ids], device=model.device)
        last = _hidden(model, input_ids=batch)[0, -1]
        return _head_log_softmax64(model, last), len(ids)

    return score_sequentially(next_log_probs, tokens, label_tokens)[0]
