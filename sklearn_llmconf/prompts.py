"""Prompt templates: how texts, labels and demonstrations become a prompt."""

from __future__ import annotations

import string
from dataclasses import dataclass

from ._labels import scored_label_strings
from .backends._base import Prompt

__all__ = ["PromptTemplate", "DEFAULT_TEMPLATE"]

# Chosen by measurement on SMS spam with SmolLM2-135M (benchmarks/bench_demos.py):
# a cloze cue ("Answer:") followed by a label word, with demonstrations in the
# same format, beat letter options and question-style prompts.
DEFAULT_TEMPLATE = "Classify each text as one of: {labels}.\n\nText: {text}\nAnswer:"

_RESERVED = {"labels"}


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt with named placeholders, the label list and few-shot demonstrations.

    The template is split at the start of the line holding its first field
    placeholder: what comes before are the *instructions* (shown once), what comes
    after is the *example block*, repeated for each demonstration (followed by its
    answer) and finally for the text to classify. The label is what the model
    should write right after the example block.

    Parameters
    ----------
    template : str
        A :meth:`str.format` string. ``{labels}`` is replaced by the verbalized
        label words joined by ``label_separator``; any other ``{name}`` is a field
        filled from X: ``{text}`` for 1-D input, or a column name for 2-D input.
    answer_prefix : str or None, default=None
        What separates the example block from the label word. None means a single
        space when the template ends with a non-space character, else nothing.
    demo_separator : str, default="\\n\\n"
        Placed between the instructions, each demonstration and the query.
    label_separator : str, default=", "
        Joins the label words for ``{labels}``.

    Examples
    --------
    >>> from sklearn_llmconf.prompts import PromptTemplate
    >>> t = PromptTemplate("Is it spam? {labels}\\n\\nSMS: {text}\\nAnswer:")
    >>> t.fields
    ('text',)
    >>> print(t.render({"text": "WIN CASH"}, ["ham", "spam"],
    ...                demos=[({"text": "hi mum"}, "ham")]).text)
    Is it spam? ham, spam
    <BLANKLINE>
    SMS: hi mum
    Answer: ham
    <BLANKLINE>
    SMS: WIN CASH
    Answer:
    """

    template: str
    answer_prefix: str | None = None
    demo_separator: str = "\n\n"
    label_separator: str = ", "

    def __post_init__(self):
        if not isinstance(self.template, str):
            raise TypeError(
                f"template must be a str, got {type(self.template).__name__}."
            )
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise ValueError(
                f"Invalid prompt template {self.template!r}: {exc}"
            ) from None
        for _, name, spec, conv in parsed:
            if name is None:
                continue
            if name == "" or name.isdigit():
                raise ValueError(
                    "Prompt placeholders must be named, e.g. {text}; got a "
                    f"positional placeholder in {self.template!r}."
                )
            if spec or conv:
                raise ValueError(
                    f"Placeholder {{{name}}} must not use a format spec or conversion."
                )
        if not self.fields:
            raise ValueError(
                "The prompt template has no field placeholder: add {text} (1-D X) "
                f"or a column name (2-D X). Got {self.template!r}."
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """Field placeholders filled from X, in order of first appearance."""
        seen = []
        for _, name, _, _ in string.Formatter().parse(self.template):
            if name is not None and name not in _RESERVED and name not in seen:
                seen.append(name)
        return tuple(seen)

    @property
    def _split(self) -> tuple[str, str]:
        """(instructions, example block)."""
        first = min(self.template.index("{" + f + "}") for f in self.fields)
        start = self.template.rfind("\n", 0, first) + 1
        return self.template[:start].rstrip("\n"), self.template[start:]

    @property
    def label_prefix(self) -> str:
        """The string placed between the example block and the label word."""
        if self.answer_prefix is not None:
            return self.answer_prefix
        return "" if self.template[-1:].isspace() else " "

    def label_strings(self, words) -> list[str]:
        """Return the strings the model is scored on, one per label word.

        ``label_prefix + word``; when one of these is a prefix of another (as
        ``" 1"`` of ``" 10"``), each also ends with ``demo_separator``, the text
        that follows an answer in the demonstrations, so that every label is
        scored as a complete answer and a label cannot take the probability of
        a longer one.
        """
        return scored_label_strings(self.label_prefix, words, self.demo_separator)

    def _block_segments(self, values: dict, labels_text: str) -> list[str]:
        """Render the example block as alternating literal / field segments."""
        _, block = self._split
        segments = [""]
        for literal, name, _, _ in string.Formatter().parse(block):
            segments[-1] += literal
            if name is None:
                continue
            if name in _RESERVED:
                segments[-1] += labels_text
            else:
                segments.extend([values[name], ""])
        return segments

    def render(
        self, values: dict, label_words, demos=(), *, labels_text=None
    ) -> Prompt:
        """Render one prompt.

        Parameters
        ----------
        values : dict
            Field name to text for the query.
        label_words : sequence of str
            The verbalized labels, in class order.
        demos : sequence of (dict, str)
            Demonstrations: field values and the label word of each.
        labels_text : str, default=None
            What ``{labels}`` shows; None joins ``label_words``. Letter codes use
            it to show what each letter stands for.

        Returns
        -------
        prompt : Prompt
        """
        if labels_text is None:
            labels_text = self.label_separator.join(label_words)
        instructions, _ = self._split
        # Instructions may use {labels}; demonstrations are literal template text
        # for the model (they are not the user's text to be truncated).
        literal = instructions.format(labels=labels_text)
        if literal:
            literal += self.demo_separator
        for demo_values, demo_label in demos:
            literal += "".join(self._block_segments(demo_values, labels_text))
            literal += self.label_prefix + demo_label + self.demo_separator
        segments = self._block_segments(values, labels_text)
        segments[0] = literal + segments[0]
        return Prompt(tuple(segments))
