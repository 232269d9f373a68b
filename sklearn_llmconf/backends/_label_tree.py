"""Where each label token is read in a token tree of the labels."""

from __future__ import annotations

import numpy as np

__all__ = ["label_entries"]


def label_entries(label_tokens, index):
    """Row, token and label of every token of every label in a label tree.

    Parameters
    ----------
    label_tokens : list of list of int
        Token ids of each label.
    index : dict
        Node number of each proper prefix (tuple of ids) in the tree; row 0 is
        the prompt's last position, row ``1 + node`` the position of a node.

    Returns
    -------
    entry_row, entry_token, entry_label : ndarray of intp
        For the ``d``-th token of label ``j``: the row whose next-token
        distribution scores it, the token and ``j``.
    """
    rows, tokens, labels = [], [], []
    for j, toks in enumerate(label_tokens):
        for d, tok in enumerate(toks):
            rows.append(0 if d == 0 else 1 + index[tuple(toks[:d])])
            tokens.append(tok)
            labels.append(j)
    return (np.asarray(rows, dtype=np.intp), np.asarray(tokens, dtype=np.intp),
            np.asarray(labels, dtype=np.intp))
