"""Small data samples shared by the tests."""

import numpy as np

from sklearn_llmconf.datasets import load_sms_spam

# Six keyword texts that KeywordBackend classifies by the words "spam"/"ham".
X_BIN = [
    "spam spam buy now",
    "hello ham friend",
    "win a spam prize",
    "ham sandwich for lunch",
    "free spam offer",
    "see you at home ham",
]
Y_BIN = ["spam", "ham", "spam", "ham", "spam", "ham"]


def short_sms(n, seed=0):
    """``n`` short SMS texts (a third spam) and a 200-text demonstration pool.

    Returns X_test, y_test, X_pool, y_pool; short texts keep real-model tests
    fast on 2 cores.
    """
    X_all, y_all = load_sms_spam(return_X_y=True)
    rng = np.random.RandomState(seed)
    idx = rng.permutation(len(X_all))
    idx = idx[[len(X_all[i]) < 120 for i in idx]]
    ham = idx[y_all[idx] == "ham"][: n - n // 3]
    spam = idx[y_all[idx] == "spam"][: n // 3]
    # The demonstration pool may hold long texts (few short texts are spam).
    rest = rng.permutation(len(X_all))
    pool = rest[~np.isin(rest, np.concatenate([ham, spam]))][:200]
    sel = rng.permutation(np.concatenate([ham, spam]))
    return list(X_all[sel]), y_all[sel], list(X_all[pool]), y_all[pool]
