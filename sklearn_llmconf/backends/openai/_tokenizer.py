"""The server's tokenizer and the label specification for first-token scoring."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ._matching import norm

# Added to the logit of every label-token id when ``logit_bias`` is active. Large
# enough to pull a label ranked far below the top-k into it, small enough that
# the non-label mass stays representable (a bias near 100 leaves 1 - sum(p) to
# round-off).
LOGIT_BIAS_VALUE = 10.0


@dataclass(frozen=True)
class ServerTokenizer:
    """Token ids and texts from a llama.cpp-style server's tokenize endpoints.

    Supports llama-cpp-python (``/extras/tokenize``, ``/extras/detokenize``) and
    the C++ ``llama-server`` (``/tokenize``, ``/detokenize``, untested here).
    Holds no client: every call is given the client of the current request, so
    one tokenizer can serve calls running on different event loops.

    Attributes
    ----------
    root : str
        Server URL without ``/v1``.
    kind : {"extras", "cpp"}
        Which endpoint family answered.
    bos : tuple of int
        Token ids the ``extras`` endpoint prepends to every text (learned from
        the empty string), stripped from every answer.
    """

    root: str
    kind: str
    bos: tuple = ()

    @staticmethod
    async def _post(client, url, body):
        import httpx2

        response = await client.post(url, cast_to=httpx2.Response, body=body)
        return response.json()

    @classmethod
    async def resolve(cls, client, base_url):
        """Return a tokenizer for the server at ``base_url``, or None."""
        parts = urlsplit(str(base_url))
        path = re.sub(r"/v1/?$", "", parts.path.rstrip("/"))
        root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        for kind in ("extras", "cpp"):
            tok = cls(root, kind)
            try:
                if kind == "extras":
                    empty = await cls._post(
                        client, root + "/extras/tokenize", {"input": ""}
                    )
                    tok = cls(root, kind, tuple(empty["tokens"]))
                ids = await tok.tokenize(client, "Hello")
            except Exception:
                continue
            if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
                return tok
        return None

    async def tokenize(self, client, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""
        if self.kind == "extras":
            data = await self._post(
                client, self.root + "/extras/tokenize", {"input": text}
            )
            ids = list(data["tokens"])
            n = len(self.bos)
            if n and tuple(ids[:n]) == self.bos:
                ids = ids[n:]
            return ids
        data = await self._post(
            client, self.root + "/tokenize", {"content": text, "add_special": False}
        )
        return [t["id"] if isinstance(t, dict) else t for t in data["tokens"]]

    async def piece(self, client, token_id: int) -> str:
        """The text of one token."""
        if self.kind == "extras":
            data = await self._post(
                client, self.root + "/extras/detokenize", {"tokens": [token_id]}
            )
            return data["text"]
        data = await self._post(
            client, self.root + "/detokenize", {"tokens": [token_id]}
        )
        return data["content"]


@dataclass(frozen=True)
class LabelSpec:
    """How first-token scoring recognises each label.

    Attributes
    ----------
    keys : tuple of str
        Normalised first token of each label (:func:`._matching.norm`).
    bias : dict or None
        The ``logit_bias`` request field (token id as str -> bias), or None.
    """

    keys: tuple
    bias: dict | None


def _shared_first_token_error(first, second, key):
    return ValueError(
        f"Labels {first!r} and {second!r} share their first token "
        f"{key!r} (after merging case and leading-space variants), so "
        "first-token scoring cannot tell them apart. Use single-token "
        "labels that differ in their first token, e.g. letter codes "
        "(verbalizer='letters' on the classifier), or full-sequence "
        "scoring on a server that supports it."
    )


async def build_label_spec(client, tok, labels, strings, use_bias) -> LabelSpec:
    """Tokenize the labels (when a tokenizer exists) and build their spec.

    Parameters
    ----------
    client : openai.AsyncOpenAI
    tok : ServerTokenizer or None
    labels : list of str
        The labels as given (for messages).
    strings : list of str
        The labels as the model would produce them.
    use_bias : bool
        Build a ``logit_bias`` dict (needs ``tok``).

    Raises
    ------
    ValueError
        Labels without tokens, or whose first tokens coincide.
    """
    firsts, first_ids = [], []
    for s in strings:
        if tok is not None:
            ids = await tok.tokenize(client, s)
            if not ids:
                raise ValueError(f"Label {s!r} has no tokens.")
            firsts.append(await tok.piece(client, ids[0]))
            first_ids.append(ids[0])
        else:
            firsts.append(s)
    keys = [norm(f) for f in firsts]
    for lab, key in zip(labels, keys, strict=True):
        if not key:
            raise ValueError(f"Label {lab!r} has an empty first token.")
    seen: dict = {}
    for lab, key in zip(labels, keys, strict=True):
        if key in seen:
            raise _shared_first_token_error(seen[key], lab, key)
        seen[key] = lab

    bias = None
    if tok is not None and use_bias:
        ids = set(first_ids)
        # Bias every spelling that matching merges, or ratios would shift.
        for s, key in zip(strings, keys, strict=True):
            core = s.strip()
            for variant in {core, core.lower(), core.capitalize(), core.upper()}:
                for v in (variant, " " + variant):
                    vid = await tok.tokenize(client, v)
                    if len(vid) == 1 and norm(await tok.piece(client, vid[0])) == key:
                        ids.add(vid[0])
        bias = {str(i): LOGIT_BIAS_VALUE for i in sorted(ids)}
    return LabelSpec(tuple(keys), bias)
