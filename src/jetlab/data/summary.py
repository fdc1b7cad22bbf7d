"""Looking at jet data: per-class summaries (``jetlab data info``); the plots of
``jetlab data plot`` are drawn by :mod:`jetlab.viz.data`.

Reading every file whole also validates it: a truncated file or a non-finite value
surfaces here as a one-line :class:`~jetlab.errors.InputError` naming the file.
"""

from __future__ import annotations

import numpy as np

from jetlab.io.jets import open_jets
from jetlab.io.layout import CLASS_NAMES

__all__ = ["format_summary", "half_sample_mode", "jet_observables", "jet_summary"]

_HLS4ML_OBSERVABLES = {
    "pt": "j_pt", "mass": "j_mass", "mass_mmdt": "j_mass_mmdt", "multiplicity": "j_multiplicity",
    "tau1": "j_tau1_b1", "tau2": "j_tau2_b1", "tau3": "j_tau3_b1",
}


def jet_observables(path) -> dict[str, np.ndarray]:
    """Per-jet arrays: label, pt, mass, mass_mmdt, multiplicity, tau21, tau32 (NaN where unknown), n_listed."""
    jets = open_jets(path)
    columns: dict[str, list] = {
        k: [] for k in ("label", "pt", "mass", "mass_mmdt", "multiplicity", "tau21", "tau32", "n_listed")
    }
    for file in jets.files:
        _, mask = file.particles()  # reads the whole list: validates it too
        columns["label"].append(file.labels())
        columns["n_listed"].append(mask.sum(axis=1))
        if file.layout == "jetnet":
            jf = file.jet_features()
            columns["pt"].append(jf[:, 0]), columns["mass"].append(jf[:, 2]), columns["multiplicity"].append(jf[:, 3])
            nan = np.full(file.n_jets, np.nan, dtype=np.float32)
            columns["tau21"].append(nan), columns["tau32"].append(nan), columns["mass_mmdt"].append(nan)
            continue
        v = dict(zip(_HLS4ML_OBSERVABLES, file.jet_features(None, list(_HLS4ML_OBSERVABLES.values())).T))
        columns["pt"].append(v["pt"]), columns["mass"].append(v["mass"]), columns["multiplicity"].append(v["multiplicity"])
        columns["mass_mmdt"].append(v["mass_mmdt"])
        columns["tau21"].append(_ratio(v["tau2"], v["tau1"]))
        columns["tau32"].append(_ratio(v["tau3"], v["tau2"]))
        if file.has_images:
            file.images()  # validate
        file.close()
    return {k: np.concatenate(v) for k, v in columns.items()}


def _ratio(a, b):
    return np.divide(a, b, out=np.full_like(a, np.nan), where=b > 0)


def half_sample_mode(x) -> float:
    """Robust estimate of the peak of a distribution (Bickel's half-sample mode): keep the
    narrowest half of the sorted values, repeatedly, and average the last few."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan")
    while len(x) > 3:
        h = (len(x) + 1) // 2
        widths = x[h - 1 :] - x[: len(x) - h + 1]
        start = int(np.argmin(widths))
        x = x[start : start + h]
    return float(x.mean())


def jet_summary(path) -> dict:
    """{"path", "n_jets", "n_particles", "classes": {name: {n, pt, mass, mass_mmdt, multiplicity,
    n_listed: {mean, std, median, peak}}}}; "peak" is the half-sample mode."""
    jets = open_jets(path)
    obs = jet_observables(path)
    classes = {}
    for label, name in enumerate(CLASS_NAMES):
        sel = obs["label"] == label
        if not sel.any():
            continue
        classes[name] = {"n": int(sel.sum())}
        for key in ("pt", "mass", "mass_mmdt", "multiplicity", "n_listed"):
            x = obs[key][sel]
            classes[name][key] = {
                "mean": float(np.mean(x)), "std": float(np.std(x)), "median": float(np.median(x)),
                "peak": half_sample_mode(x),
            }
    return {"path": str(path), "layout": jets.layout, "n_jets": jets.n_jets, "n_particles": jets.n_particles, "n_files": len(jets.files), "classes": classes}


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['path']}: {summary['n_jets']} jets in {summary['n_files']} {summary['layout']} file(s), "
        f"{summary['n_particles']} particles per jet",
        f"{'class':>5} {'jets':>6} {'pT mean±std [GeV]':>19} {'mass peak':>9} {'median':>7} {'mMDT peak':>9} "
        f"{'multiplicity':>13} {'listed':>6}",
    ]
    for name, s in summary["classes"].items():
        lines.append(
            f"{name:>5} {s['n']:>6d} {s['pt']['mean']:>10.1f} ± {s['pt']['std']:<6.1f} {s['mass']['peak']:>9.1f} "
            f"{s['mass']['median']:>7.1f} {s['mass_mmdt']['peak']:>9.1f} "
            f"{s['multiplicity']['mean']:>7.1f} ± {s['multiplicity']['std']:<4.1f} {s['n_listed']['mean']:>6.1f}"
        )
    lines.append("(masses in GeV; peak = half-sample mode; mMDT = soft-drop groomed, beta = 0, z_cut = 0.1)")
    return "\n".join(lines)
