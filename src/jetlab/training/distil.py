"""Distilling a flow into a few-step sampler: a student flow trained on the map from noise to
set that a teacher flow computes with many ODE steps (knowledge distillation of iterative
generators, Luhman & Luhman arXiv:2101.02388; the distillation step of rectified flow, Liu et
al. arXiv:2209.03003 §2.3). ``jetlab fastsim train --model flow --distil-from TEACHER``.

**Pairs.** For every training and validation set (multiplicity n, and for jets its Σ pT_rel
and mass as the condition c), noise x₀ ~ N(0, I) on its n real particles and the set the
teacher makes from it, x̂₁ = Φ(x₀; c), by ``distil_steps`` steps of the teacher's own solver,
both in model (standardised) units. They are made once, before the first epoch, and kept in
RUN/teacher_pairs.pt (written atomically; ``--resume`` and the other processes of a
data-parallel run read it), so the teacher's cost is paid once, not every epoch.

**Loss** (:class:`jetlab.training.tasks.flow.FlowTask` with ``distil_times``): the
flow-matching loss on the straight line between the pair,

.. math::

    L(\\theta) = \\mathbb E_{t \\in T} \\frac{1}{|x|} \\sum_{i \\in \\text{real}}
        \\lVert v_\\theta((1 - t)\\, x_0 + t\\, \\hat x_1, t, c)_i - (\\hat x_1 - x_0)_i \\rVert^2,

t drawn from T, the times at which the student's own sampler (``ode_steps`` of ``ode_solver``)
evaluates the network (:func:`jetlab.models.flow.solver_times`). The velocity is the same at
every point of a straight line, so a student that fits it at those times carries x₀ to the
teacher's x̂₁ in its own few steps; with one Euler step, x̂₁ = x₀ + v_θ(x₀, 0, c).

The student starts from random weights, or (``distil_init``, the student's network settings the
teacher's) from the teacher's sampled weights, whose velocity at t = 0 is already the first
step of the teacher's path (progressive distillation, Salimans & Ho arXiv:2202.00512, starts
its students so). The student takes over the teacher's normalisation and jet conditions (its sets are in the
teacher's units) and must be trained on the same data, class, particles and split.

Shapes: points (N, P, F) raw, mask (N, P) bool; noise and teacher sets (N, P, F) model units.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError
from jetlab.training.checkpoint import load_torch_file
from jetlab.training.generator_tasks import TrainedGenerator
from jetlab.training.point_sets import PointSets
from jetlab.training.run_dir import file_sha256
from jetlab.training.tasks.flow import JetConditions
from jetlab.utils.progress import progress
from jetlab.utils.tensor_files import save_tensor_file

__all__ = ["PAIRS_FORMAT", "PAIRS_NAME", "load_teacher", "make_pairs", "start_from_teacher", "teacher_pairs"]

PAIRS_NAME = "teacher_pairs.pt"
PAIRS_FORMAT = "jetlab-teacher-pairs/1"
#: settings the student must share with its teacher: they fix the sets, their split and their units
#: (--limit may differ: a shorter prefix of the same training split)
SHARED_SETTINGS = ("jet_class", "particles", "split_seed", "fractions", "flow_condition")
#: how long the other ranks of a data-parallel run wait for rank 0's pairs
PAIRS_WAIT_S = 24 * 3600.0
#: sets solved per step of the progress bar (a multiple of the sampler's CPU block)
PAIRS_CHUNK = 4096
#: seed offset of the pairs' noise (training sets; validation sets use the next one)
NOISE_SEED = 7919


def _same_data(a: str, b: str) -> bool:
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def load_teacher(config):
    """The finished flow run ``config.distil_from``, checked against the student's ``config``
    (same data, class, particles, split, pT units and conditions): a
    :class:`~jetlab.training.generator_tasks.TrainedGenerator` sampling with ``distil_steps``."""
    run = Path(config.distil_from)
    teacher = TrainedGenerator.load(run, device=config.device)
    if teacher.config.family != "flow":
        raise InputError(run, f"--distil-from needs a flow run; this is a {teacher.config.model} run")
    teacher.task.ode_steps = int(config.distil_steps)
    differ = [f"{name} {getattr(teacher.config, name)!r} (this run: {getattr(config, name)!r})"
              for name in SHARED_SETTINGS if getattr(teacher.config, name) != getattr(config, name)]
    if not _same_data(str(teacher.config.data), str(config.data)):
        differ.insert(0, f"data {teacher.config.data!r} (this run: {config.data!r})")
    if teacher.config.learns_log_pt != config.learns_log_pt:
        differ.append(f"log_pt {teacher.config.learns_log_pt} (this run: {config.learns_log_pt})")
    if differ:
        raise InputError(run, "the teacher was trained with other data settings: " + "; ".join(differ))
    return teacher


@torch.no_grad()
def make_pairs(teacher, points: np.ndarray, mask: np.ndarray, *, seed: int, desc: str = "teacher pairs"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise x₀ (N, P, F) on each set's real particles and the teacher's set x̂₁ (N, P, F) from
    it, with the set's own multiplicity and (jets) condition (module docstring); a progress bar."""
    task, network = teacher.task, teacher.task.network
    device = next(network.parameters()).device
    points_t, mask_t = torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((len(points_t), network.n_points, network.n_features), generator=generator)
    noise = torch.where(mask_t.unsqueeze(-1), noise, torch.zeros_like(noise))
    sets = torch.empty_like(noise)
    for start in progress(range(0, len(noise), PAIRS_CHUNK), desc=desc, unit="chunk"):
        part = slice(start, start + PAIRS_CHUNK)
        m = mask_t[part].to(device)
        cond = None
        if task.conditions is not None:
            cond = task.conditions.standardise(JetConditions.raw(points_t[part].to(device), m))
        sets[part] = network.solve(noise[part].to(device), m, cond, steps=task.ode_steps, solver=task.ode_solver).cpu()
    return noise, sets


