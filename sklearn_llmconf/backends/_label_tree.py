"""Where each label token is read in a token tree of the labels."""

from __future__ import annotations

import numpy as np

__all__ = ["label_entries", "label_nodes"]


def label_nodes(label_tokens):
    """The nodes of the token tree of the labels' proper prefixes.

    Parameters
    ----------
    label_tokens : list of list of int

    Returns
    -------
    index : dict
        Node number of each proper prefix (tuple of ids).
    parent, depth, tokens : list of int
        Per node: its parent node (-1 for a child of the prompt), its depth
        and its token id, in breadth-first order.
    """
    index: dict[tuple, int] = {}
    parent, depth, tokens = [], [], []
    for d in range(1, max(len(t) for t in label_tokens)):
        for toks in label_tokens:
            if len(toks) > d and tuple(toks[:d]) not in index:
                index[tuple(toks[:d])] = len(tokens)
                parent.append(index.get(tuple(toks[: d - 1]), -1))
                depth.append(d)
                tokens.append(toks[d - 1])
    return index, parent, depth, tokens


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
