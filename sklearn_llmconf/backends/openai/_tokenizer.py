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
        """Look for a tokenizer on the server at ``base_url``.

        Returns
        -------
        tokenizer : ServerTokenizer or None
        definitive : bool
            False when an attempt failed for a reason that says nothing about
            the endpoints (authentication, rate limit, 5xx, no connection):
            the answer "no tokenizer" must then not be remembered.
        """
        parts = urlsplit(str(base_url))
        path = re.sub(r"/v1/?$", "", parts.path.rstrip("/"))
        root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        definitive = True
        for kind in ("extras", "cpp"):
            tok = cls(root, kind)
            try:
                if kind == "extras":
                    empty = await cls._post(
                        client, root + "/extras/tokenize", {"input": ""}
                    )
                    tok = cls(root, kind, tuple(empty["tokens"]))
                ids = await tok.tokenize(client, "Hello")
            except Exception as exc:
                definitive = definitive and _says_no_endpoint(exc)
                continue
            if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
                return tok, True
        return None, definitive

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


def _says_no_endpoint(exc) -> bool:
    """Whether a failed tokenize request shows that the endpoint is missing."""
    import openai

    if getattr(exc, "row_message", None):  # not sent: the breaker opened
        return False
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code < 500 and exc.status_code not in (401, 403, 408, 429)
    # A body that is not a token list (KeyError, JSON error): the server answered.
    return not isinstance(exc, openai.APIError)


@dataclass(frozen=True)
class LabelSpec:
    """How first-token scoring recognises each label.

    Attributes
    ----------
    keys : tuple of str
        Normalised first token of each label (:func:`._matching.norm`).
    bias : dict or None
        The ``logit_bias`` request field (token id as str -> bias), or None.
    spellings : tuple of int or None
        Per label, how many single tokens matching merges into it (known only
        with a tokenizer); bounds an absent label's probability.
    label_ids : tuple of tuple of int or None
        Per label, the token ids of those spellings (known with a tokenizer).
    """

    keys: tuple
    bias: dict | None
    spellings: tuple | None = None
    label_ids: tuple | None = None


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

    if tok is None:
        return LabelSpec(tuple(keys), None)
    # Every single-token spelling that matching merges: all are biased (or
    # ratios would shift), and their count bounds an absent label.
    ids, counts, per_label = set(first_ids), [], []
    for s, key, first in zip(strings, keys, first_ids, strict=True):
        core = s.strip()
        label_ids = {first}
        for variant in {core, core.lower(), core.capitalize(), core.upper()}:
            for v in (variant, " " + variant):
                vid = await tok.tokenize(client, v)
                if len(vid) == 1 and norm(await tok.piece(client, vid[0])) == key:
                    label_ids.add(vid[0])
        ids |= label_ids
        counts.append(len(label_ids))
        per_label.append(tuple(sorted(label_ids)))
    bias = {str(i): LOGIT_BIAS_VALUE for i in sorted(ids)} if use_bias else None
    return LabelSpec(tuple(keys), bias, tuple(counts), tuple(per_label))


class CallableTokenizer:
    """Token ids from a user callable ``text -> list of int`` (no server).

    The text of a token (needed to recognise a label's first token among the
    server's alternatives) is recovered from the callable itself: the longest
    prefix of the text whose tokenization is exactly that one id.

    Parameters
    ----------
    func : callable
        Maps a string to its token ids, without special tokens.
    """

    def __init__(self, func):
        self.func = func
        self._pieces: dict = {}

    async def tokenize(self, client, text: str) -> list[int]:
        """Token ids of ``text``."""
        ids = [int(i) for i in self.func(text)]
        if ids:
            self._remember_pieces(text, ids)
        return ids

    def _remember_pieces(self, text, ids):
        for end in range(len(text), 0, -1):
            if [int(i) for i in self.func(text[:end])] == [ids[0]]:
                self._pieces.setdefault(ids[0], text[:end])
                return

    async def piece(self, client, token_id: int) -> str:
        """The text of ``token_id``, known once a text starting with it was seen."""
        if token_id not in self._pieces:
            raise ValueError(
                f"token id {token_id} was not seen at the start of a tokenized "
                "text; the callable tokenizer cannot decode it"
            )
        return self._pieces[token_id]


class TiktokenTokenizer:
    """Token ids from tiktoken, for OpenAI models (no tokenize endpoint there).

    Parameters
    ----------
    model : str
        Model name; its encoding comes from ``tiktoken.encoding_for_model``
        (``o200k_base`` when tiktoken does not know the name).
    """

    def __init__(self, model):
        try:
            import tiktoken
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "tokenizer='tiktoken' needs tiktoken: pip install "
                "'sklearn-llmconf[tiktoken]'"
            ) from exc
        try:
            self.encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            self.encoding = tiktoken.get_encoding("o200k_base")

    async def tokenize(self, client, text: str) -> list[int]:
        """Token ids of ``text``."""
        return list(self.encoding.encode(text))

    async def piece(self, client, token_id: int) -> str:
        """The text of one token."""
        return self.encoding.decode([token_id])


async def resolve_tokenizer(backend, client):
    """The label tokenizer a backend's ``tokenizer`` parameter asks for.

    Returns
    -------
    tokenizer : object or None
        Something with ``async tokenize(client, text)`` and
        ``async piece(client, token_id)``; None: no token ids.
    definitive : bool
        False when the server's endpoints could not be asked (not to be
        remembered).
    """
    choice = getattr(backend, "tokenizer", "auto")
    if callable(choice):
        return CallableTokenizer(choice), True
    if choice == "tiktoken":
        return TiktokenTokenizer(backend.model), True
    if backend.base_url is not None:
        from ._client import strip_url_credentials

        tok, definitive = await ServerTokenizer.resolve(
            client, strip_url_credentials(str(backend.base_url))
        )
        if tok is None and choice == "server" and definitive:
            raise ValueError(
                "tokenizer='server' but the server has no tokenize endpoint "
                "(/extras/tokenize or /tokenize); pass tokenizer='tiktoken', a "
                "callable, or 'auto'."
            )
        return tok, definitive
    if choice == "auto":
        try:
            return TiktokenTokenizer(backend.model), True
        except Exception:  # not installed, or its encoding file not available
            return None, True
    raise ValueError("tokenizer='server' needs base_url (a server to ask).")
