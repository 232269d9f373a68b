"""What do 2, 6 and 30 labels cost on the embedded model, and what does first-token
scoring lose?

Speed, side by side in one run, per text, on the default (16-shot) prompts of
``LLMClassifier`` (each method has its own llama.cpp context, all with
``n_threads=1, n_threads_batch=1``, checked below, and they take turns text by
text, in reverse order every other text, so that they share the machine's
load):

- **old**: the sequential scorer of earlier versions (one decode of >= 2 tokens
  and one float64 log-softmax over the vocabulary per label prefix);
- **new**: ``LlamaCppBackend.score_labels`` (all labels in one batch, as a token
  trie sharing the prompt's KV cells);
- **raw**: llama-cpp-python's ``Llama.eval`` on exactly the tokens the new scorer
  evaluates (the prompt's new tokens followed by the trie's tokens), as one plain
  sequence, then the last position's logits: the floor for that many tokens;
- **raw rows**: the same tokens in one plain ``llama_decode``, returning the
  logits of the same positions the new scorer reads (the prompt's last token
  and every trie node): the floor for that much work, log-softmax excluded;
- **first**: ``scoring="first_token"`` (one position read per text);
- **2 labels**: ``scoring="first_token"`` on the set's first two labels, i.e.
  the binary single-token case on the same prompts;
- **old fa** / **new fa**: old and new with ``flash_attn=True`` (slower on this
  CPU build, and no closer to each other: ``max|old-new| fa``).

Every method's time starts from the prompt's text (tokenizing it is part of
the work) and ends with what it returns: scores, or logits for raw.

Label sets: k=2 SMS spam (``ham``/``spam``, single tokens); k=6 TREC coarse
classes in words; k=30 :func:`~sklearn_llmconf.datasets.load_question_types`
(multi-word names; first-token scoring needs names whose first tokens differ,
so four of them are re-worded by a verbalizer, used by every method); k=21
(speed only) 21 customs-style goods categories of about 5 tokens each (after
the sections of the Harmonized System) given to the question-type texts (one
name per question type): the shape of label set that motivated the one-batch
scorer.

Layout: the sequential scorer's own scores on four prompts, its label tokens
moved by 1, 3, 8 and 17 KV cells (another sequence holding the cells between
the prompt and them). What changes is only where llama.cpp keeps the tokens;
the change is the floor of any agreement between two scorers that place
tokens differently, the one-batch trie included.

Quality: accuracy, log loss and one-vs-rest AUC (averaged over the classes
present) of the raw (uncalibrated)
probabilities of full-sequence and first-token scoring on ``--n-quality``
held-out texts of the 6- and 30-label sets (the new scorer only). Run::

    python benchmarks/bench_labels.py [--n-speed 8] [--n-quality 100] [--threads 1]

A last table times evaluating four texts' 30-token suffixes in one decode
against one decode each, after a shared prefix, with one and two threads: the
gain that batching several texts would bring.
"""

import argparse
import time

import numpy as np
from scipy.special import softmax
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from sklearn_llmconf import LLMClassifier, PromptTemplate
from sklearn_llmconf.backends import LlamaCppBackend
from sklearn_llmconf.backends.llamacpp._scoring import (
    LabelTrie,
    _decode,
    keep_reusable_prefix,
    score_one_reference,
)
from sklearn_llmconf.datasets import load_question_types, load_sms_spam, load_trec
from sklearn_llmconf.prompts import DEFAULT_TEMPLATE

TREC_WORDS = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
              "HUM": "human being", "LOC": "location", "NUM": "numeric value"}
# 21 customs-style goods categories (after the sections of the Harmonized
# System), about 7 tokens each: the label shape of the held-out set.
GOODS = [
    "live animals and animal products", "vegetable products",
    "animal or vegetable fats and oils", "prepared foodstuffs and beverages",
    "mineral products", "products of the chemical industries",
    "plastics and rubber and articles thereof", "raw hides and skins and leather",
    "wood and cork and articles of wood", "pulp of wood and paper and paperboard",
    "textiles and textile articles", "footwear and headgear and umbrellas",
    "articles of stone and ceramic and glass", "pearls and precious stones and metals",
    "base metals and articles of base metal", "machinery and electrical equipment",
    "vehicles and aircraft and vessels", "optical and medical instruments",
    "arms and ammunition", "miscellaneous manufactured articles",
    "works of art and antiques",
]
# Names that share a first token with another name, re-worded.
QT_WORDS = {"other entity": "entity of another kind",
            "other location": "location of another kind",
            "other number": "quantity of another kind",
            "description of a person": "person description"}


