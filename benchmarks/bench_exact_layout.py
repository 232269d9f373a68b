"""Can the one-batch label scorer equal the sequential scorer to the bit, and at
what cost?

The one-batch trie (``LlamaCppBackend``) and the sequential scorer of earlier
versions differ by up to ~0.08 nats on many-label sets because llama.cpp's
attention sums depend on which KV cells hold the tokens
(``bench_labels.py``). This script times, side by side on the default 16-shot
prompts of the 30 question types, one thread each (checked):

- **old**: the sequential scorer (``score_one_reference``), one decode of >= 2
  tokens per label prefix: the oracle;
- **trie**: ``LlamaCppBackend.score_labels``, every label in one decode;
- **streams**: every multi-token label in its own KV stream (a non-unified
  llama.cpp cache, ``kv_unified=False``), so that its tokens sit in exactly the
  cells the sequential scorer gives them: the prompt's cells are copied from
  stream 0 into each label's stream, the last prompt token is re-evaluated in
  each stream with the label's tokens (as the sequential scorer does, so that
  no stream holds a one-token query), and labels of equal length are decoded
  together (llama.cpp splits a multi-stream batch into equal shares per
  stream).

It prints each method's time per text (from the prompt's text to the scores)
and its largest difference from the oracle. Run::

    python benchmarks/bench_exact_layout.py [--n 8]
"""

import argparse
import time

import numpy as np
from bench_labels import default_prompts

from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.backends.llamacpp._model import (
    _with_parallel_sequences,
    default_model_path,
    without_extra_buffer_types,
)
from sklearn_llmconf.backends.llamacpp._scoring import (
    BatchBuffer,
    _decode,
    _entry_log_probs,
    _last_logits,
    keep_reusable_prefix,
    score_one_reference,
)

STREAM_CELLS = 1024  # KV cells per stream: the longest prompt plus a label


class StreamScorer:
    """Each multi-token label in its own KV stream, at the oracle's cells."""

    def __init__(self, label_tokens):
        import llama_cpp

        self.label_tokens = label_tokens
        self.multi = [j for j, t in enumerate(label_tokens) if len(t) > 1]
        n_streams = 1 + len(self.multi)
        with (without_extra_buffer_types(),
              _with_parallel_sequences(n_streams, kv_unified=False)):
            self.llama = llama_cpp.Llama(
                model_path=str(default_model_path()),
                n_ctx=STREAM_CELLS * n_streams, n_threads=1, n_threads_batch=1,
                logits_all=False, verbose=False,
            )
        params = self.llama.context_params
        assert params.n_threads == 1 and params.n_threads_batch == 1
        assert not params.kv_unified and params.n_seq_max == n_streams
        self.memory = llama_cpp.llama_get_memory(self.llama._ctx.ctx)
        self.buf = BatchBuffer(512, n_streams)

    def score(self, tokens):
        import llama_cpp

        llama, n = self.llama, len(tokens)
        reuse = keep_reusable_prefix(llama, tokens)
        llama.eval(tokens[reuse:])  # stream 0 holds the prompt
        first = _last_logits(llama)
        tok, pos, seq, length, owner = [], [], [], [], []
        for s, j in enumerate(self.multi, start=1):
            llama_cpp.llama_memory_seq_rm(self.memory, s, -1, -1)
            llama_cpp.llama_memory_seq_cp(self.memory, 0, s, -1, -1)
            llama_cpp.llama_memory_seq_rm(self.memory, s, n - 1, -1)
            path = [tokens[-1], *self.label_tokens[j][:-1]]
            tok += path
            pos += range(n - 1, n - 1 + len(path))
            seq += [[s]] * len(path)
            length += [len(path)] * len(path)
            owner += [(j, d) for d in range(len(path))]
        length = np.array(length)
        # The re-evaluated prompt token's row is not read (the prompt's serves).
        want = np.array([d > 0 for _, d in owner], dtype=np.int8)
        # Row 0: the prompt's last position; wanted entry i: row row_at[i].
        row_at = np.cumsum(want)
        rows = np.empty((1 + row_at[-1], first.shape[1]))
        rows[0] = first[0]
        for size in np.unique(length):
            idx = np.flatnonzero(length == size)
            rows[row_at[idx][want[idx] == 1]] = _decode(
                llama, self.buf, np.array(tok)[idx], np.array(pos)[idx],
                [seq[i] for i in idx], want[idx])
        row_of = {key: row_at[i] for i, key in enumerate(owner) if want[i]}
        entry_row, entry_token, entry_label = [], [], []
        for j, toks in enumerate(self.label_tokens):
            for d, token in enumerate(toks):  # path row d predicts token d
                entry_row.append(0 if d == 0 else row_of[(j, d)])
                entry_token.append(token)
                entry_label.append(j)
        entries = _entry_log_probs(rows, entry_row, entry_token)
        return np.bincount(entry_label, weights=entries,
                           minlength=len(self.label_tokens))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="texts after a warm-up")
    args = parser.parse_args()
    trie = LlamaCppBackend(n_threads=1, n_threads_batch=1, seed=1)
    old = LlamaCppBackend(n_threads=1, n_threads_batch=1, seed=2)
    for backend in (trie, old):
        params = backend._get_model().llama.context_params
        assert params.n_threads == 1 and params.n_threads_batch == 1
    prompts, labels, label_tokens = default_prompts(30, trie, args.n + 1,
                                                    np.random.default_rng(0))
    streams = StreamScorer(label_tokens)
    seconds = {"old": 0.0, "trie": 0.0, "streams": 0.0}
    diffs = {"trie": [], "streams": []}
    for i, prompt in enumerate(prompts):
        got = {}
        for name in seconds:  # text by text, so that all share the load
            start = time.perf_counter()
            if name == "trie":
                got[name] = trie.score_labels([prompt], labels).log_probs[0]
            elif name == "old":
                tokens = np.asarray(old.tokenize(prompt.text), dtype=np.intc)
                got[name] = score_one_reference(old._get_model().llama, tokens,
                                                label_tokens)[0]
            else:
                tokens = np.asarray(trie.tokenize(prompt.text), dtype=np.intc)
                got[name] = streams.score(tokens)
            if i:  # the first text evaluates the whole prompt: a warm-up
                seconds[name] += time.perf_counter() - start
        for name in diffs:
            diffs[name].append(np.abs(got[name] - got["old"]).max())
    n_multi = len(streams.multi)
    print(f"30 question types ({n_multi} multi-token labels, "
          f"{sum(map(len, label_tokens))} label tokens), {args.n} texts after a "
          "warm-up, default 16-shot prompts, n_threads=1, n_threads_batch=1 "
          "(checked).")
    print(f"{'method':8s} {'s/text':>7s} {'vs old':>7s} "
          f" max|x-old| per text, warm-up first (nats)")
    for name, s in seconds.items():
        diff = ("(the oracle)" if name == "old"
                else " ".join(f"{d:.1e}" for d in diffs[name]))
        print(f"{name:8s} {s / args.n:7.3f} {seconds['old'] / s:6.2f}x  {diff}")


if __name__ == "__main__":
    main()
