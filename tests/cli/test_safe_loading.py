"""Nothing jetlab loads runs code, and only finished runs are used as trained models.

* a crafted pickle (its ``__reduce__`` would create a marker file) as model.pt or
  checkpoint.pt is refused by every command that loads one, with one line, and the marker
  never appears;
* a run stopped before its end (no finished.json, or a model.pt that is not the one its
  training finished with) is refused with a line naming RUN and ``--resume``;
* files of an older jetlab (numpy arrays inside) are refused with a pointer to
  ``jetlab run upgrade``, which converts them without executing anything;
* ``tagger compare`` refuses a predictions.npz holding an object array.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input import BadInput, check_bad_input

from jetlab.cli.main import main
from jetlab.errors import InputError
from jetlab.training.run_dir import FINISHED_NAME
from jetlab.utils.tensor_files import load_tensor_file, save_tensor_file, storable, unsafe_globals


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if anything runs it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def plant(path: Path, marker: Path, fmt: str = "jetlab-tagger/1") -> None:
    """Replace ``path`` by a crafted torch file that looks like a jetlab one."""
    path.unlink(missing_ok=True)
    torch.save({"format": fmt, "payload": _Payload(marker)}, path)


def refused(argv, capsys) -> str:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("jetlab: error:") and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def runs(tiny_jets_dir, trained_run, trained_generator_run):
    return {"tagger": Path(trained_run("dnn")), "generator": trained_generator_run, "jets": tiny_jets_dir}


# (id, run kind, planted file, command line; {run}, {tmp}, {jets} are filled in)
CRAFTED = [
    ("tagger-evaluate", "tagger", "model.pt", ("tagger", "evaluate", "{run}", "--data", "{jets}")),
    ("tagger-resume", "tagger", "checkpoint.pt", ("tagger", "train", "--out", "{run}", "--resume")),
    ("tagger-prune", "tagger", "model.pt", ("tagger", "prune", "{run}", "--out", "{tmp}/pruned")),
    ("tagger-export", "tagger", "model.pt", ("tagger", "export", "{run}", "--format", "onnx", "--out", "{tmp}/x")),
    ("fastsim-sample", "generator", "model.pt", ("fastsim", "sample", "{run}", "--n", "5", "--out", "{tmp}/s.h5")),
    ("fastsim-evaluate", "generator", "model.pt", ("fastsim", "evaluate", "{run}", "--n", "4")),
    ("fastsim-resume", "generator", "checkpoint.pt", ("fastsim", "train", "--out", "{run}", "--resume")),
    ("upgrade", "tagger", "model.pt", ("run", "upgrade", "{run}")),
]


@pytest.mark.parametrize("kind, name, argv", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_a_crafted_pickle_is_refused_by_every_command_and_nothing_runs(kind, name, argv, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs[kind], run)
    marker = tmp_path / "MARKER"
    plant(run / name, marker)
    line = refused([a.format(run=run, tmp=tmp_path, jets=runs["jets"]) for a in argv], capsys)
    assert str(run / name) in line and ("refused" in line or "not a file of an older jetlab" in line), line
    assert "io.open" in line, line   # what the payload would have called
    assert not marker.exists()


@pytest.mark.parametrize("what", ["latency", "params", "resume"])
def test_the_hpo_objective_refuses_a_crafted_file(what, runs, tmp_path):
    from jetlab.hpo.objective import _generator_parameters, tagger_latency_ms, train_job
    from jetlab.hpo.recipes import TAGGER
    from jetlab.utils.config import read_yaml

    run = tmp_path / "trial-0"
    shutil.copytree(runs["generator" if what == "params" else "tagger"], run)
    marker = tmp_path / "MARKER"
    plant(run / ("checkpoint.pt" if what == "resume" else "model.pt"), marker)
    with pytest.raises(InputError, match="refused"):
        if what == "latency":
            tagger_latency_ms(run)
        elif what == "params":
            _generator_parameters(run)
        else:
            config = read_yaml(run / "config.yaml", what="config")
            train_job(TAGGER, {"config": config, "out": str(run), "resume": True})
    assert not marker.exists()


def test_plain_pickles_and_the_old_torch_format_are_refused_too(tmp_path):
    marker = tmp_path / "MARKER"
    for protocol in (2, 5):
        with open(tmp_path / f"plain{protocol}.pt", "wb") as fh:
            pickle.dump({"payload": _Payload(marker)}, fh, protocol=protocol)
    torch.save({"payload": _Payload(marker)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for name in ("plain2.pt", "old.pt"):
        with pytest.raises(InputError, match=f"{name}: refused: loading it would call io.open"):
            load_tensor_file(tmp_path / name)
    with pytest.raises(InputError, match="plain5.pt: not a readable"):  # torch's reader stops at protocol 5 framing
        load_tensor_file(tmp_path / "plain5.pt")
    assert not marker.exists()


def test_what_jetlab_writes_names_no_global_and_loads_back(runs, tmp_path):
    for run in (runs["tagger"], runs["generator"]):
        for name in ("model.pt", "checkpoint.pt"):
            assert unsafe_globals(run / name) == [], (run, name)   # torch's own opcode scan, nothing loaded
            load_tensor_file(run / name)
    stats = load_tensor_file(runs["tagger"] / "model.pt")["stats"]
    assert stats and all(isinstance(v, torch.Tensor) for v in stats.values())
    # numpy arrays and scalars become tensors and numbers; anything else is a programming error
    out = storable({"a": np.arange(3, dtype=np.float32), "b": np.int64(4), "c": [np.float64(0.5)]})
    assert torch.equal(out["a"], torch.arange(3, dtype=torch.float32)) and out["b"] == 4 and out["c"] == [0.5]
    with pytest.raises(TypeError, match="cannot be stored"):
        save_tensor_file({"path": tmp_path}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="dtype object"):
        storable({"a": np.array([None])})
    assert not (tmp_path / "x.pt").exists()


def test_rng_states_survive_the_tensors_only_checkpoint(tmp_path):
    from jetlab.training.checkpoint import capture_rng_state, restore_rng_state

    np.random.standard_normal()  # a cached Gaussian in numpy's state too
    save_tensor_file({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(3), torch.rand(3))
    restore_rng_state(load_tensor_file(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.standard_normal(3), torch.rand(3))
    assert expected[0] == again[0] and np.array_equal(expected[1], again[1]) and torch.equal(expected[2], again[2])


# ---------------------------------------------------------------------------- finished runs
@pytest.fixture(scope="module")
def paused_tagger(tiny_jets_dir, shared):
    """A tagger run stopped after epoch 1 of 2, as a crash or a time limit leaves it (shared by
    the xdist workers: copy it before changing it)."""
    def train(out):
        assert main(["tagger", "train", "--model", "dnn", "--data", str(tiny_jets_dir), "--epochs", "2", "--threads",
                     "1", "--stop-after", "1", "--out", str(out / "run")]) == 0

    run = shared("paused-tagger", train) / "run"
    assert (run / "model.pt").is_file() and not (run / FINISHED_NAME).exists()
    return run


@pytest.mark.parametrize("argv", [("tagger", "evaluate", "{run}", "--data", "{jets}"),
                                  ("tagger", "prune", "{run}", "--out", "{tmp}/pruned"),
                                  ("tagger", "export", "{run}", "--format", "onnx", "--out", "{tmp}/x")],
                         ids=["evaluate", "prune", "export"])
def test_a_paused_tagger_run_is_refused_and_resume_is_named(argv, paused_tagger, runs, tmp_path, capsys):
    line = refused([a.format(run=paused_tagger, tmp=tmp_path, jets=runs["jets"]) for a in argv], capsys)
    assert f"{paused_tagger}: holds an unfinished run" in line
    assert f"jetlab tagger train --out {paused_tagger} --resume" in line


def test_resuming_the_paused_run_finishes_it(paused_tagger, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(paused_tagger, run)
    assert main(["tagger", "train", "--out", str(run), "--resume"]) == 0
    assert (run / FINISHED_NAME).is_file()
    assert main(["tagger", "evaluate", str(run), "--data", str(runs["jets"])]) == 0


def test_continuing_a_finished_run_makes_it_unfinished_until_it_ends_again(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["tagger"], run)
    assert main(["tagger", "train", "--out", str(run), "--resume", "--epochs", "3", "--stop-after", "2"]) == 0
    assert not (run / FINISHED_NAME).exists()   # paused after epoch 2 of 3: whatever model.pt holds now
    assert "holds an unfinished run" in refused(["tagger", "evaluate", run, "--data", runs["jets"]], capsys)


def test_a_finished_record_that_does_not_match_the_files_is_refused(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["generator"], run)
    state = load_tensor_file(run / "model.pt")
    state["epoch"] += 1  # another model.pt than the one training finished with
    save_tensor_file(state, run / "model.pt")
    line = refused(["fastsim", "sample", run, "--n", "3", "--out", tmp_path / "s.h5"], capsys)
    assert "model.pt is not the one its training finished with" in line
    assert f"jetlab fastsim train --out {run} --resume" in line
    (run / FINISHED_NAME).unlink()
    assert "no finished.json" in refused(["fastsim", "evaluate", run, "--n", "4"], capsys)


# ---------------------------------------------------------------------------- older runs
def make_legacy(run: Path) -> None:
    """Rewrite a run as an older jetlab left it: numpy arrays inside, no finished.json (the
    files keep their times: metrics.json was written after model.pt)."""
    stamp = (run / "model.pt").stat()
    model = load_tensor_file(run / "model.pt")
    if "stats" in model:
        model["stats"] = {k: v.numpy() for k, v in model["stats"].items()}
        torch.save(model, run / "model.pt")
        os.utime(run / "model.pt", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    checkpoint = load_tensor_file(run / "checkpoint.pt")
    for entry in checkpoint["rng"]:
        name, key, *rest = entry["numpy"]
        entry["numpy"] = (name, key.numpy().astype(np.uint32), *rest)
    torch.save(checkpoint, run / "checkpoint.pt")
    (run / FINISHED_NAME).unlink(missing_ok=True)


def test_older_runs_are_refused_with_the_upgrade_command_which_converts_them(runs, tmp_path, capsys):
    folder = tmp_path / "runs"
    shutil.copytree(runs["tagger"], folder / "tagger")
    shutil.copytree(runs["generator"], folder / "gan")
    before = load_tensor_file(folder / "tagger" / "model.pt")
    for run in folder.iterdir():
        make_legacy(run)
    line = refused(["tagger", "evaluate", folder / "tagger", "--data", runs["jets"]], capsys)
    assert "older jetlab" in line and f"jetlab run upgrade {folder / 'tagger'}" in line
    line = refused(["fastsim", "sample", folder / "gan", "--n", "3", "--out", tmp_path / "s.h5"], capsys)
    assert "unfinished" in line and f"jetlab run upgrade {folder / 'gan'}" in line

    assert main(["run", "upgrade", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("converted to tensors") == 3 and out.count("finished run, marked") == 2, out
    after = load_tensor_file(folder / "tagger" / "model.pt")
    assert all(torch.equal(torch.as_tensor(before["stats"][k]), after["stats"][k]) for k in before["stats"])
    assert main(["tagger", "evaluate", str(folder / "tagger"), "--data", str(runs["jets"])]) == 0
    assert main(["fastsim", "sample", str(folder / "gan"), "--n", "3", "--out", str(tmp_path / "s.h5")]) == 0
    assert main(["tagger", "train", "--out", str(folder / "tagger"), "--resume"]) == 0  # the checkpoint loads


def test_upgrade_leaves_an_unfinished_older_run_unfinished(paused_tagger, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(paused_tagger, run)
    make_legacy(run)
    assert main(["run", "upgrade", str(run)]) == 0
    assert f"unfinished (its checkpoint ends at epoch 1 of 2); continue it with `jetlab tagger train --out {run} " \
           "--resume`" in capsys.readouterr().out
    assert not (run / FINISHED_NAME).exists()


# ---------------------------------------------------------------------------- predictions.npz
def _object_predictions(tmp, res):
    for name in ("a", "b"):
        shutil.copytree(res, tmp / name)
    with open(tmp / "b" / "predictions.npz", "wb") as fh:
        np.savez(fh, labels=np.array([0, 1], dtype=object), probs=np.array([[0.5, 0.5]] * 2, dtype=object))


def test_compare_refuses_a_predictions_file_holding_an_object_array(runs, tmp_path, capsys):
    case = BadInput("compare-object-npz", ("tagger", "compare", f"{tmp_path}/a", f"{tmp_path}/b"),
                    f"{tmp_path}/b/predictions.npz: holds an object array", _object_predictions)
    check_bad_input(case, tmp_path, capsys, runs["tagger"])
