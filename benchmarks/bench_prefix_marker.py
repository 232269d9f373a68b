"""End marker for labels that are prefixes of others: "\n" vs "\n\n".

Zero-shot, classes 1..12, texts "Answer: N" on the embedded model; prints the
predicted class, the probability mass on the labels, and the top label
probabilities for each marker. Results: benchmarks/results/prefix_marker.txt.

    python benchmarks/bench_prefix_marker.py
"""
import numpy as np

from sklearn_llmconf import LLMClassifier
from sklearn_llmconf.backends import LlamaCppBackend

PROMPT = "Copy the number.\n\nText: {text}\nAnswer:"
C = list(range(1, 13))
be = LlamaCppBackend(n_threads=1)
clf = LLMClassifier(PROMPT, backend=be, n_shots=0, calibration=None).fit(
    [f"Answer: {c}" for c in C], C)
asked = [12, 10, 1]
prompts = clf._render([(f"Answer: {c}",) for c in asked])
for end in ["\n", "\n\n"]:
    r = be.score_labels(prompts, [f" {c}{end}" for c in C])
    lp = r.log_probs
    mass = np.exp(lp).sum(1).round(3)
    print(repr(end), "pred", [C[i] for i in lp.argmax(1)], "mass", mass, flush=True)
    for a, row in zip(asked, lp):
        top = {c: round(float(np.exp(v)), 3) for c, v in zip(C, row)
               if np.exp(v) > 0.01}
        print("  ", a, top, flush=True)
texts = [" 1", " 12", " 12\n", " 12\n\n", "\n", "\n\n"]
print([be.tokenize(s, add_bos=False) for s in texts])
