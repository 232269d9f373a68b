"""The certificate as a text table (printed by ``fit``) and as rows (HTML)."""

from __future__ import annotations

__all__ = ["certificate_rows", "print_certificate"]

COLUMNS = ["tier", "target", "confidence >=", "precision lower bound",
           "accepted", "errors", "labels needed"]


def certificate_rows(description) -> list[list[str]]:
    """One row of strings per tier (the fallback tier last)."""
    from ..routing import required_calibration_size

    cert = description["certificate"]
    rows = []
    for t, name in enumerate(cert["tiers"]):
        thr, bound = cert["thresholds"][t], cert["precision_lower_bound"][t]
        if cert["certified"][t]:
            need = "-"
        else:
            least = required_calibration_size(cert["targets"][t],
                                              delta=cert["delta_per_test"] / 2)
            at_obs = cert["n_labels_needed"][t]
            need = f">= {least} error-free accepted" + (
                f"; ~{at_obs} at the observed precision" if at_obs else "")
        rows.append([
            name, f"{cert['targets'][t]:g}",
            f"{thr:.4f}" if thr is not None else "not certified",
            f"{bound:.3f}" if bound is not None else "-",
            str(cert["n_accepted"][t]), str(cert["n_errors"][t]), need,
        ])
    rows.append([cert["fallback_tier"], "-", "rest", "-", "-", "-", "-"])
    return rows


def print_certificate(description) -> None:
    """Print the certificate table and its conditions."""
    from ._bundled import _format_table

    cert = description["certificate"]
    print(_format_table(certificate_rows(description), COLUMNS))
    print(
        f"\ndelta={cert['delta']:g} split over {len(cert['tiers'])} tiers "
        f"({cert['delta_per_test']:.3g} each), method={cert['method']}; "
        f"{cert['n_calibration']} certification rows "
        f"({cert['n_failed_calibration']} failed)."
    )
