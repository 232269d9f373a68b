"""Exact label scoring on a llama.cpp context: all labels of a prompt in one batch.

``log P(label | prompt)`` of a multi-token label is the sum of its tokens'
log-probabilities, each given the prompt and the label's earlier tokens. The
labels' token prefixes form a trie; every internal node (a prefix that some
label continues) needs the model's next-token logits at that point. They are
all evaluated in one llama.cpp batch after the prompt: each root-to-leaf path of
the trie is its own sequence, sharing the prompt's KV cells (a cell can belong
to several sequences), and a node belongs to every path through it, so it
attends to the prompt and its own ancestors only.

Mathematically this is the sequential evaluation. Numerically, llama.cpp
computes a token's row independently of the other tokens of a batch (of at
least two tokens; one-token batches use other kernels, see
:func:`keep_reusable_prefix`), but its attention sums depend on where the
attended cells sit: with several branches the label tokens sit in other cells
than one prefix at a time would put them, and the model's 8-bit
re-quantisation of activations amplifies the last-bit differences, more so
with many labels (a single branch is bit for bit the sequential result). The
sequential scorer is no steadier: its own scores move by as much when its
label tokens sit a few cells further on (``benchmarks/bench_labels.py``,
"against itself"; sizes in the user guide, "First token or full sequence").
The sequential scorer is kept as :func:`score_one_reference`, the tests'
oracle and the benchmark's baseline.

Giving every branch the sequential scorer's layout is possible, with one KV
stream per label (a non-unified cache, the prompt's cells copied into each
stream, labels of equal length decoded together): it matched the sequential
scorer to the bit but was about half as fast as the trie, because llama.cpp
copies whole streams and decodes each group of streams apart
(``benchmarks/bench_exact_layout.py``; figures in the user guide, "Speed of
the embedded model"). It is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from .._label_tree import label_entries, label_nodes
from .._local import first_token_ids, score_sequentially

__all__ = [
    "BatchBuffer",
    "LabelTrie",
    "first_token_ids",
    "keep_reusable_prefix",
    "score_one_reference",
    "score_prompt",
]


def _common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    mismatch = np.flatnonzero(a[:n] != b[:n])
    return int(mismatch[0]) if mismatch.size else n


def keep_reusable_prefix(llama, tokens: np.ndarray) -> int:
    """Truncate the model's state to the cached prefix of ``tokens`` it may reuse.

    At least two tokens are left to evaluate: llama.cpp computes a one-token
    batch with a different kernel whose logits differ by up to ~0.05 nats,
    which would make a score or a seeded sample depend on what was evaluated
    before. Returns how many tokens are reused (``llama.n_tokens``).
    """
    cached = llama.input_ids[: llama.n_tokens]
    reuse = max(0, min(_common_prefix_length(cached, tokens), len(tokens) - 2))
    llama.n_tokens = reuse
    return reuse


@dataclass
class _Group:
    """Trie nodes evaluated in one batch, one sequence id per root-to-leaf path."""

    nodes: list          # node indices, parents before children
    seqs: list           # seqs[k]: sequence ids of node nodes[k]
    n_seq: int           # sequence ids 1..n_seq are used


class LabelTrie:
    """The labels' token prefixes, laid out for one-batch evaluation.

    Parameters
    ----------
    label_tokens : list of list of int
        Tokens of every label (non-empty).
    max_paths : int
        Most sequences one batch may use besides the prompt's (llama.cpp's
        ``n_seq_max - 1``); larger tries are evaluated in several batches.

    Attributes
    ----------
    node_tokens : ndarray of shape (n_nodes,)
        Last token of each internal node (a label prefix of length >= 1 that a
        longer label continues), in breadth-first order.
    node_depth : ndarray of shape (n_nodes,)
        Length of each node's prefix.
    entry_row, entry_token, entry_label : ndarray
        One entry per label token: the logits row it is read from (0: the
        prompt's last token, ``1 + i``: node ``i``), the token, and the label.
    groups : list of _Group
    """

    def __init__(self, label_tokens, max_paths=255):
        index, parent, depth, tokens = label_nodes(label_tokens)
        self.node_tokens = np.asarray(tokens, dtype=np.intc)
        self.node_depth = np.asarray(depth, dtype=np.intp)
        self.entry_row, self.entry_token, self.entry_label = label_entries(
            label_tokens, index)
        self.n_labels = len(label_tokens)
        self.groups = self._group_paths(parent, max_paths)

    @staticmethod
    def _group_paths(parent, max_paths) -> list[_Group]:
        n = len(parent)
        has_child = np.zeros(n, dtype=bool)
        for p in parent:
            if p >= 0:
                has_child[p] = True
        leaves = [i for i in range(n) if not has_child[i]]
        groups = []
        for start in range(0, len(leaves), max_paths):
            node_seqs: dict[int, list[int]] = {}
            for s, leaf in enumerate(leaves[start : start + max_paths], start=1):
                node = leaf
                while node >= 0:
                    node_seqs.setdefault(node, []).append(s)
                    node = parent[node]
            nodes = sorted(node_seqs)  # breadth-first: parents first
            groups.append(_Group(nodes, [node_seqs[i] for i in nodes],
                                 min(max_paths, len(leaves) - start)))
        return groups


class BatchBuffer:
    """A ``llama_batch`` with numpy views of its arrays, reused across calls."""

    def __init__(self, n_tokens: int, n_seq_max: int):
        import llama_cpp

        self.n_tokens, self.n_seq_max = n_tokens, n_seq_max
        self.batch = llama_cpp.llama_batch_init(n_tokens, 0, n_seq_max)
        b = self.batch
        self.token = np.ctypeslib.as_array(b.token, shape=(n_tokens,))
        self.pos = np.ctypeslib.as_array(b.pos, shape=(n_tokens,))
        self.n_seq_id = np.ctypeslib.as_array(b.n_seq_id, shape=(n_tokens,))
        self.logits = np.ctypeslib.as_array(b.logits, shape=(n_tokens,))
        self.seq_id = [np.ctypeslib.as_array(b.seq_id[i], shape=(n_seq_max,))
                       for i in range(n_tokens)]
        self._free = llama_cpp.llama_batch_free

    def __del__(self):
        free = getattr(self, "_free", None)
        if free is not None:
            free(self.batch)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """Split range(n) into pieces of at most ``size``, none of length one."""
    bounds = [(i, min(n, i + size)) for i in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (a, b), (_, d) = bounds[-2], bounds[-1]
        bounds[-2:] = [(a, b - 1), (b - 1, d)]
    return bounds


def _decode(llama, buf: BatchBuffer, tok, pos, seqs, want) -> np.ndarray:
    """Decode entries in chunks of at most ``buf.n_tokens``; return wanted rows.

    The rows come back in float64, converted while copied out of llama.cpp's
    buffer: one pass over them, and the log-softmax that follows works in place.
    """
    import llama_cpp

    ctx = llama._ctx.ctx
    n_vocab = llama.n_vocab()
    out = np.empty((int(np.count_nonzero(want)), n_vocab))
    done = 0
    for a, b in _chunks(len(tok), buf.n_tokens):
        m = b - a
        buf.token[:m] = tok[a:b]
        buf.pos[:m] = pos[a:b]
        buf.logits[:m] = want[a:b]
        for i in range(m):
            s = seqs[a + i]
            buf.n_seq_id[i] = len(s)
            buf.seq_id[i][: len(s)] = s
        buf.batch.n_tokens = m
        rc = llama_cpp.llama_decode(ctx, buf.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc}.")
        n_out = int(np.count_nonzero(want[a:b]))
        if n_out:
            ptr = llama_cpp.llama_get_logits(ctx)
            out[done:done + n_out] = np.ctypeslib.as_array(ptr, shape=(n_out, n_vocab))
            done += n_out
    return out


def _last_logits(llama) -> np.ndarray:
    return np.ctypeslib.as_array(
        llama._ctx.get_logits(), shape=(1, llama.n_vocab())
    ).astype(np.float64)


def _eval_prompt_and_trie(llama, buf, tokens, reuse, trie) -> tuple[np.ndarray, int]:
    """Evaluate the prompt's new tokens and every trie node; return logits rows.

    Row 0 holds the prompt's last position, row ``1 + i`` trie node ``i``.
    """
    import llama_cpp

    mem = llama_cpp.llama_get_memory(llama._ctx.ctx)
    n = len(tokens)
    rows = None
    n_label = 0
    for g, group in enumerate(trie.groups):
        # The first batch carries the prompt's new tokens; later ones re-evaluate
        # its last token, so that no batch has a single token.
        start = reuse if g == 0 else n - 1
        llama_cpp.llama_memory_seq_rm(mem, -1, start, -1)
        path_seqs = list(range(1, group.n_seq + 1))
        for s in path_seqs:
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        nodes = np.asarray(group.nodes, dtype=np.intp)
        tok = np.concatenate([tokens[start:], trie.node_tokens[nodes]])
        pos = np.concatenate([np.arange(start, n), n - 1 + trie.node_depth[nodes]])
        prompt_seqs = [0, *path_seqs]
        seqs = [prompt_seqs] * (n - start) + group.seqs
        want = np.zeros(len(tok), dtype=np.int8)
        want[n - start - 1:] = 1
        got = _decode(llama, buf, tok, pos, seqs, want)
        if len(trie.groups) == 1:  # one group holds every node, in order
            rows = got
        else:
            if rows is None:
                rows = np.empty((1 + len(trie.node_tokens), got.shape[1]))
                rows[0] = got[0]
            rows[1 + nodes] = got[1:]
        n_label += len(nodes) + (g > 0)
        # Keep the prompt (sequence 0) only, ready for the next prompt's reuse.
        llama_cpp.llama_memory_seq_rm(mem, -1, n, -1)
        llama_cpp.llama_memory_seq_keep(mem, 0)
    llama.input_ids[reuse:n] = tokens[reuse:]
    llama.n_tokens = n
    return rows, n_label


def _entry_log_probs(rows: np.ndarray, row_idx, tok_idx) -> np.ndarray:
    """``log_softmax(rows[r])[t]`` per entry, computed like scipy's.

    ``rows`` (float64) is overwritten: the exponentials, 49k per row, are the
    costly step, and working in place spares a copy of every row.
    """
    rows -= rows.max(axis=1, keepdims=True)
    picked = rows[row_idx, tok_idx]
    np.exp(rows, out=rows)
    return picked - np.log(rows.sum(axis=1))[row_idx]


def score_prompt(llama, buf, tokens, trie, first_tokens=None):
    """Score every label after ``tokens``, reusing the cached prompt prefix.

    Parameters
    ----------
    llama : llama_cpp.Llama
    buf : BatchBuffer
    tokens : ndarray of int
        The prompt's tokens.
    trie : LabelTrie
    first_tokens : ndarray or None
        When given, score only each label's first token (first-token scoring).

    Returns
    -------
    scores : ndarray of shape (n_labels,)
    evaluated : tuple of int
        Prompt tokens and label tokens evaluated.
    """
    reuse = keep_reusable_prefix(llama, tokens)
    if first_tokens is not None or not len(trie.node_tokens):
        llama.eval(tokens[reuse:])  # exactly what raw llama.cpp does
        rows, n_label = _last_logits(llama), 0
    else:
        rows, n_label = _eval_prompt_and_trie(llama, buf, tokens, reuse, trie)
    if first_tokens is not None:
        zeros = np.zeros(len(first_tokens), dtype=np.intp)
        return _entry_log_probs(rows, zeros, first_tokens), (len(tokens) - reuse, 0)
    # Every row is read: each trie node is the prefix of a longer label.
    entries = _entry_log_probs(rows, trie.entry_row, trie.entry_token)
    # bincount adds in entry order, token by token, like a running sum.
    scores = np.bincount(trie.entry_label, weights=entries, minlength=trie.n_labels)
    return scores, (len(tokens) - reuse, n_label)


# -- the sequential scorer: the oracle of the tests --------------------------
def eval_to(llama, tokens: np.ndarray) -> tuple[np.ndarray, int]:
    reuse = keep_reusable_prefix(llama, tokens)
    llama.eval(tokens[reuse:])
    logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
    return log_softmax(logits.astype(np.float64)), len(tokens) - reuse


def score_one_reference(llama, tokens, label_tokens):
    """Score labels one prefix at a time, each its own llama.cpp decode.

    The scorer of versions before the one-batch trie: slow (a decode of at
    least two tokens and a full-vocabulary log-softmax per label prefix) and
    kept as the exactness oracle of the tests and the baseline of
    ``benchmarks/bench_labels.py``: ``score_sequentially`` (shared with the
    transformers backend) over :func:`eval_to`.
    """
    return score_sequentially(
        lambda ids: eval_to(llama, np.asarray(ids, dtype=np.intc)), tokens,
        label_tokens)