def start_from_teacher(task, teacher) -> None:
    """Load the teacher's sampled weights into every network of the student ``task`` (the
    trained one and its average), refusing a student of other network settings."""
    weights = teacher.task.network.state_dict()
    for module in task.modules.values():
        try:
            module.load_state_dict(weights)
        except RuntimeError:
            raise InputError(teacher.run_dir, "--distil-init needs the teacher's network settings (--flow-net, --hp "
                             f"flow.*: the teacher's are {teacher.config.flow_net} {teacher.config.flow_options or {}})"
                             ) from None


def _read_pairs(path: Path, key: dict) -> dict[str, torch.Tensor] | None:
    """The pairs of ``path`` when it holds them for ``key``; None when it is missing or made for
    another key; :class:`InputError` naming it when it is not a pairs file."""
    if not path.is_file():
        return None
    state = load_torch_file(path, PAIRS_FORMAT, "teacher pairs file", "teacher pairs file")
    return state["pairs"] if state.get("key") == key else None


def teacher_pairs(out: Path, teacher, data: PointSets, config, *, make: bool, wait_s: float = 0.0
                  ) -> dict[str, torch.Tensor]:
    """``{"train_noise", "train_teacher", "val_noise", "val_teacher"}`` from RUN/teacher_pairs.pt;
    with ``make`` (rank 0), made first when the file is missing or was made from another
    teacher file, step count, seed or data size. Without ``make`` (the other ranks), wait up to
    ``wait_s`` seconds for rank 0 to write it: a file wait, not a collective one, so the process
    group's timeout does not limit how long the teacher may take."""
    path = Path(out) / PAIRS_NAME
    key = {"teacher_sha256": file_sha256(teacher.run_dir / "model.pt"), "steps": int(config.distil_steps),
           "solver": teacher.config.ode_solver, "seed": int(config.seed), "n_train": len(data.train),
           "n_val": len(data.val)}
    deadline = time.monotonic() + wait_s
    while not make:
        try:
            pairs = _read_pairs(path, key)
        except InputError as exc:  # rank 0 stops on it; until then it may be replaced
            pairs, problem = None, exc.problem
        else:
            problem = ("made for another teacher or settings than this run's" if path.is_file()
                       else "missing (rank 0 writes it before the first epoch)")
        if pairs is not None:
            return pairs
        if time.monotonic() >= deadline:
            raise InputError(path, problem)
        time.sleep(0.5)
    pairs = _read_pairs(path, key)
    if pairs is not None:
        return pairs
    pairs = {}
    for split, seed in (("train", NOISE_SEED), ("val", NOISE_SEED + 1)):
        noise, sets = make_pairs(teacher, getattr(data, split), getattr(data, f"{split}_mask"),
                                 seed=int(config.seed) * 1_000_003 + seed, desc=f"teacher pairs ({split})")
        pairs[f"{split}_noise"], pairs[f"{split}_teacher"] = noise, sets
    save_tensor_file({"format": PAIRS_FORMAT, "key": key, "pairs": pairs}, path)
    return pairs
