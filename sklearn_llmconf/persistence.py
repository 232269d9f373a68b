"""Model files: a certified :class:`~sklearn_llmconf.routing.ConfidenceRouter`
(or :class:`~sklearn_llmconf.routing.MultiLabelRouter`) saved safely with
``skops.io``, its certificate and the model it holds for.

See :func:`save_model` and :func:`load_model`.
"""

from ._persistence import (
    TRUSTED_TYPES,
    ModelFileError,
    UnconfirmedBackendError,
    attach_backend,
    load_model,
    save_model,
)

__all__ = ["TRUSTED_TYPES", "ModelFileError", "UnconfirmedBackendError",
           "attach_backend", "load_model", "save_model"]
