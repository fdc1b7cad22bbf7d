"""jetlab: deep learning on sparse particle-physics data.

Three jobs, end to end (the documentation site, ``mkdocs serve``, has a page for each):

* reconstruction with graph networks (JEDI-net, GarNet) and the classic taggers,
* sparse-event generation (NND-loss VAE, message-passing GAN) with JetNet metrics,
* training at scale (``torch.distributed``, asynchronous MPI algorithms).

Heavy optional pieces (Pythia, FastJet, MPI) are imported lazily by the modules
that need them, so ``import jetlab`` stays cheap.
"""

from jetlab.errors import JetlabError

__version__ = "0.1.0"
__all__ = ["JetlabError", "__version__"]
