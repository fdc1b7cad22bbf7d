"""Distilling a flow into a few-step student (``jetlab fastsim train --model flow --distil-from
TEACHER``, jetlab.training.distil).

Oracles: the pairs are the teacher's own ODE solution of their noise, solved again here set by
set with :func:`integrate` and each set's condition worked out by hand; the student's loss is
the squared error to the straight line from the noise to the teacher's set, written out at the
times its sampler evaluates the network; the jet-feature term is the gap in mass (by the pair formula
m² = Σ 2 p_i p_j (cosh Δη − cos Δφ)) between the jet one Euler step reaches and the teacher's,
in the conditions' standard deviation, with no gradient on pT_rel; the CLI run resumes to the
weights of an uninterrupted one, reading its pairs back instead of making them again; a teacher of other
data, a GAN teacher and a pairs file of another teacher are refused by name.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import numpy as np
import pytest
import torch
from test_generator import tiny_config, tiny_jetnet_file  # noqa: F401 - the module's data fixture

from jetlab.cli.main import main
from jetlab.errors import InputError, JetlabError
from jetlab.models.flow import integrate, solver_times
from jetlab.training.distil import PAIRS_NAME, load_teacher, make_pairs, start_from_teacher, teacher_pairs
from jetlab.training.generator import build_task
from jetlab.training.generator_run import TrainedGenerator
from jetlab.training.point_sets import load_point_sets
from jetlab.training.tasks.flow import JetConditions

pytestmark = pytest.mark.xdist_group("flow_distil")


def _train_args(data, run, *extra):
    return ["fastsim", "train", "--model", "flow", "--data", str(data), "--jet-class", "t", "--batch-size", "16",
            "--seed", "5", "--plot-every", "0", "--plot-samples", "16", "--metrics-samples", "0", "--threads", "1",
            "--hp", "flow.hidden=16", "--hp", "flow.global_dim=8", "--hp", "flow.n_layers=1", "--out", str(run),
            *extra]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, tiny_jetnet_file):  # noqa: F811
    run = tmp_path_factory.mktemp("teacher") / "run"
    assert main(_train_args(tiny_jetnet_file, run, "--epochs", "2", "--ema-decay", "0.5")) == 0
    return run


def _student_args(data, teacher, run, *extra):
    # --limit: a shorter prefix of the teacher's training split is allowed (its units are the teacher's)
    return _train_args(data, run, "--distil-from", str(teacher), "--distil-steps", "3", "--ode-steps", "1",
                       "--ode-solver", "euler", "--limit", "40", *extra)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun"])
@pytest.mark.parametrize("steps", [1, 3])
def test_solver_times_are_where_integrate_evaluates_the_velocity(solver, steps):
    seen = set()

    def velocity(x, t):
        seen.add(round(t, 12))
        return -x

    integrate(velocity, torch.ones(2, 3), steps, solver)
    assert solver_times(steps, solver) == pytest.approx(tuple(sorted(seen)), abs=1e-9)


def test_pairs_are_the_teachers_own_solution_of_their_noise(teacher_run, tiny_jetnet_file):  # noqa: F811
    config = tiny_config(tiny_jetnet_file, "flow", distil_from=str(teacher_run), distil_steps=3, ode_steps=1,
                         ode_solver="euler")
    teacher = load_teacher(config)
    data = load_point_sets(config.data, jet_class="t")
    points, mask = data.val, data.val_mask
    noise, sets = make_pairs(teacher, points, mask, seed=11)
    net, conditions = teacher.task.network, teacher.task.conditions
    assert net is teacher.task.modules["flow_ema"] and teacher.task.ode_solver == "midpoint"
    real = torch.as_tensor(mask).unsqueeze(-1)
    assert not noise.masked_select(~real).any() and not sets.masked_select(~real).any()
    for k in range(len(points)):  # one set at a time, its condition computed by hand
        m = torch.as_tensor(mask[k:k + 1])
        p = torch.as_tensor(points[k:k + 1], dtype=torch.float32)
        ptrel = p[..., 2].where(m, torch.zeros(()))
        eta, phi = p[..., 0], p[..., 1]
        px, py, pz = ptrel * phi.cos(), ptrel * phi.sin(), ptrel * eta.sinh()
        energy = ptrel * eta.cosh()
        mass = (energy.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2).clamp_min(0).sqrt()
        raw = torch.stack([ptrel.sum(), mass]).unsqueeze(0)
        cond = (raw - torch.as_tensor(conditions.mean)) / torch.as_tensor(conditions.std)
        torch.testing.assert_close(conditions.standardise(JetConditions.raw(p, m)), cond, rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            x1 = integrate(lambda x, t, m=m, c=cond: net(x, x.new_full((1,), t), m, c), noise[k:k + 1], 3, "midpoint")
        torch.testing.assert_close(sets[k:k + 1], x1.where(m.unsqueeze(-1), torch.zeros(())), rtol=1e-4, atol=1e-5)
    again, _ = make_pairs(teacher, points, mask, seed=11)
    assert torch.equal(noise, again) and noise[real.expand_as(noise)].std() == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_student_loss_is_the_line_from_noise_to_the_teachers_set(teacher_run, tiny_jetnet_file, solver):  # noqa: F811
    config = tiny_config(tiny_jetnet_file, "flow", distil_from=str(teacher_run), ode_steps=1, ode_solver=solver)
    teacher = TrainedGenerator.load(teacher_run)
    data = load_point_sets(config.data, jet_class="t")
    task = build_task(config, teacher.normalisation, kind="jets", n_points=30, n_coords=2, data=data)
    task.conditions = teacher.task.conditions
    assert task.distil_times == solver_times(1, solver)
    n = 12
    points, mask = torch.as_tensor(data.train[:n]), torch.as_tensor(data.train_mask[:n])
    real = mask.unsqueeze(-1)
    noise = torch.randn(n, 30, 3).where(real, torch.zeros(()))
    target = (torch.randn(n, 30, 3) + 2).where(real, torch.zeros(()))   # not the real sets
    batch = {"points": points, "mask": mask, "noise": noise, "teacher": target}
    times = []

    def spy(module, args):
        times.append(args[1].clone())

    hook = task.flow.register_forward_pre_hook(spy)
    loss, parts = task._loss(batch, torch.Generator().manual_seed(3))
    assert parts == {}   # no jet-mass term, nothing more to log
    hook.remove()
    t = times[0]
    assert set(t.tolist()) <= set(task.distil_times) and (solver == "euler" or len(set(t.tolist())) == 2)
    cond = task.conditions.standardise(JetConditions.raw(points.float(), mask))
    x_t = ((1 - t[:, None, None]) * noise + t[:, None, None] * target).where(real, torch.zeros(()))
    error = (task.flow(x_t, t, mask, cond) - (target - noise)).where(real, torch.zeros(())).pow(2)
    torch.testing.assert_close(loss, error.sum() / (mask.sum() * 3))


def test_cli_student_resumes_exactly_reads_its_pairs_back_and_generates(tmp_path, teacher_run, tiny_jetnet_file,  # noqa: F811
                                                                        capsys):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(_student_args(tiny_jetnet_file, teacher_run, whole, "--epochs", "2")) == 0
    assert main(_student_args(tiny_jetnet_file, teacher_run, part, "--epochs", "2", "--stop-after", "1")) == 0
    made = (part / PAIRS_NAME).stat().st_mtime_ns
    assert main(["fastsim", "train", "--out", str(part), "--resume"]) == 0
    assert (part / PAIRS_NAME).stat().st_mtime_ns == made     # read back, not made again
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    for key, tensor in a["modules"]["flow"].items():
        assert torch.equal(tensor, b["modules"]["flow"][key]), key
    student = TrainedGenerator.load(whole)
    assert (student.task.ode_steps, student.task.ode_solver) == (1, "euler")
    # the student's units and conditions are the teacher's
    teacher = TrainedGenerator.load(teacher_run)
    assert student.normalisation.state_dict() == teacher.normalisation.state_dict()
    assert torch.equal(torch.as_tensor(student.task.conditions.values), torch.as_tensor(teacher.task.conditions.values))
    points, mask = student.generate(20, seed=2)
    assert points.shape == (20, 30, 3) and (points[..., 2][mask] > 0).all()
    capsys.readouterr()


def test_teachers_of_other_data_or_kind_and_stale_pairs_are_refused(tmp_path, teacher_run, tiny_jetnet_file,  # noqa: F811
                                                                    trained_generator_run, capsys):
    assert main(_student_args(tiny_jetnet_file, teacher_run, tmp_path / "s", "--epochs", "1",
                              "--split-seed", "4")) == 2
    err = capsys.readouterr().err
    assert str(teacher_run) in err and "split_seed 0 (this run: 4)" in err
    assert main(_student_args(tiny_jetnet_file, trained_generator_run, tmp_path / "s2", "--epochs", "1")) == 2
    assert "needs a flow run; this is a gan run" in capsys.readouterr().err
    assert main(_student_args(tiny_jetnet_file, teacher_run, tmp_path / "s3", "--epochs", "1",
                              "--flow-pairing", "ot")) == 2
    assert "would re-pair them" in capsys.readouterr().err
    assert main(_student_args(tiny_jetnet_file, teacher_run, tmp_path / "s4", "--epochs", "1",
                              "--sigma-min", "0.1")) == 2
    assert "--sigma-min 0.1 applies to flow matching on real sets only" in capsys.readouterr().err
    # a pairs file made from another teacher: remade by rank 0, refused by the others
    config = tiny_config(tiny_jetnet_file, "flow", distil_from=str(teacher_run), distil_steps=2)
    teacher = load_teacher(config)
    data = load_point_sets(config.data, jet_class="t")
    first = teacher_pairs(tmp_path, teacher, data, config, make=True)
    other = dataclasses.replace(config, distil_steps=3)
    teacher.task.ode_steps = 3
    with pytest.raises(InputError, match="made for another teacher"):
        teacher_pairs(tmp_path, teacher, data, other, make=False)
    second = teacher_pairs(tmp_path, teacher, data, other, make=True)
    assert torch.equal(first["train_noise"], second["train_noise"])
    assert not torch.equal(first["train_teacher"], second["train_teacher"])
    # the other ranks wait for rank 0's file (not a collective wait) and take it when its key fits
    (tmp_path / PAIRS_NAME).unlink()
    writer = threading.Timer(0.5, teacher_pairs, (tmp_path, teacher, data, other), {"make": True})
    writer.start()
    waited = teacher_pairs(tmp_path, teacher, data, other, make=False, wait_s=60)
    writer.join()
    assert torch.equal(waited["train_teacher"], second["train_teacher"])
    shutil.copy(tmp_path / PAIRS_NAME, tmp_path / "copy.pt")
    (tmp_path / PAIRS_NAME).write_bytes(b"not a torch file")
    with pytest.raises(JetlabError, match=PAIRS_NAME):
        teacher_pairs(tmp_path, teacher, data, other, make=True)


def test_a_student_can_start_from_the_teachers_weights_if_it_has_its_network(teacher_run, tiny_jetnet_file):  # noqa: F811
    teacher = TrainedGenerator.load(teacher_run)
    data = load_point_sets(str(tiny_jetnet_file), jet_class="t")
    same = tiny_config(tiny_jetnet_file, "flow", distil_from=str(teacher_run), distil_init=True, ema_decay=0.9)
    task = build_task(same, teacher.normalisation, kind="jets", n_points=30, n_coords=2, data=data)
    start_from_teacher(task, teacher)
    for module in (task.modules["flow"], task.modules["flow_ema"]):   # the trained network and its average
        for key, value in teacher.task.network.state_dict().items():
            assert torch.equal(module.state_dict()[key], value), key
    other = dataclasses.replace(same, flow_options={"hidden": 8, "global_dim": 8, "n_layers": 1})
    task = build_task(other, teacher.normalisation, kind="jets", n_points=30, n_coords=2, data=data)
    with pytest.raises(InputError, match="--distil-init needs the teacher's network settings"):
        start_from_teacher(task, teacher)


def _pairwise_mass(points: np.ndarray) -> np.ndarray:
    """m of massless particles (η, φ, pT) rows, by the pair sum m² = Σ_{i<j} 2 p_i p_j (cosh Δη − cos Δφ)."""
    eta, phi, pt = points[..., 0], points[..., 1], points[..., 2]
    pair = 2 * pt[:, :, None] * pt[:, None, :] * (np.cosh(eta[:, :, None] - eta[:, None, :])
                                                    - np.cos(phi[:, :, None] - phi[:, None, :]))
    return np.sqrt(np.triu(pair, 1).sum((1, 2)))


def test_jet_feature_term_is_the_mass_gap_of_the_jet_one_step_reaches_moved_by_directions_only(
        teacher_run, tiny_jetnet_file):  # noqa: F811
    teacher = TrainedGenerator.load(teacher_run)
    data = load_point_sets(str(tiny_jetnet_file), jet_class="t")
    weight = 0.7
    config = tiny_config(tiny_jetnet_file, "flow", distil_from=str(teacher_run), ode_steps=2, ode_solver="euler",
                         distil_feature_weight=weight)
    task = build_task(config, teacher.normalisation, kind="jets", n_points=30, n_coords=2, data=data)
    assert task.distil_feature_weight == weight
    task.conditions = conditions = teacher.task.conditions
    n = 12
    points, mask = torch.as_tensor(data.train[:n]), torch.as_tensor(data.train_mask[:n])
    real = mask.unsqueeze(-1)
    noise = torch.randn(n, 30, 3).where(real, torch.zeros(()))
    target = (0.3 * torch.randn(n, 30, 3)).where(real, torch.zeros(()))
    batch = {"points": points, "mask": mask, "noise": noise, "teacher": target}
    with_term, parts = task._loss(batch, torch.Generator().manual_seed(3))
    task.distil_feature_weight = 0.0
    without, _ = task._loss(batch, torch.Generator().manual_seed(3))
    times = torch.tensor(task.distil_times)[torch.randint(2, (n,), generator=torch.Generator().manual_seed(3))]
    assert set(times.tolist()) == {0.0, 0.5}   # the two Euler steps' times, both drawn
    # by hand: one Euler step from x_t to t = 1, decoded, each jet's mass in the conditions' σ_m
    cond = conditions.standardise(JetConditions.raw(points.float(), mask))
    x_t = ((1 - times[:, None, None]) * noise + times[:, None, None] * target).where(real, torch.zeros(()))
    reached = x_t + (1 - times[:, None, None]) * task.flow(x_t, times, mask, cond)
    masses = [_pairwise_mass(teacher.normalisation.decode(sets.detach(), mask)[0].astype(np.float64))
              for sets in (reached, target)]
    expected = weight * (((masses[0] - masses[1]) / conditions.std[1]) ** 2).mean()
    assert (with_term - without).item() == pytest.approx(expected, rel=1e-4)
    assert parts["mass_term"] == pytest.approx(expected / weight, rel=1e-4)   # logged before λ
    assert expected > 0.01   # not vacuous: the reached jets differ from the teacher's in mass
    (with_term - without).backward()   # the term trains the network through the jet it reaches
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.flow.parameters())
    # zero where the student reaches the teacher's jet; it moves η_rel, φ_rel, never pT_rel
    moved = target.clone().requires_grad_()
    same = task.jet_mass_distance(moved, target, mask)
    assert same.item() == 0.0
    task.jet_mass_distance(moved, (1.2 * target).where(real, torch.zeros(())), mask).backward()
    assert moved.grad[..., 0].abs().sum() > 0 and moved.grad[..., 1].abs().sum() > 0 and not moved.grad[..., 2].any()


def test_jet_feature_term_needs_a_teacher_and_the_jet_condition(tmp_path, teacher_run, tiny_jetnet_file,  # noqa: F811
                                                                capsys):
    config = tiny_config(tiny_jetnet_file, "flow", distil_feature_weight=1.0)
    assert config.ignores("distil_feature_weight") == "applies with --distil-from only"
    with pytest.raises(JetlabError, match="--flow-condition none has none"):
        dataclasses.replace(config, distil_from=str(teacher_run), flow_condition="none").validate()
    with pytest.raises(JetlabError, match="distil_feature_weight must be >= 0"):
        dataclasses.replace(config, distil_from=str(teacher_run), distil_feature_weight=-1.0).validate()
    run = tmp_path / "student"
    assert main(_student_args(tiny_jetnet_file, teacher_run, run, "--epochs", "1",
                              "--distil-feature-weight", "2")) == 0
    assert TrainedGenerator.load(run).task.distil_feature_weight == 2.0
    epoch = json.loads((run / "history.json").read_text())["epochs"][0]
    assert epoch["train_mass_term"] > 0 and epoch["val_mass_term"] > 0   # the term is logged apart
    capsys.readouterr()