def load_task(k, rng):
    if k == 21:  # speed only: goods names given to question texts
        X, y = load_question_types(return_X_y=True)
        codes = {c: GOODS[i % len(GOODS)] for i, c in enumerate(np.unique(y))}
        y = np.array([codes[c] for c in y])
        verbalizer = None
    elif k == 2:
        X, y = load_sms_spam(return_X_y=True)
        verbalizer = None
    elif k == 6:
        X, y = load_trec(return_X_y=True)
        verbalizer = TREC_WORDS
    else:
        X, y = load_question_types(return_X_y=True)
        verbalizer = {c: QT_WORDS.get(c, c) for c in np.unique(y)}
    idx = rng.permutation(len(X))
    return X[idx], y[idx], verbalizer


def make_backends(threads):
    """One context per method (the seed only keeps the loaded models apart)."""
    out = {name: LlamaCppBackend(n_threads=threads, n_threads_batch=threads,
                                 seed=seed)
           for seed, name in enumerate(["old", "new", "raw", "raw rows"])}
    for seed, name in ((4, "first"), (5, "2 labels")):
        out[name] = LlamaCppBackend(n_threads=threads, n_threads_batch=threads,
                                    seed=seed, scoring="first_token")
    for seed, name in ((6, "old fa"), (7, "new fa")):
        out[name] = LlamaCppBackend(n_threads=threads, n_threads_batch=threads,
                                    seed=seed, flash_attn=True)
    for backend in out.values():
        params = backend._get_model().llama.context_params
        assert params.n_threads == threads and params.n_threads_batch == threads
    return out


def run_raw(llama, tokens, trie):
    flat = np.concatenate([tokens, trie.node_tokens]).astype(np.intc)
    reuse = keep_reusable_prefix(llama, tokens)
    llama.eval(flat[reuse:])
    np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).copy()
    return len(flat) - reuse


def run_raw_rows(model, tokens, trie):
    llama = model.llama
    flat = np.concatenate([tokens, trie.node_tokens]).astype(np.intc)
    reuse = keep_reusable_prefix(llama, tokens)
    llama._ctx.kv_cache_seq_rm(-1, reuse, -1)
    new = flat[reuse:]
    want = np.zeros(len(new), dtype=np.int8)
    want[len(tokens) - reuse - 1:] = 1
    _decode(llama, model.batch, new, np.arange(reuse, len(flat)), [[0]] * len(new),
            want)
    llama.input_ids[reuse:len(flat)] = new
    llama.n_tokens = len(flat)
    return len(new)


def suffix_batching(backend, reps=4):
    """Tokens/s of four 30-token suffixes: one decode each vs one decode of 120."""
    llama = backend._get_model().llama
    X, y, _ = load_task(2, np.random.default_rng(0))
    clf = LLMClassifier(backend=backend, calibration=None,
                        random_state=0).fit(X[200:], y[200:])
    tokens = np.asarray(backend.tokenize(clf._render([(X[0],)])[0].text), np.intc)
    prefix = len(tokens) - 30
    llama.n_tokens = 0
    llama.eval(tokens[:prefix])
    extra = np.random.default_rng(0).integers(1000, 20000, 120).astype(np.intc)
    seconds = {"4 decodes of 30": 0.0, "1 decode of 120": 0.0}
    for rep in range(reps):
        for name in list(seconds)[:: 1 if rep % 2 else -1]:
            start = time.perf_counter()
            for chunk in np.split(extra, 4 if name.startswith("4") else 1):
                llama.n_tokens = prefix
                llama.eval(chunk)
            seconds[name] += time.perf_counter() - start
    return {name: reps * 120 / s for name, s in seconds.items()}


def default_prompts(k, backend, n, rng):
    """The default prompts of ``n`` texts of label set ``k``, its label strings
    and their tokens."""
    X, y, verbalizer = load_task(k, rng)
    clf = LLMClassifier(PromptTemplate(DEFAULT_TEMPLATE, verbalizer=verbalizer),
                        backend=backend, calibration=None,
                        random_state=0).fit(X[200:], y[200:])
    prompts = clf._render([(t,) for t in X[:n]])
    labels = clf.prompt_template_.label_strings(clf.label_words_)
    return prompts, labels, [backend.tokenize(lab, add_bos=False) for lab in labels]


