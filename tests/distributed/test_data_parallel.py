"""Synchronous data parallelism: K processes with batch b take the step of one with K·b, for a
tagger and for the VAE; the generators train under torchrun and write their run once."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from jetlab.distributed.env import DistContext, detect_launcher, free_port, init_distributed, relaunch_prefix
from jetlab.models.vae import SetVAE
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.engine import Engine
from jetlab.training.point_sets import Normalisation
from jetlab.training.settings import TrainSettings
from jetlab.training.strategies import SynchronousAllReduce
from jetlab.training.tasks import ClassifyTask, VAETask

N_TRAIN = 57  # global batch 16: 16, 16, 16, 9 -> the last splits 5 + 4 over two ranks


class SmallNet(nn.Module):
    input_keys = ("x",)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (n,), generator=g)
    return {"x": torch.randn(n, 6, generator=g) + nn.functional.one_hot(label, 6).float(), "label": label}


def _classify_task(context):
    torch.manual_seed(0 if context.rank == 0 else 100 + context.rank)  # all-reduce must broadcast rank 0's init
    model = SmallNet()
    # SGD: its step scales with the gradient, so a wrong average over ranks shows (Adam's would not)
    return ClassifyTask(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)), _data(N_TRAIN, 0), _data(21, 1)


class NoiselessVAE(SetVAE):
    """z = μ: the reparameterisation noise drawn on each rank cannot equal one process's draw;
    everything else of the step (encoder, decoder, NND, KL) is the VAE's."""

    def forward(self, x, mask=None):
        mu, logvar = self.encode(x, mask)
        return self.decode(mu), mu, logvar


def _point_sets(n, seed):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 7, 3, generator=g)
    mask = torch.arange(7).expand(n, 7) < torch.randint(3, 8, (n, 1), generator=g)
    return {"points": torch.where(mask.unsqueeze(-1), points, 0.0), "mask": mask}


def _vae_task(context):
    train, val = _point_sets(N_TRAIN, 0), _point_sets(21, 1)
    norm = Normalisation.fit(train["points"].numpy(), train["mask"].numpy())
    torch.manual_seed(0 if context.rank == 0 else 100 + context.rank)
    vae = NoiselessVAE(7, 3, latent_dim=4, hidden=16, encoder="deepset", existence=True)
    task = VAETask(vae, torch.optim.SGD(vae.parameters(), lr=0.05), norm, kind="mnist", n_coords=2, kl_weight=0.1)
    return task, train, val


TASKS = {"classify": _classify_task, "vae": _vae_task}


def _train(kind, context, batch_size, epochs=2):
    task, train_data, val_data = TASKS[kind](context)
    engine = Engine(task, TrainSettings(epochs=epochs, patience=0, schedule="none"), strategy=SynchronousAllReduce(),
                    context=context)
    train = ShardedBatches(TensorSource(train_data), batch_size, context, shuffle=True, seed=7)
    val = ShardedBatches(TensorSource(val_data), 4, context, shuffle=False, training=False)
    return task, engine.fit(train, val)


def _worker(rank, world, port, out, kind):
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    try:
        task, result = _train(kind, context, batch_size=8)
        states = {name: module.state_dict() for name, module in task.modules.items()}
        torch.save({"state": states, "history": result.history}, f"{out}/rank{rank}.pt")
    finally:
        context.shutdown()


@pytest.mark.filterwarnings("ignore::UserWarning")  # gloo's "no GPU" notes on some builds
@pytest.mark.parametrize("kind", ["classify", "vae"])
def test_two_gloo_processes_with_batch_b_match_one_process_with_batch_2b(tmp_path, kind):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), kind), nprocs=2, join=True)
    reference, reference_result = _train(kind, DistContext(), batch_size=16)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, module in reference.modules.items():
        for key, value in module.state_dict().items():
            for r in range(2):
                torch.testing.assert_close(ranks[r]["state"][name][key], value, rtol=1e-5, atol=1e-6)
    # all-reduced numbers equal the one-process numbers over the whole split
    for h_ref, h_ddp in zip(reference_result.history, ranks[0]["history"]):
        assert h_ddp["val_loss"] == pytest.approx(h_ref["val_loss"], rel=1e-5)
        assert h_ddp["train_loss"] == pytest.approx(h_ref["train_loss"], rel=1e-5)


def test_launcher_detection_reads_torchrun_and_mpi_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK",
                 "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMIX_SIZE", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert detect_launcher() == ("none", 0, 1, 0)
    assert relaunch_prefix() == ""
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")  # Open MPI: no -disable-auto-cleanup
    assert relaunch_prefix() == f"mpiexec -n 4 {sys.executable} -m "
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert detect_launcher() == ("mpi", 3, 4, 3)
    # the resume hint reruns the job under the same launcher and size
    assert relaunch_prefix() == f"mpiexec -disable-auto-cleanup -n 4 {sys.executable} -m "
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert detect_launcher() == ("torchrun", 1, 2, 1)
    assert relaunch_prefix() == "torchrun --standalone --nproc_per_node=2 -m "
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # two nodes of four
    assert relaunch_prefix().startswith("torchrun --nnodes=2 --nproc_per_node=4 ")


MPI_SCRIPT = """
import sys, torch
from jetlab.distributed.env import init_distributed
context = init_distributed("cpu")
value = context.all_reduce_sum([float(context.rank + 1)])
print(f"rank {context.rank}/{context.world_size} {context.launcher} {context.backend} sum {value.item():g}")
context.shutdown()
"""


@pytest.mark.mpi
def test_mpiexec_ranks_meet_in_one_gloo_group(tmp_path):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    script = tmp_path / "allreduce.py"
    script.write_text(MPI_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lines = sorted(re.findall(r"rank \d+/\d+ \w+ \w+ sum [\d.]+", done.stdout))  # ranks' lines may interleave
    assert lines == ["rank 0/2 mpi gloo sum 3", "rank 1/2 mpi gloo sum 3"]
