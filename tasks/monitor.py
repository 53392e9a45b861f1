"""Input drift against the training reference: PSI and the two-sample KS statistic per feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

PSI_THRESHOLD = 0.2
KS_THRESHOLD = 0.1


def population_stability_index(reference: np.ndarray, current: np.ndarray, *, bins: int = 10) -> float:
    """PSI over quantile bins of the reference; 0 means the same distribution, > 0.2 is usually drift."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if reference.size == 0 or current.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    interior = edges[1:-1] if edges.size > 2 else edges
    edges = np.concatenate([[-np.inf], interior, [np.inf]])
    eps = 1e-6
    ref_share = np.histogram(reference, edges)[0] / reference.size + eps
    cur_share = np.histogram(current, edges)[0] / current.size + eps
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, *, psi_threshold: float = PSI_THRESHOLD,
                  ks_threshold: float = KS_THRESHOLD) -> pd.DataFrame:
    """One row per feature common to both tables: psi, ks_statistic, ks_pvalue and whether it drifted."""
    rows = []
    for column in reference.columns.intersection(current.columns):
        ref = reference[column].to_numpy(dtype=float)
        cur = current[column].to_numpy(dtype=float)
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        psi = population_stability_index(ref, cur)
        ks = stats.ks_2samp(ref, cur) if ref.size and cur.size else None
        ks_stat = float(ks.statistic) if ks else float("nan")
        rows.append({
            "feature": str(column), "psi": psi, "ks_statistic": ks_stat,
            "ks_pvalue": float(ks.pvalue) if ks else float("nan"),
            "drifted": bool(psi > psi_threshold or ks_stat > ks_threshold),
        })
    return pd.DataFrame(rows, columns=["feature", "psi", "ks_statistic", "ks_pvalue", "drifted"])
