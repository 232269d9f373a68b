"""The only importer of private scikit-learn names.

scikit-learn does not keep names that start with an underscore, or that live
in its private modules, stable between releases. The package needs a few of
them (parameter validation, ``_fit_context``, the metadata-routing helpers a
meta-estimator uses); every one is imported here, once, so a release that
moves or changes one breaks this module only. Modules of the package import
these names from here, never from scikit-learn directly.

The supported range is stated in ``pyproject.toml``; CI runs the fast test
suite on the lowest supported release and the whole suite on the newest.
Where the releases in that range differ, the fallback below says which release
it stands in for.
"""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_params,
)
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.validation import (
    _check_method_params,
    _check_response_method,
    _check_sample_weight,
    _num_samples,
)

try:
    from sklearn.utils.metadata_routing import _manual_routing
except ImportError:  # scikit-learn 1.8: no _manual_routing yet (added in 1.9)
    from sklearn.utils import Bunch
    from sklearn.utils._metadata_requests import METHODS

    def _manual_routing(routing):
        """Build routed parameters by hand, shaped like ``process_routing``'s.

        A copy of scikit-learn 1.9's helper: every child gets a ``Bunch`` with
        every method name; methods not listed for a child get ``{}``.

        Parameters
        ----------
        routing : dict of str to (dict of str to dict) or None
            ``child_name -> (method_name -> kwargs)``.

        Returns
        -------
        routed_params : Bunch
            ``{child_name: {method_name: {metadata: value}}}``.
        """
        return Bunch(
            **{
                child: Bunch(
                    **{
                        method: dict((methods or {}).get(method, {}))
                        for method in METHODS
                    }
                )
                for child, methods in routing.items()
            }
        )


__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "_check_method_params",
    "_check_response_method",
    "_check_sample_weight",
    "_fit_context",
    "_manual_routing",
    "_num_samples",
    "_routing_enabled",
    "_safe_indexing",
    "validate_params",
]
