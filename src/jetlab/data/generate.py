"""Jets from a real event generator: Pythia 8 (``pythia8mc``) + FastJet, in the hls4ml layout.

pp collisions at 13 TeV, one hard process family per class (docs: Data):

===== ===================================================================== ============
class hard processes                                                        matched to
===== ===================================================================== ============
g     HardQCD:gg2gg, qqbar2gg                                               outgoing g
q     HardQCD:gg2qqbar, qqbar2qqbarNew, qq2qq, qg2qg                        outgoing q
w     WeakBosonAndParton:qqbar2Wg, qg2Wq; W -> hadrons                     W
z     WeakBosonAndParton:qqbar2gmZg, qg2gmZq; WeakZ0:gmZmode = 2; Z -> had Z
t     Top:gg2ttbar, qqbar2ttbar; W -> hadrons                              t
===== ===================================================================== ============

with ``PhaseSpace:pTHatMin`` = 1 TeV and full MPI, ISR/FSR and hadronisation. The visible
final state (final-state particles but neutrinos) of each event is clustered with anti-kT,
R = 0.8, by FastJet's code inside Pythia (``SlowJet`` with fjcore), on Pythia's own event
record. A jet is kept when it lies within ΔR < 0.8 of a parton/boson/top of the hard process
(:meth:`JetGenerator.targets`; for W, Z and top the last copy, i.e. the one that decays) and has
800 < pT < 1200 GeV and |η| < 2.5. Each kept jet becomes one row of each hls4ml array
(:func:`jetlab.physics.particles.jet_arrays`).

Parallelism and reproducibility: the jets of a class are produced in *blocks* of
:data:`BLOCK_JETS`; block ``b`` of class ``c`` is generated from the Pythia seed
``SeedSequence([seed, c, b])`` (:func:`block_seed`) by :func:`run_block`, whichever
process runs it, so the output depends on the command only. The driver that runs the
blocks on local processes or a Dask cluster, saves them and assembles the files is
:mod:`jetlab.data.driver`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from jetlab.errors import JetlabError
from jetlab.io.layout import CLASS_NAMES
from jetlab.io.manifest import BLOCK_JETS
from jetlab.physics.kinematics import delta_r, pt_eta_phi
from jetlab.physics.particles import many_jet_arrays

__all__ = [
    "BLOCK_JETS",
    "GeneratorSettings",
    "JetGenerator",
    "block_seed",
    "pythia_settings",
    "run_block",
]

log = logging.getLogger(__name__)

#: consecutive failed Pythia events after which generation stops with an error
_MAX_FAILED_EVENTS = 1000
#: events without a single selected jet after which generation stops (settings that select nothing)
_MAX_EVENTS_WITHOUT_JETS = 20_000

#: hard processes of each class
PROCESSES: dict[str, tuple[str, ...]] = {
    "g": ("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
    "q": ("HardQCD:gg2qqbar = on", "HardQCD:qqbar2qqbarNew = on", "HardQCD:qq2qq = on", "HardQCD:qg2qg = on"),
    "w": (
        "WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
        "24:onMode = off", "24:onIfAny = 1 2 3 4 5",
    ),
    "z": (
        "WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on", "WeakZ0:gmZmode = 2",
        "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
    ),
    "t": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"),
}


@dataclass(frozen=True)
class GeneratorSettings:
    """Physics settings of a generation run (stored in ``OUT/generation.json``)."""

    ecm: float = 13000.0
    pthat_min: float = 1000.0
    jet_radius: float = 0.8
    match_radius: float = 0.8
    jet_pt_min: float = 800.0
    jet_pt_max: float = 1200.0
    jet_abs_eta_max: float = 2.5


def pythia_settings(jet_class: str, seed: int, settings: GeneratorSettings = GeneratorSettings()) -> list[str]:
    """The ``readString`` lines for one class."""
    return [
        "Beams:idA = 2212", "Beams:idB = 2212", f"Beams:eCM = {settings.ecm}",
        f"PhaseSpace:pTHatMin = {settings.pthat_min}",
        "Print:quiet = on", "Next:numberCount = 0",
        "Random:setSeed = on", f"Random:seed = {seed}",
        *PROCESSES[jet_class],
    ]


def block_seed(seed: int, class_index: int, block: int) -> int:
    """Pythia seed (1 .. 900,000,000) of one block."""
    state = np.random.SeedSequence([seed, class_index, block]).generate_state(1, dtype=np.uint64)[0]
    return int(state % 900_000_000) + 1


class JetGenerator:
    """Pythia 8 + anti-kT for one jet class: ``generate(n_jets, seed)`` -> hls4ml arrays.

    The same ``(n_jets, seed)`` always gives the same jets, whatever was generated before.
    Jets are found by Pythia's ``SlowJet`` running FastJet's own code (the fjcore copy inside
    Pythia: anti-kT, E-scheme, rapidity-azimuth distances) on the visible final state, in C++
    on Pythia's event record: handing the whole record to Python (``Pythia.nextBatch``) cost
    40-50 % on top of generating the events (BENCHMARKS.md, jet generation).
    """

    def __init__(self, jet_class: str, n_particles: int, settings: GeneratorSettings = GeneratorSettings()):
        import pythia8mc

        if jet_class not in PROCESSES:
            raise JetlabError(f"unknown jet class '{jet_class}' (known: {', '.join(CLASS_NAMES)})")
        self.jet_class = jet_class
        self.label = CLASS_NAMES.index(jet_class)
        self.n_particles = n_particles
        self.settings = settings
        self.pythia = pythia8mc.Pythia("", False)
        for line in pythia_settings(jet_class, 1, settings):
            if not self.pythia.readString(line):
                raise RuntimeError(f"Pythia rejected setting {line!r}")
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for class {jet_class}")
        # anti-kT (power -1) jets above half the pT window, no |eta| cut (SlowJet applies one
        # only for etaMax <= 20), visible final state (select 2), true masses (massSet 2), fjcore
        self.jet_finder = pythia8mc.SlowJet(-1, settings.jet_radius, 0.5 * settings.jet_pt_min, 25.0, 2, 2, None, True, True)
        _swallow_fjcore_banner(self.jet_finder, self.pythia.event)

    def generate(self, n_jets: int, seed: int) -> dict[str, np.ndarray]:
        """``n_jets`` matched jets: {"constituents", "jets"} arrays, the jet images in the
        sparse form of :func:`jetlab.physics.particles.sparse_jet_images` ("image_count",
        "image_pixel", "image_value"), and "events", the number of Pythia events they took."""
        self.pythia.rndm.init(seed)
        jets, truth_pts = [], []
        events = failures = 0
        while len(jets) < n_jets:
            if not self.pythia.next():  # Pythia's own error (rare): the event is skipped
                failures += 1
                if failures > _MAX_FAILED_EVENTS:
                    raise RuntimeError(f"Pythia failed {failures} events in a row for class {self.jet_class}")
                continue
            failures = 0
            events += 1
            if not jets and events > _MAX_EVENTS_WITHOUT_JETS:
                raise RuntimeError(f"no {self.jet_class} jet passed the selection in {events - 1} events; "
                                   f"check the generator settings ({self.settings})")
            for p4, truth_pt in self.matched_jets(self.pythia.event):
                jets.append(p4), truth_pts.append(truth_pt)
                if len(jets) == n_jets:
                    break
        # the features of the whole block in one pass (per-jet numpy calls cost more than the work)
        constituents, rows, (count, pixel, value) = many_jet_arrays(jets, self.n_particles, label=self.label,
                                                                    truth_pts=truth_pts)
        return {
            "constituents": constituents,
            "jets": rows,
            "image_count": count,
            "image_pixel": pixel,
            "image_value": value,
            "events": np.int64(events),
        }

    def targets(self, event) -> list[int]:
        """Event-record positions of the objects jets are matched to, in record order.

        g / q: the outgoing gluons / quarks (d .. b) of the hard process (status -23);
        w / z / t: the last copy (the one that decays) of each W / Z / top of the hard process.
        The event record starts with the hard scattering, so its first ``process.size()``
        entries (``process``: this generator's Pythia, the current event) hold the outgoing
        partons and the W / Z / top before showering (resonance decay products come later in
        the record); the last copy is followed from there with ``iBotCopyId``. With jetlab's
        settings (no weak shower, no top in showers or MPI) every W / Z / top of the event
        descends from those (checked in the tests against a scan of the whole record).
        """
        size = self.pythia.process.size()
        if self.jet_class in ("g", "q"):
            gluon = self.jet_class == "g"
            return [i for i in range(size) if event[i].status() == -23
                    and ((event[i].id() == 21) if gluon else (event[i].idAbs() <= 5))]
        resonance = {"w": 24, "z": 23, "t": 6}[self.jet_class]
        last = sorted({event[i].iBotCopyId() for i in range(size) if event[i].idAbs() == resonance})
        return [i for i in last if event[i].daughter1() > 0 and event[event[i].daughter1()].idAbs() != resonance]

    def matched_jets(self, event):
        """Yield (constituent four-momenta (n, 4), matched object's pT) per selected jet of the
        current Pythia ``event`` (constituents in event-record order)."""
        targets = self.targets(event)
        if not targets:
            return
        finder = self.jet_finder
        finder.analyze(event)
        jet_p4 = np.array([_four_momentum(finder.p(j)) for j in range(finder.sizeJet())])
        target_p4 = np.array([_four_momentum(event[i]) for i in targets])
        for _, j, t_pt in match_to_targets(jet_p4, target_p4, self.settings):
            yield np.array([_four_momentum(q) for q in map(event.__getitem__, finder.constituents(j))]), t_pt


def _four_momentum(momentum) -> tuple[float, float, float, float]:
    """(px, py, pz, E) of a Pythia ``Particle`` or ``Vec4``."""
    return momentum.px(), momentum.py(), momentum.pz(), momentum.e()


_BANNER_LOCK = threading.Lock()
_banner_swallowed = False


def _swallow_fjcore_banner(jet_finder, empty_event) -> None:
    """fjcore prints a 13-line banner to stdout at the first clustering of a process: run that
    first clustering (on an empty event) with stdout silenced, once, whichever thread comes first."""
    global _banner_swallowed
    with _BANNER_LOCK:
        if not _banner_swallowed:
            with quiet_stdout():
                jet_finder.analyze(empty_event)
            _banner_swallowed = True


@contextlib.contextmanager
def quiet_stdout():
    """Silence this process's file descriptor 1 (C and C++ output included) for the ``with`` block.

    Process-wide: other threads' output to fd 1 is dropped too while the block runs, so keep
    it short. Output already buffered is flushed before. Where fd 1 cannot be redirected
    (closed, or no ``sys.stdout``), the block runs with stdout as it is.
    """
    import ctypes

    libc = ctypes.CDLL(None)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        libc.fflush(None)
        saved = os.dup(1)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            try:
                yield
            finally:
                libc.fflush(None)
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def match_to_targets(jet_p4: np.ndarray, target_p: np.ndarray, settings: GeneratorSettings):
    """Yield (target, jet, target pT) for each target of one event whose nearest jet lies
    within ΔR < ``match_radius``, is not the nearest jet of an earlier target, and passes the
    jet pT and |η| window. Targets are taken in order.

    jet_p4 (J, 4), target_p (T, >=3); ΔR in (η, φ).
    """
    if len(jet_p4) == 0 or len(target_p) == 0:
        return
    j_pt, j_eta, j_phi = pt_eta_phi(jet_p4)
    t_pt, t_eta, t_phi = pt_eta_phi(target_p)
    dr = delta_r(t_eta[:, None], t_phi[:, None], j_eta[None, :], j_phi[None, :])
    nearest = np.argmin(dr, axis=1)
    distance = dr[np.arange(len(nearest)), nearest]
    inside = (settings.jet_pt_min < j_pt) & (j_pt < settings.jet_pt_max) & (np.abs(j_eta) < settings.jet_abs_eta_max)
    used: set[int] = set()
    for t in np.flatnonzero(distance < settings.match_radius):
        j = int(nearest[t])
        if j in used:
            continue
        used.add(j)
        if inside[j]:
            yield int(t), j, float(t_pt[t])


# -- one block of work (run by jetlab.data.driver, locally or on Dask workers) -------------

_LOCAL = threading.local()  # per thread: initialised generators (a Pythia object does not pickle)


def run_block(task: tuple) -> dict[str, np.ndarray]:
    """Generate one block: ``task`` = (class, particles, settings dict, block, n_jets, seed, path).

    Returns the arrays of :meth:`JetGenerator.generate`; the caller writes them. Each
    process (or thread) keeps one initialised Pythia per class and reseeds it per block.
    """
    jet_class, n_particles, settings_dict, _block, n_jets, seed, _path = task
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cache = _LOCAL.__dict__.setdefault("generators", {})
    key = (jet_class, n_particles, tuple(sorted(settings_dict.items())))
    if key not in cache:
        cache[key] = JetGenerator(jet_class, n_particles, GeneratorSettings(**settings_dict))
    return cache[key].generate(n_jets, seed)


def pythia_version() -> str:
    try:
        from importlib.metadata import version

        return version("pythia8mc")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"