def speed(k, backends, n_speed, rng):
    prompts, labels, label_tokens = default_prompts(k, backends["new"], n_speed + 1,
                                                    rng)
    trie = LabelTrie(label_tokens)
    seconds = dict.fromkeys(backends, 0.0)
    tokens_done = dict.fromkeys(backends, 0)
    diffs, fa_diffs = [], []
    for i, prompt in enumerate(prompts):
        row = {}
        # Every other text in reverse order, so that no method always follows
        # the same one (whose memory traffic it would inherit).
        for name, backend in list(backends.items())[:: -1 if i % 2 else 1]:
            llama = backend._get_model().llama
            start = time.perf_counter()
            # Every method starts from the prompt's text, as the scorer does.
            tokens = np.asarray(backend.tokenize(prompt.text), dtype=np.intc)
            if name.startswith("old"):
                row[name], used = score_one_reference(llama, tokens, label_tokens)
                n = sum(used)
            elif name == "raw":
                n = run_raw(llama, tokens, trie)
            elif name == "raw rows":
                n = run_raw_rows(backend._get_model(), tokens, trie)
            else:
                result = backend.score_labels(
                    [prompt], labels[:2] if name == "2 labels" else labels
                )
                row[name] = result.log_probs[0]
                n = result.usage.prompt_tokens + result.usage.completion_tokens
            if i:  # the first text evaluates the whole prompt: a warm-up
                seconds[name] += time.perf_counter() - start
                tokens_done[name] += n
        diffs.append(np.abs(row["old"] - row["new"]).max())
        fa_diffs.append(np.abs(row["old fa"] - row["new fa"]).max())
    mean_prompt = np.mean([len(backends["new"].tokenize(p.text)) for p in prompts])
    n_label_tokens = sum(len(t) for t in label_tokens)
    return {"k": k, "n": n_speed, "prompt_tokens": mean_prompt,
            "label_tokens": n_label_tokens, "trie_nodes": len(trie.node_tokens),
            "seconds": seconds, "tokens": tokens_done, "max_diff": max(diffs),
            "max_diff_fa": max(fa_diffs)}


def oracle_moved(k, backend, n, shifts=(1, 3, 8, 17)):
    """Largest change of the sequential scorer's own scores when its label
    tokens sit ``shift`` KV cells further on (another sequence holding the
    cells in between), per prompt: how far llama.cpp's numbers depend on the
    cell layout alone."""
    import llama_cpp

    prompts, _, label_tokens = default_prompts(k, backend, n,
                                               np.random.default_rng(0))
    model = backend._get_model()
    llama = model.llama
    memory = llama_cpp.llama_get_memory(llama._ctx.ctx)
    out = []
    for prompt in prompts:
        tokens = np.asarray(backend.tokenize(prompt.text), dtype=np.intc)
        scores = []
        for shift in (0, *shifts):
            llama_cpp.llama_memory_clear(memory, True)
            llama.n_tokens = 0
            llama.eval(tokens)  # cells 0..n-1
            if shift:  # cells n..n+shift, held by sequence 1
                filler = np.full(shift + 1, tokens[-1], dtype=np.intc)
                _decode(llama, model.batch, filler, np.arange(shift + 1),
                        [[1]] * (shift + 1), np.zeros(shift + 1, dtype=np.int8))
            scores.append(score_one_reference(llama, tokens, label_tokens)[0])
        out.append([np.abs(moved - scores[0]).max() for moved in scores[1:]])
    llama_cpp.llama_memory_clear(memory, True)
    llama.n_tokens = 0
    return shifts, np.array(out)


def macro_auc(y, proba, classes):
    """One-vs-rest AUC averaged over the classes present in ``y``."""
    present = [j for j, c in enumerate(classes) if 0 < np.sum(y == c) < len(y)]
    return np.mean([roc_auc_score(y == classes[j], proba[:, j]) for j in present])


