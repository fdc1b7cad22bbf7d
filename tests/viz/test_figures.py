"""Figures a physicist can read at a glance: what the plotting functions draw, checked on
the returned (closed) figures and on real Pythia jets.

* ROC: the y axis stops at the smallest mistag rate the test set resolves, 1/N_background;
* training curves: integer epoch ticks, no text overlapping other text;
* generation histograms: every panel has a y label, none is a single bin;
* jet images: a labelled colour bar.
"""

from __future__ import annotations

import itertools
import json

import matplotlib
import numpy as np
import pytest

from jetlab.io.jets import open_jets
from jetlab.metrics.tagging import roc_curve
from jetlab.viz.data import draw_average_images, plot_jets
from jetlab.viz.samples import (
    multiplicity_is_informative,
    plot_jet_feature_histograms,
    plot_jet_images,
    plot_point_cloud_comparison,
)
from jetlab.viz.style import OVERFLOW_NOTE, with_overflow
from jetlab.viz.tagging import fpr_floor, plot_roc, plot_roc_comparison, plot_training_curve


def _scores(labels: np.ndarray, n_classes: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += 1.0
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def _png_ok(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- ROC ---------------------------------------------------------------------------------------
def test_roc_y_axis_stops_at_one_over_background(tmp_path):
    # classes of 10, 20, 30, 40, 50 jets: the largest background is 150 - 10 = 140 jets (class g)
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    fig = plot_roc(labels, _scores(labels), "gqwzt", tmp_path / "roc.png")
    _png_ok(tmp_path / "roc.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_ylim() == pytest.approx((1 / 140, 1.0))
    assert "FPR" in ax.get_ylabel() and "TPR" in ax.get_xlabel()


@pytest.mark.parametrize("n_signal, n_background", [(25, 75), (450, 1800)])
def test_roc_comparison_floor_from_the_curves_and_given(tmp_path, n_signal, n_background):
    is_signal = np.r_[np.ones(n_signal, bool), np.zeros(n_background, bool)]
    rng = np.random.default_rng(1)
    curves = {}
    for model in ("jedinet", "dnn"):
        fpr, tpr, _ = roc_curve(is_signal, rng.normal(size=is_signal.size) + is_signal)
        curves[model] = (fpr, tpr)
    fig = plot_roc_comparison(curves, tmp_path / "roc_t.png", title="t tagger")
    assert fig.axes[0].get_ylim()[0] == pytest.approx(1 / n_background)
    fig = plot_roc_comparison(curves, tmp_path / "roc_t.png", title="t tagger", n_background=3 * n_background)
    assert fig.axes[0].get_ylim()[0] == pytest.approx(fpr_floor(3 * n_background))


def test_fpr_floor_needs_background():
    assert fpr_floor(2250) == pytest.approx(1 / 2250)
    with pytest.raises(ValueError):
        fpr_floor(0)


# -- training curves -------------------------------------------------------------------------------
def _history(n_epochs: int) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.4 * 0.95**e, "val_loss": 1.3 * 0.97**e, "train_accuracy": 0.4 + 0.01 * e,
             "val_accuracy": 0.45 + 0.01 * e, "lr": 1e-3 * 0.5 ** (e // 4)} for e in range(1, n_epochs + 1)]


def _texts(fig):
    """(axes index, window extent) of every visible, non-empty text of the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the closed figure lost its canvas: lay it out again, as saved
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    for i, ax in enumerate(fig.axes):
        labels = [ax.xaxis.label, ax.yaxis.label, ax.title]
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            labels += [tick.label1 for tick in axis.get_major_ticks() if lo <= tick.get_loc() <= hi]
        for text in labels:
            if text.get_visible() and text.get_text():
                found.append((i, text.get_window_extent(renderer)))
    return found


@pytest.mark.parametrize("n_epochs", [1, 3, 25, 120])
def test_training_curve_integer_epochs_and_no_overlapping_text(tmp_path, n_epochs):
    fig = plot_training_curve(_history(n_epochs), tmp_path / "curve.png", title="jedinet")
    _png_ok(tmp_path / "curve.png")
    assert len(fig.axes) == 3
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_ylabel()
    texts = _texts(fig)
    for (i, a), (j, b) in itertools.combinations(texts, 2):
        if i != j:
            assert not a.overlaps(b), (i, j, a, b)
    for i, text in texts:  # nor into another panel's plotting area
        for j, ax in enumerate(fig.axes):
            if i != j:
                assert not text.overlaps(ax.bbox), (i, j, text, ax.bbox)


def test_training_curve_marks_the_best_epoch_in_every_panel(tmp_path):
    fig = plot_training_curve(_history(10), tmp_path / "curve.png", best_epoch=7)
    for ax in fig.axes:
        marks = [line for line in ax.lines if line.get_label() == "best epoch (7)"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [7, 7]


def test_roc_of_one_class_is_not_drawn(tmp_path):
    labels = np.full(20, 4)  # e.g. generated top jets only: no background for any class
    assert plot_roc(labels, _scores(labels), list("gqwzt"), tmp_path / "roc.png") is None
    assert not (tmp_path / "roc.png").exists()


def test_training_curve_without_accuracy_or_lr(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e} for e in (1, 2)]
    fig = plot_training_curve(history, tmp_path / "curve.png")
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy loss"]


# -- generated vs real jets ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def top_jets(tiny_jets_dir):
    """(eta_rel, phi_rel, pT_rel) and mask of the real top jets of the tiny set, 30 particles."""
    jets = open_jets(tiny_jets_dir)
    index = np.nonzero(jets.labels() == 4)[0]
    return jets.read(index, "particles", ["etarel", "phirel", "ptrel"])


def _hist_panels(fig):
    return [ax for ax in fig.axes if ax.axison]


def _bins_drawn(ax) -> int:
    """Bins of the widest histogram of a panel (step patches are one polygon per histogram)."""
    widest = 0
    for patch in ax.patches:
        xs = np.unique(np.round(patch.get_path().vertices[:, 0], 12))
        widest = max(widest, len(xs) - 1)
    return widest


def test_histograms_label_every_axis_and_drop_the_one_bin_multiplicity(tmp_path, top_jets):
    points, mask = top_jets
    full = np.ones_like(mask)  # every jet with all 30 particles: one multiplicity
    fig = plot_jet_feature_histograms(points, full, points[::-1], full, tmp_path / "h.png")
    _png_ok(tmp_path / "h.png")
    panels = _hist_panels(fig)
    assert len(panels) == 6 and "nearest particle" in panels[3].get_xlabel()
    assert all(ax.get_ylabel() and ax.get_xlabel() for ax in panels)
    assert all(_bins_drawn(ax) > 1 for ax in panels)
    words = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "100% with 30" in words


def test_histograms_keep_an_informative_multiplicity_panel(tmp_path, top_jets):
    points, mask = top_jets
    rng = np.random.default_rng(2)
    generated_mask = mask.copy()
    generated_mask[:, 20:] &= rng.random((len(mask), 10)) < 0.5
    fig = plot_jet_feature_histograms(points, mask, points, generated_mask, tmp_path / "h.png")
    panels = _hist_panels(fig)
    assert len(panels) == 7
    assert panels[-1].get_xlabel() == "particles per jet" and panels[-1].get_ylabel()
    assert all(_bins_drawn(ax) > 1 for ax in panels)


def test_histograms_span_the_jet_radius_and_keep_the_overflow(tmp_path, top_jets):
    points, mask = top_jets
    fig = plot_jet_feature_histograms(points, mask, points, mask, tmp_path / "h.png")
    panels = _hist_panels(fig)
    for ax in panels[:2]:  # eta_rel, phi_rel: the whole jet, R = 0.8
        lo, hi = ax.get_xlim()
        assert lo <= -0.8 and hi >= 0.8
    for ax in panels:
        assert OVERFLOW_NOTE in [t.get_text() for t in ax.texts]


def test_with_overflow_puts_every_entry_in_a_bin():
    bins = np.linspace(0.0, 1.0, 11)
    values = np.array([-3.0, 0.05, 0.5, 1.0, 7.0])
    counts, _ = np.histogram(with_overflow(values, bins), bins=bins)
    assert counts.sum() == len(values)
    assert counts[0] == 2 and counts[-1] == 2  # the underflow and the overflow (1.0 itself: last bin)


def test_multiplicity_is_informative():
    assert not multiplicity_is_informative(np.full(5, 30), np.full(4, 30))
    assert not multiplicity_is_informative(np.array([29, 30]), np.array([30]))
    assert multiplicity_is_informative(np.array([28, 30]), np.array([29]))


def test_jet_images_have_colour_bars(tmp_path, top_jets):
    points, mask = top_jets
    fig = plot_jet_images(points, mask, points[::-1], mask[::-1], tmp_path / "img.png", n_single=2)
    _png_ok(tmp_path / "img.png")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2  # one for the mean images, one for the single jets
    assert all("p_T" in bar.get_ylabel() for bar in bars)
    assert len(fig.axes) == 2 * 3 + 2


def test_jet_images_put_eta_along_x_as_the_data_plots_do(tmp_path):
    points = np.zeros((2, 3, 3))
    points[:, 0] = (0.5, 0.0, 1.0)  # one particle at eta_rel = 0.5, phi_rel = 0
    mask = np.zeros((2, 3), dtype=bool)
    mask[:, 0] = True
    fig = plot_jet_images(points, mask, points, mask, tmp_path / "img.png", n_single=0)
    ax = fig.axes[0]
    assert "eta" in ax.get_xlabel() and "phi" in ax.get_ylabel()
    shown = np.nan_to_num(np.asarray(ax.images[0].get_array(), dtype=float))
    row, col = np.unravel_index(np.argmax(shown), shown.shape)  # origin="lower": row = y, col = x
    assert col == int((0.5 + 0.8) / 1.6 * 100) and row == 50


def test_point_cloud_comparison_has_an_intensity_scale(tmp_path):
    rng = np.random.default_rng(0)
    digits = rng.random((4, 10, 3))
    fig = plot_point_cloud_comparison(digits, None, digits[::-1], None, tmp_path / "d.png", n=4)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "intensity" in bars[0].get_ylabel()


# -- jet data plots ----------------------------------------------------------------------------------
def test_average_images_share_one_labelled_colour_scale():
    rng = np.random.default_rng(3)
    means = {"w": rng.random((100, 100)) * 5.0, "t": rng.random((100, 100)) * 50.0}
    means["w"][0, 0] = 0.0
    fig = draw_average_images(means, {"w": 10, "t": 12})
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert {im.norm.vmin for im in images} == {fig.colour_scale[0]}
    assert {im.norm.vmax for im in images} == {fig.colour_scale[1]}
    assert fig.colour_scale[1] == pytest.approx(means["t"].max())
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "GeV" in bars[0].get_ylabel()
    matplotlib.pyplot.close(fig)


def test_plot_jets_writes_pngs_and_numbers(tmp_path, tiny_jets_dir):
    written = plot_jets(tiny_jets_dir, tmp_path)
    assert {p.name for p in written} >= {"mass.png", "average_images.png"}
    for path in written:
        _png_ok(path)
    numbers = json.loads((tmp_path / "plots.json").read_text())
    vmin, vmax = numbers["average_image"]["colour_scale"]
    assert 0 < vmin < vmax
    assert set(numbers["average_image"]["sum_pt"]) == set("gqwzt")


def test_style_does_not_leak_into_the_callers_settings(tmp_path):
    before = dict(matplotlib.rcParams)
    plot_training_curve(_history(2), tmp_path / "c.png")
    assert dict(matplotlib.rcParams) == before


# -- hyperparameter studies and pruning --------------------------------------------------------------
def test_study_figures_speak_words_not_internal_names(tmp_path):
    from jetlab.viz.hpo import plot_history, plot_importances, readable

    assert readable("lr|adam") == "learning rate (adam)"
    assert readable("val_accuracy") == "validation accuracy"
    assert readable("f_r_activation") == "f r activation"
    fig = plot_history([0, 1, 2], np.array([[0.5], [0.6], [0.55]]), ["val_accuracy"], ["maximize"],
                       tmp_path / "history.png")
    assert fig.axes[0].get_ylabel() == "validation accuracy (maximize)"
    fig = plot_importances({"val_accuracy": {"lr|adam": 0.7, "hidden": 0.3}}, tmp_path / "imp.png")
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["N¹ (hidden nodes)", "learning rate (adam)"]


def test_study_and_pruning_figures_use_the_jetlab_style(tmp_path):
    from jetlab.viz.hpo import plot_intermediate
    from jetlab.viz.pruning import plot_prune_curve

    fig = plot_intermediate({0: ([1, 2], [0.5, 0.6]), 1: ([1], [0.4])}, {1}, tmp_path / "i.png", ylabel="val_loss")
    assert fig.axes[0].get_ylabel() == "validation loss"
    point = {"sparsity": 0.0, "auc": {"g": 0.9}, "mean_auc": 0.9, "accuracy": 0.7, "iteration": 0}
    curve = {"baseline": point, "points": [dict(point, sparsity=0.5, iteration=1)], "auc_tolerance": 0.01,
             "model": "dnn", "settings": {}}
    for figure in (fig, plot_prune_curve(curve, tmp_path / "p.png")):
        # mplhep's ROOT look, as every jetlab figure: ticks inside, on all four sides
        assert figure.axes[0].xaxis.get_major_ticks()[0].tick1line.get_marker() in (2, 3)  # TICKUP / TICKDOWN
        assert figure.axes[0].xaxis.get_major_ticks()[0].tick2line.get_visible()
