"""kvactor.torch in a real dist_sync job: 1 server and 2 worker processes on loopback under
kvactor-launch (KVACTOR_LAUNCH, set by CTest). The workers (torch_dist_worker.py) check
broadcast_parameters from roots 0 and 1 and DistributedOptimizer against plain PyTorch on the
whole batch; here the job must exit 0 with both workers' OK line."""

import pathlib
import subprocess
import sys

from test_dist import LIMIT, launcher  # the basic API's dist test: same launcher, same limit

WORKER = pathlib.Path(__file__).resolve().parent / "torch_dist_worker.py"


def test_distributed_optimizer_and_broadcast_in_a_dist_sync_job(tmp_path):
    job = subprocess.run(
        [launcher(), "-n", "2", "-s", "1", "--timeout", str(LIMIT), "--", sys.executable,
         str(WORKER)],
        cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT + 30)
    assert job.returncode == 0, job.stdout + job.stderr
    for rank in (0, 1):
        assert f"torch-dist OK rank {rank}" in job.stdout, job.stdout + job.stderr
