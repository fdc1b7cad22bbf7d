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

with ``PhaseSpace:pTHatMin`` = 1 TeV and full MPI, ISR/FSR and hadronisation. Events
come from ``Pythia.nextBatch`` as awkward arrays; the visible final state (status > 0,
no neutrinos) of a whole batch is clustered in one FastJet call (anti-kT, R = 0.8).
A jet is kept when it lies within ΔR < 0.8 of a parton/boson/top of its class
(the last copy in the event record, i.e. the one that decays or hadronises) and has
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

import logging
import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from jetlab.errors import JetlabError
from jetlab.io.layout import CLASS_NAMES, IMAGE_PIXELS
from jetlab.io.manifest import BLOCK_JETS
from jetlab.physics.kinematics import delta_r, pt_eta_phi

__all__ = [
    "BLOCK_JETS",
    "GeneratorSettings",
    "JetGenerator",
    "block_seed",
    "dense_images",
    "pythia_settings",
    "run_block",
    "sparse_images",
]

log = logging.getLogger(__name__)

#: events asked of Pythia per nextBatch call
EVENTS_PER_BATCH = 25
_NEUTRINOS = (12, 14, 16)

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
    """Pythia 8 + FastJet for one jet class: ``generate(n_jets, seed)`` -> hls4ml arrays.

    The same ``(n_jets, seed)`` always gives the same jets, whatever was generated before.
    """

    def __init__(self, jet_class: str, n_particles: int, settings: GeneratorSettings = GeneratorSettings()):
        import pythia8mc

        from jetlab.physics.substructure import import_fastjet

        fastjet = import_fastjet()  # without its start-up banner in every worker
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
        self.jet_definition = fastjet.JetDefinition(fastjet.antikt_algorithm, settings.jet_radius)

    def generate(self, n_jets: int, seed: int) -> dict[str, np.ndarray]:
        """``n_jets`` matched jets: {"constituents", "jets"} arrays, the jet images in the
        sparse form of :func:`sparse_images`, and "events", the number of Pythia events they took."""
        from jetlab.physics.particles import jet_arrays

        self.pythia.rndm.init(seed)
        cons, rows, pixels, values = [], [], [], []
        events = 0
        while len(rows) < n_jets:
            # ask for about as many events as the remaining jets need (Pythia's event
            # sequence does not depend on the batch size; unused events are wasted time)
            rate = len(rows) / events if rows else 1.0
            wanted = math.ceil((n_jets - len(rows)) / max(rate, 0.2))
            batch = self.pythia.nextBatch(max(1, min(EVENTS_PER_BATCH, wanted)))
            used = len(batch)
            for event, p4, truth_pt in self.matched_jets(batch):
                c, r, image = jet_arrays(p4, self.n_particles, label=self.label, truth_pt=truth_pt)
                cons.append(c), rows.append(r)
                pixels.append(np.flatnonzero(image))
                values.append(image.ravel()[pixels[-1]])
                if len(rows) == n_jets:
                    used = event + 1  # the rest of the batch is discarded
                    break
            events += used
        return {
            "constituents": np.stack(cons),
            "jets": np.stack(rows),
            **sparse_images(pixels, values),
            "events": np.int64(events),
        }

    def targets(self, record: dict) -> np.ndarray:
        """Flat positions (into the batch's particle arrays) of the objects jets are matched to.

        ``record``: :func:`_flat_record` of the batch.
        """
        pid, status = record["id"], record["status"]
        if self.jet_class in ("g", "q"):
            kind = (pid == 21) if self.jet_class == "g" else (np.abs(pid) <= 5)
            chosen = (status == -23) & kind
        else:
            resonance = {"w": 24, "z": 23, "t": 6}[self.jet_class]
            daughter = record["daughter1"]
            first = np.repeat(record["offsets"][:-1], np.diff(record["offsets"]))   # event start per particle
            daughter_id = pid[first + np.where(daughter > 0, daughter, 0)]
            chosen = (np.abs(pid) == resonance) & (np.abs(daughter_id) != resonance) & (daughter > 0)
        return np.flatnonzero(chosen)

    def matched_jets(self, batch):
        """Yield (event number in the batch, constituent four-momenta (n, 4), matched object's pT) per selected jet."""
        import fastjet

        s = self.settings
        record = _flat_record(batch)
        offsets = record["offsets"]
        n_events = len(offsets) - 1
        event_of = np.repeat(np.arange(n_events), np.diff(offsets))
        visible = np.flatnonzero((record["status"] > 0) & ~np.isin(np.abs(record["id"]), _NEUTRINOS))
        vis_p4 = record["p4"][visible]
        vis_off = np.concatenate([[0], np.cumsum(np.bincount(event_of[visible], minlength=n_events))])
        sequence = fastjet.ClusterSequence(_jagged_momenta(vis_p4, vis_off), self.jet_definition)
        # flat numpy views + per-event offsets: indexing awkward per event is slow
        jet_p4, jet_off = _flat_jets(sequence.inclusive_jets(min_pt=0.5 * s.jet_pt_min))
        cons_idx, cons_off = _flat_lists(sequence.constituent_index(min_pt=0.5 * s.jet_pt_min))
        target_rows = self.targets(record)
        jet_event = np.repeat(np.arange(n_events), np.diff(jet_off))
        for _, j, t_pt in match_to_targets(jet_p4, jet_event, record["p4"][target_rows], event_of[target_rows], s):
            ev = jet_event[j]
            idx = cons_idx[cons_off[j] : cons_off[j + 1]]
            yield ev, vis_p4[vis_off[ev] + idx], t_pt


