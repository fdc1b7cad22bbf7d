"""The embedded default jet set: generated on first use into the user's cache, reused after.

``default_jets_dir(30)`` is what every command taking ``--data`` falls back to
(:func:`resolve_jets`): a few
thousand Pythia 8 jets per class (:func:`default_jets_per_class`), fixed seed, in
``<cache>/jets/default-<P>p`` (``$JETLAB_CACHE`` overrides the cache root). Generation
is resumable like any ``jetlab data generate`` run, so an interrupted first use
completes on the next, and locked, so concurrent first uses generate it once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jetlab.data.driver import generate_dataset
from jetlab.io.jets import JetFiles, open_jets
from jetlab.io.layout import CLASS_NAMES
from jetlab.utils.cache import cache_dir
from jetlab.utils.locking import cache_lock

__all__ = ["DEFAULT_JETS_PER_CLASS", "DEFAULT_SEED", "default_jets_dir", "default_jets_per_class", "default_jets_ready",
           "resolve_jets"]

log = logging.getLogger(__name__)

#: jets per class of the default set, unless ``JETLAB_DEFAULT_JETS_PER_CLASS`` says otherwise
DEFAULT_JETS_PER_CLASS = 2000
DEFAULT_SEED = 20191
_DONE = ".complete"


def default_jets_per_class() -> int:
    """Jets per class of the default set: ``JETLAB_DEFAULT_JETS_PER_CLASS`` (read when called,
    not at import), else :data:`DEFAULT_JETS_PER_CLASS`."""
    return int(os.environ.get("JETLAB_DEFAULT_JETS_PER_CLASS", DEFAULT_JETS_PER_CLASS))


def _path(n_particles: int) -> Path:
    return cache_dir("jets") / f"default-{n_particles}p-{default_jets_per_class()}"


def default_jets_ready(n_particles: int = 30) -> bool:
    """True when the default set of ``n_particles`` is generated and cached already."""
    return (_path(n_particles) / _DONE).exists()


def default_jets_dir(n_particles: int = 30) -> Path:
    """The default set's directory, generating it first if needed.

    Several processes may ask at once: one generates (holding the directory's lock), the
    others wait (saying so on stderr) and then read the finished set.
    """
    path = _path(n_particles)
    if (path / _DONE).exists():
        return path
    with cache_lock(path, what="default jet set"):
        if not (path / _DONE).exists():
            log.info(
                "generating the default jet set (%d jets per class, %d particles) into %s; this happens once",
                default_jets_per_class(), n_particles, path,
            )
            generate_dataset(
                path, classes=CLASS_NAMES, jets_per_class=default_jets_per_class(), n_particles=n_particles,
                seed=DEFAULT_SEED, lock=False,
            )
            (path / _DONE).touch()
    return path


def resolve_jets(path=None, n_particles: int = 30) -> JetFiles:
    """``--data`` resolution: :func:`~jetlab.io.jets.open_jets` of the given path, or of the
    cached default set (generated on first use) when None."""
    return open_jets(default_jets_dir(n_particles) if path is None else path, n_particles)
