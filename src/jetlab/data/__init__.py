"""Making data: jets from Pythia 8 + FastJet (:mod:`.generate`; run in parallel, resumably,
locally or on Dask by :mod:`.driver`), the cached default jet set
(:mod:`.default`, :func:`resolve_jets`: a path given or that set), sparse-MNIST point sets from digit images (:mod:`.mnist`) and per-class
summaries of jet sets (:mod:`.summary`). Reading and writing files is :mod:`jetlab.io`'s.
"""

from jetlab.data.default import default_jets_dir, resolve_jets
from jetlab.data.driver import generate_dataset

__all__ = ["default_jets_dir", "generate_dataset", "resolve_jets"]
