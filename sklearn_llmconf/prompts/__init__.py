"""Prompts: the template, label verbalization, demonstrations and text normalisation.

- ``_template``: :class:`PromptTemplate` renders instructions, demonstrations and
  the text fields into one prompt.
- ``_labels``: label words, the ``{labels}`` text and the strings a backend scores.
- ``_demos``: the pool of labelled demonstrations (fixed or nearest per text).
- ``_text``: the duplicate key of a text and de-duplication of records.
"""

from ._demos import SimilarDemos
from ._template import DEFAULT_TEMPLATE, PromptTemplate, escape_field, shorten

__all__ = ["DEFAULT_TEMPLATE", "PromptTemplate", "SimilarDemos", "escape_field",
           "shorten"]
