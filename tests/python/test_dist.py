"""A dist_sync cluster from Python: kvactor-launch starts a scheduler, two servers and two
Python workers (real processes on loopback); each worker runs a script written here and prints
what it saw. Also MXNet's one-program style, where the servers run the Python script too and
create() runs their role."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

LIMIT = 90  # seconds: the launcher stops a job that hangs (exit 124), so a failure ends


def launcher():
    path = os.environ.get("KVACTOR_LAUNCH") or shutil.which("kvactor-launch")
    assert path and os.path.exists(path), \
        "kvactor-launch not found: set KVACTOR_LAUNCH (CTest does) or put it on PATH"
    return path


WORKER = textwrap.dedent("""
    import numpy as np, kvactor
    kv = kvactor.create("dist_sync")
    rank, n = kv.rank, kv.num_workers
    shape = (3, 4)
    kv.init(["w", "big"], [np.zeros(shape, np.float32), np.zeros((1100, 1000), np.float32)])
    # dist_sync: every worker's push is merged before the round's result is pulled
    kv.push("w", np.full(shape, rank + 1, np.float32))
    out = np.zeros(shape, np.float32)
    kv.pull("w", out=out).result()
    print("SUM", rank, n, float(out[0, 0]), flush=True)
    # a key split over both servers
    big = np.full((1100, 1000), 0.5, np.float32)
    kv.pushpull("big", big).result()
    print("BIG", rank, float(big.min()), float(big.max()), flush=True)
    # an optimizer on the servers: SGD, lr 0.1 on the merged gradient (ones from each worker)
    kv.set_optimizer("sgd", learning_rate=0.1)
    kv.init("p", np.ones(shape, np.float32))
    kv.push("p", np.ones(shape, np.float32))
    kv.pull("p", out=out).result()
    print("SGD", rank, round(float(out[0, 0]), 6), flush=True)
    try:
        kv._set_updater(lambda k, a, b: None)
    except kvactor.Unsupported as e:
        print("UPDATER refused", rank, flush=True)
    try:
        kv.pull("missing", out=out).result()
    except kvactor.NotInitialized:
        print("MISSING refused", rank, flush=True)
    kv.barrier()
    print("DONE", rank, flush=True)
""")


def run_job(tmp_path, *args):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [launcher(), "-n", "2", "-s", "2", "--timeout", str(LIMIT), *args, "--",
           sys.executable, str(script)]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT + 30)


def check(job):
    assert job.returncode == 0, job.stdout + job.stderr
    lines = job.stdout.splitlines()
    for rank in (0, 1):
        expect = ["SUM %d 2 3.0" % rank, "BIG %d 1.0 1.0" % rank, "SGD %d 0.8" % rank,
                  "UPDATER refused %d" % rank, "MISSING refused %d" % rank, "DONE %d" % rank]
        for e in expect:
            assert any(line.endswith(e) for line in lines), (e, job.stdout, job.stderr)


def test_dist_sync_two_workers_two_servers(tmp_path):
    check(run_job(tmp_path))


def test_one_program_for_every_role(tmp_path):
    # MXNet style: the scheduler and the servers run the same Python script; kvactor.create
    # runs their role and exits the process.
    script = tmp_path / "worker.py"
    check(run_job(tmp_path, "--server-cmd", "%s %s" % (sys.executable, script)))
