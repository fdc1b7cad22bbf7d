"""The performance model of jetlab.distributed.scaling against values computed by hand, and
against the one published point it should reproduce (synchronous all-reduce at 512 workers)."""

import pytest

from jetlab.distributed.scaling import Network, Workload, allreduce_speedup, async_speedup, predict, scaling_limit


def test_allreduce_costs_log_latency_and_twice_the_gradient_over_the_bandwidth():
    net = Network(bandwidth=1e9, latency=1e-5)
    work = Workload(step_s=1e-3, gradient_bytes=4e6)
    # comm = 2 * log2(4) * 1e-5 + 2 * (3/4) * 4e6 / 1e9 = 4e-5 + 6e-3
    assert allreduce_speedup(4, work, net) == pytest.approx(4 * 1e-3 / (1e-3 + 6.04e-3))
    assert allreduce_speedup(1, work, net) == 1.0


def test_one_master_caps_the_throughput_and_sub_masters_lift_the_cap():
    net = Network(bandwidth=1e9, latency=0.0)
    work = Workload(step_s=1e-3, gradient_bytes=1e6, bytes_in=1e6, bytes_out=1e6, master_s=1e-4)
    # serve = 1e-4 + 2e-3 = 2.1e-3 s per exchange; a worker's cycle = 1e-3 + 2e-3 + 1e-4 = 3.1e-3 s
    assert async_speedup(1, work, net) == pytest.approx(1e-3 / 3.1e-3)
    assert async_speedup(8, work, net) == pytest.approx(1e-3 / 2.1e-3)          # the master is saturated
    assert async_speedup(16, work, net, masters=4) == pytest.approx(4 * 1e-3 / 2.1e-3)
    assert scaling_limit(work, net, "downpour") == 2
    tau = Workload(step_s=1e-3, gradient_bytes=1e6, bytes_in=1e6, bytes_out=1e6, master_s=1e-4, sync_every=4)
    assert async_speedup(1, tau, net) == pytest.approx(4e-3 / 6.1e-3)          # exchanges 4x rarer


def test_allreduce_of_a_resnet50_like_model_keeps_about_90_percent_at_512_workers():
    # 25.6 M parameters, 0.1 s per step: Horovod reports ~90 % scaling efficiency at 512 GPUs
    work = Workload(step_s=0.1, gradient_bytes=4 * 25.6e6)
    efficiency = allreduce_speedup(512, work, Network()) / 512
    assert 0.85 < efficiency < 0.95
    assert predict({"allreduce": work}, Network())["allreduce"]["limit"] > 512


def test_ranks_sharing_fewer_cores_take_proportionally_longer_steps():
    from jetlab.distributed.scaling import shared_cores

    work = Workload(step_s=1e-3, gradient_bytes=1e6, master_s=1e-4)
    assert shared_cores(work, 3, 2).step_s == pytest.approx(1.5e-3)
    assert shared_cores(work, 2, 2) == work and shared_cores(work, 1, 2) == work


def test_the_workers_own_exchange_cost_lengthens_its_cycle():
    net = Network(bandwidth=1e9, latency=0.0)
    work = Workload(step_s=1e-3, gradient_bytes=0, master_s=1e-4, worker_s=4e-4)
    assert async_speedup(1, work, net) == pytest.approx(1e-3 / (1e-3 + 4e-4 + 1e-4))