def quality(k, backends, n_quality, rng):
    X, y, verbalizer = load_task(k, rng)
    rows = {}
    for name in ("new", "first"):
        clf = LLMClassifier(PromptTemplate(DEFAULT_TEMPLATE, verbalizer=verbalizer),
                            backend=backends[name], calibration=None,
                            random_state=0).fit(X[n_quality:], y[n_quality:])
        scores = clf.decision_function(X[:n_quality])
        proba = softmax(scores, axis=1)
        rows[name] = {
            "accuracy": accuracy_score(y[:n_quality], clf.classes_[proba.argmax(1)]),
            "log_loss": log_loss(y[:n_quality], proba, labels=clf.classes_),
            "auc": macro_auc(y[:n_quality], proba, clf.classes_),
        }
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-speed", type=int, default=8)
    parser.add_argument("--n-quality", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="n_threads and n_threads_batch of every context")
    args = parser.parse_args()
    backends = make_backends(args.threads)

    print(f"Speed: {args.n_speed} texts per label set after one warm-up text, "
          f"n_threads={args.threads}, n_threads_batch={args.threads} (checked).")
    methods = ["old", "new", "raw", "raw rows", "first", "2 labels", "old fa",
               "new fa"]
    print(f"{'k':>3s} {'prompt':>6s} {'label':>5s} {'trie':>5s} | "
          f"{'tokens/text':^17s} | {'texts/s':^71s}")
    print(f"{'':3s} {'tokens':>6s} {'tok.':>5s} {'nodes':>5s} | "
          f"{'old':>8s} {'new':>8s} | " + " ".join(f"{m:>8s}" for m in methods))
    print("-" * 114)
    results = {}
    for k in (2, 6, 30, 21):
        r = results[k] = speed(k, backends, args.n_speed, np.random.default_rng(0))
        r["rate"] = {m: r["n"] / s for m, s in r["seconds"].items()}
        per_text = {m: t / r["n"] for m, t in r["tokens"].items()}
        print(f"{k:3d} {r['prompt_tokens']:6.0f} {r['label_tokens']:5d} "
              f"{r['trie_nodes']:5d} | {per_text['old']:8.1f} {per_text['new']:8.1f} | "
              + " ".join(f"{r['rate'][m]:8.3f}" for m in methods))
    print(f"\n{'k':>3s} {'new/old':>8s} {'new/raw':>8s} {'new/raw rows':>12s} "
          f"{'first vs 2 labels (time)':>25s} {'max|old-new| (nats)':>20s} "
          f"{'fa: new/old':>11s} {'fa/no fa':>8s} {'max|old-new| fa':>16s}")
    for k, r in results.items():
        rate = r["rate"]
        print(f"{k:3d} {rate['new'] / rate['old']:8.2f} "
              f"{rate['new'] / rate['raw']:8.2f} "
              f"{rate['new'] / rate['raw rows']:12.2f} "
              f"{rate['2 labels'] / rate['first']:25.2f} {r['max_diff']:20.2e} "
              f"{rate['new fa'] / rate['old fa']:11.2f} "
              f"{rate['new fa'] / rate['new']:8.2f} {r['max_diff_fa']:16.2e}")

    print("\nThe sequential scorer against itself, its label tokens moved by a few "
          "KV cells\n(max |change| in nats, per prompt):")
    for k in (6, 30, 21):
        shifts, moved = oracle_moved(k, backends["old"], 4)
        print(f"{k:3d} labels, shifted by {'/'.join(map(str, shifts))} cells: "
              + "  ".join("/".join(f"{d:.0e}" for d in row) for row in moved))

    print(f"\nQuality of the raw probabilities, {args.n_quality} held-out texts, "
          "default (16-shot) prompts:")
    print(f"{'k':>3s} {'scoring':14s} {'accuracy':>8s} {'log loss':>8s} {'AUC':>6s}")
    for k in (6, 30):
        for name, q in quality(k, backends, args.n_quality,
                               np.random.default_rng(1)).items():
            label = "full_sequence" if name == "new" else "first_token"
            print(f"{k:3d} {label:14s} {q['accuracy']:8.3f} {q['log_loss']:8.3f} "
                  f"{q['auc']:6.3f}")

    print("\nSeveral texts' suffixes in one decode, after a shared prefix "
          "(tokens/s):")
    for threads in (1, 2):
        backend = LlamaCppBackend(n_threads=threads, n_threads_batch=threads,
                                  seed=10 + threads)
        rates = suffix_batching(backend, reps=6)
        print(f"  {threads} thread(s): "
              + "; ".join(f"{name}: {rate:.1f}" for name, rate in rates.items())
              + f"; gain {rates['1 decode of 120'] / rates['4 decodes of 30']:.2f}x")


if __name__ == "__main__":
    main()
