"""kvactor.torch in a real dist_sync job: 1 server and 2 worker processes on loopback under
kvactor-launch (KVACTOR_LAUNCH, set by CTest). The workers (torch_dist_worker.py) check
broadcast_parameters from roots 1 and 0 and DistributedOptimizer against plain PyTorch on the
whole batch; here the job must exit 0 with both workers' OK line."""

import os
import pathlib
import subprocess
import sys

import kvactor

HERE = pathlib.Path(__file__).resolve().parent


def launcher():
    path = os.environ.get("KVACTOR_LAUNCH")
    if path:
        return path
    # A build tree: <build>/python/kvactor/__init__.py and <build>/bin/kvactor-launch.
    return str(pathlib.Path(kvactor.__file__).resolve().parents[2] / "bin" / "kvactor-launch")


def test_distributed_optimizer_and_broadcast_in_a_dist_sync_job():
    job = subprocess.run(
        [launcher(), "-n", "2", "-s", "1", "--", sys.executable,
         str(HERE / "torch_dist_worker.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
    assert job.returncode == 0, job.stdout
    for rank in (0, 1):
        assert f"torch-dist OK rank {rank}" in job.stdout, job.stdout
