"""Every figure jetlab draws, each a PNG written atomically (:mod:`.style`), usually beside a
JSON of the numbers: tagging (:mod:`.tagging`: ROC curves, training curves), generated
samples (:mod:`.samples`: jet images, feature histograms, point clouds) and jet data
(:mod:`.data`: per-class histograms, average jet images). All share one HEP style
(:func:`~jetlab.viz.style.hep_style`, mplhep's ROOT look). ``data/``, ``training/`` and
``metrics/`` compute numbers and draw nothing."""

from jetlab.viz.style import hep_style, pyplot, save_png, styled

__all__ = ["hep_style", "pyplot", "save_png", "styled"]
