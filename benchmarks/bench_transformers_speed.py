"""Label scoring speed: TransformersBackend vs LlamaCppBackend vs CAPPr.

The same prompts (4-shot ``LLMClassifier`` prompts; SMS spam, 2 labels, and
the 30 question types, multi-word names) scored by:

- **ours f32** / **ours bf16**: ``TransformersBackend`` (float32 / bfloat16,
  ``n_threads=1``): all labels of a prompt as a token tree in the prompt's
  forward pass, the prompts' shared prefix evaluated once;
- **llama.cpp**: ``LlamaCppBackend(n_threads=1, n_threads_batch=1)`` on the
  same GGUF file (quantized weights);
- **cappr**: CAPPr 0.9.6's transformers path
  (``cappr.huggingface.classify.cache_model`` on the shared prefix, then
  ``log_probs_conditional`` of the prompt's rest and each label), float32,
  ``torch.set_num_threads(1)``. CAPPr 0.9.6 does not import with transformers
  5 (``DynamicCache.from_legacy_cache`` is gone), so it runs in a worker
  process of a virtual environment with transformers 4.57.6 (``--cappr-python``),
  started by this script in the same run, on the same prompts and tokens
  (transformers 4.57's GGUF tokenizer would add a BOS token; it is turned
  off). CAPPr's ``max|d|`` is its prefix-cached path's own deviation: in a
  one-prompt check outside this script, CAPPr without the cache gave the
  plain forward pass's scores on the same tokens; not investigated further.

Times per text exclude model loading; each method scores all prompts of a
task in one call, in two rounds (second round in reverse method order), and
the table gives seconds per text and the ratio to **ours f32**. Run::

    python benchmarks/bench_transformers_speed.py [--n 8] \\
        [--cappr-python /tmp/venv-cappr/bin/python] [--cuda]

``--cuda`` adds the backend on ``device="cuda"`` (float32, bfloat16) to the
same run, with the GPU's name in the header.

Results: ``benchmarks/results/bench_transformers_speed.txt``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import (
    LlamaCppBackend,
    TransformersBackend,
    default_model_path,
)
from sklearn_llmconf.datasets import load_question_types, load_sms_spam

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPPR_WORKER = r'''
import json, sys, time, os
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer
from cappr.huggingface.classify import cache_model, log_probs_conditional
job = json.load(sys.stdin)
folder, name = os.path.split(job["gguf"])
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
    dtype=torch.float32, local_files_only=True).eval()
# transformers 4.57 reads this GGUF tokenizer as Llama's and adds a BOS token
# that transformers 5 and llama.cpp do not: the same tokens for all methods.
tok.add_bos_token = False
tok.update_post_processor()
# A GGUF-loaded config has no architectures list; CAPPr reads it.
model.config.architectures = [type(model).__name__]
out = {}
for task, (prefix, rests, labels) in job["tasks"].items():
    start = time.perf_counter()
    cached = cache_model((model, tok), prefix)
    lp = log_probs_conditional(rests, labels, cached, end_of_prompt="")
    seconds = time.perf_counter() - start
    out[task] = {"seconds": seconds,
                 "scores": [[float(sum(t)) for t in row] for row in lp]}
print(json.dumps(out))
'''


def task_prompts(task, n):
    X, y = (load_sms_spam if task == "sms" else load_question_types)(
        return_X_y=True)
    X, first = np.unique(X, return_index=True)
    y = y[first]
    idx = np.random.default_rng(0).permutation(len(X))
    X, y = X[idx], y[idx]
    clf = LLMClassifier(backend=LlamaCppBackend(n_threads=1, n_threads_batch=1),
                        n_shots=4, calibration=None, random_state=0)
    clf.fit(X[:300], y[:300])
    prompts = [p.text for p in clf._render([(t,) for t in X[300:300 + n]])]
    labels = clf.prompt_template_.label_strings(clf.label_words_)
    return prompts, labels


def shared_prefix(texts):
    prefix = os.path.commonprefix(texts)
    # Cut before the whitespace ending the last shared line: byte-level BPE
    # merges a run of newlines, so prefix + rest tokenize as the whole prompt.
    return prefix[:prefix.rfind("\n") + 1].rstrip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--cappr-python", default="/tmp/venv-cappr/bin/python")
    parser.add_argument("--cuda", action="store_true",
                        help="also time the backend on device='cuda'")
    parser.add_argument("--out",
                        default="benchmarks/results/bench_transformers_speed.txt")
    args = parser.parse_args()
    tasks = {t: task_prompts(t, args.n) for t in ("sms", "qt")}
    methods = {
        "ours f32": TransformersBackend(dtype="float32", device="cpu", n_threads=1),
        "ours bf16": TransformersBackend(dtype="bfloat16", device="cpu",
                                         n_threads=1),
        "llama.cpp": LlamaCppBackend(n_threads=1, n_threads_batch=1),
    }
    gpu = ""
    if args.cuda:  # scores come back as numpy arrays: the timing is synchronous
        import torch

        gpu = f"; cuda: {torch.cuda.get_device_name()}"
        methods["cuda f32"] = TransformersBackend(dtype="float32", device="cuda")
        methods["cuda bf16"] = TransformersBackend(dtype="bfloat16", device="cuda")
    for backend in methods.values():  # load outside the timing
        backend.score_labels(["warm up"], [" a", " b"])
    seconds = {(m, t): 0.0 for m in methods for t in tasks}
    scores = {}
    for rnd in range(2):
        for name, backend in list(methods.items())[:: -1 if rnd else 1]:
            for task, (prompts, labels) in tasks.items():
                start = time.perf_counter()
                scores[name, task] = backend.score_labels(prompts, labels).log_probs
                seconds[name, task] += (time.perf_counter() - start) / 2
    job = {"gguf": str(default_model_path()), "tasks": {}}
    for task, (prompts, labels) in tasks.items():
        prefix = shared_prefix(prompts)
        job["tasks"][task] = (prefix, [p[len(prefix):] for p in prompts], labels)
    proc = subprocess.run([args.cappr_python, "-c", CAPPR_WORKER],
                          input=json.dumps(job), capture_output=True, text=True)
    if proc.returncode == 0:
        cappr = json.loads(proc.stdout.strip().splitlines()[-1])
        for task in tasks:
            seconds["cappr", task] = cappr[task]["seconds"]
            scores["cappr", task] = np.array(cappr[task]["scores"])
    else:
        print(proc.stderr[-2000:], file=sys.stderr)
    names = list(methods) + (["cappr"] if ("cappr", "sms") in seconds else [])
    lines = [__doc__.split("\n")[0],
             f"{args.n} texts per task, 1 thread each (torch.set_num_threads(1); "
             f"llama.cpp n_threads=n_threads_batch=1){gpu}",
             f"{'method':<11}" + "".join(f"{t + ' s/text':>13}{'ratio':>7}"
                                         f"{'max|d| f32':>11}" for t in tasks)]
    for name in names:
        row = f"{name:<11}"
        for task in tasks:
            s = seconds[name, task] / args.n
            ref = seconds["ours f32", task] / args.n
            diff = np.abs(scores[name, task] - scores["ours f32", task]).max()
            row += f"{s:13.3f}{s / ref:7.2f}{diff:11.2e}"
        lines.append(row)
    print("\n".join(lines))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