def match_to_targets(jet_p4: np.ndarray, jet_event: np.ndarray, target_p: np.ndarray, target_event: np.ndarray,
                     settings: GeneratorSettings):
    """Yield (target, jet, target pT) for each target whose nearest jet of the same event
    lies within ΔR < ``match_radius``, is not the nearest jet of an earlier target, and
    passes the jet pT and |η| window. Targets are taken in order.

    jet_p4 (J, 4), jet_event (J,), target_p (T, >=3), target_event (T,); ΔR in (η, φ).
    """
    if len(jet_p4) == 0 or len(target_p) == 0:
        return
    j_pt, j_eta, j_phi = pt_eta_phi(jet_p4)
    t_pt, t_eta, t_phi = pt_eta_phi(target_p)
    dr = delta_r(t_eta[:, None], t_phi[:, None], j_eta[None, :], j_phi[None, :])
    dr[target_event[:, None] != jet_event[None, :]] = np.inf
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


def sparse_images(pixels: list[np.ndarray], values: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Jet images as their non-zero pixels (a 100 x 100 image is ~99 % zeros; blocks travel
    between processes and sit on disk in this form): per jet the flat pixel numbers
    (row * 100 + column) and their values -> {"image_count" (N,) int32, "image_pixel" (K,)
    int16, "image_value" (K,) float32}."""
    return {
        "image_count": np.array([len(p) for p in pixels], dtype=np.int32),
        "image_pixel": np.concatenate(pixels).astype(np.int16) if pixels else np.zeros(0, np.int16),
        "image_value": np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32),
    }


def dense_images(count: np.ndarray, pixel: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sparse_images`: (N, 100, 100) float32."""
    images = np.zeros((len(count), IMAGE_PIXELS * IMAGE_PIXELS), dtype=np.float32)
    images[np.repeat(np.arange(len(count)), count), pixel.astype(np.int64)] = value
    return images.reshape(len(count), IMAGE_PIXELS, IMAGE_PIXELS)


def _flat_record(batch) -> dict[str, np.ndarray]:
    """The particle columns of a ``nextBatch`` result as flat numpy arrays (no copies where
    possible): id, status, daughter1 (int), p4 (n, 4) float64 and per-event ``offsets``."""
    content, offsets = _flat_content(batch.prt)
    out = {name: np.asarray(content[name].data) for name in ("id", "status", "daughter1")}
    out["p4"] = _stacked(content["p"], ("px", "py", "pz", "e"))
    out["offsets"] = offsets
    return out


def _jagged_momenta(p4: np.ndarray, offsets: np.ndarray):
    """(n, 4) momenta + per-event offsets -> the awkward array of (px, py, pz, E) records FastJet takes."""
    import awkward as ak

    columns = [ak.contents.NumpyArray(np.ascontiguousarray(p4[:, i])) for i in range(4)]
    return ak.Array(ak.contents.ListOffsetArray(
        ak.index.Index64(offsets), ak.contents.RecordArray(columns, ["px", "py", "pz", "E"])
    ))


def _list_layout(array):
    """The ListOffsetArray layout of a jagged awkward array (or layout), and its offsets as int64 numpy."""
    import awkward as ak

    layout = ak.to_layout(array)
    if not isinstance(layout, ak.contents.ListOffsetArray):
        layout = layout.to_ListOffsetArray64(True)
    return layout, np.asarray(layout.offsets.data, dtype=np.int64)


def _flat_content(array):
    """A jagged awkward array's content for all its events, and the per-event offsets into it (from 0)."""
    layout, offsets = _list_layout(array)
    return layout.content[offsets[0] : offsets[-1]], offsets - offsets[0]


def _stacked(record, names: tuple[str, ...]) -> np.ndarray:
    """The named fields of an awkward record layout as the columns of an (n, k) float64 array."""
    return np.stack([np.asarray(record[name].data, dtype=np.float64) for name in names], axis=1)


def _flat_jets(jets) -> tuple[np.ndarray, np.ndarray]:
    """Per-event jets (records px, py, pz, E) -> (flat (J, 4) float64, event offsets (events + 1,))."""
    content, offsets = _flat_content(jets)
    return _stacked(content, ("px", "py", "pz", "E")), offsets


def _flat_lists(lists) -> tuple[np.ndarray, np.ndarray]:
    """Per-event lists of per-jet index lists -> (indices, per-jet offsets (J + 1,) into them)."""
    outer, outer_off = _list_layout(lists)
    inner, inner_off = _list_layout(outer.content[outer_off[0] : outer_off[-1]])
    return np.asarray(inner.content.data, dtype=np.int64), inner_off


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


def __getattr__(name: str):
    # generate_dataset moved to jetlab.data.driver; keep the old import path working
    if name == "generate_dataset":
        from jetlab.data.driver import generate_dataset

        return generate_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
