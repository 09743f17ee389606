"""A dist_sync worker for test_torch_dist.py (run under kvactor-launch, not by pytest).

Each worker starts from a model of its own seed; broadcast_parameters from root 1 must give
every worker rank 1's weights, a second broadcast from root 0 (the pushpull path for keys
broadcast before) rank 0's perturbed weights. Then DistributedOptimizer trains on the worker's
half of each batch, and the weights must match plain PyTorch on the whole batch, computed
here too. Prints "torch-dist OK rank R" and exits 0, or raises.
"""

import copy
import sys

import torch
import torch.nn.functional as F

import kvactor
import kvactor.torch as kvtorch


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def assert_same(a, b, what):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{what}: {name}")


def main():
    torch.set_num_threads(1)
    store = kvactor.create("dist_sync")
    rank, workers = store.rank, store.num_workers
    assert workers == 2, workers

    model = make_model(100 + rank)
    kvtorch.broadcast_parameters(model.state_dict(), root_rank=1, store=store)
    assert_same(model, make_model(101), "broadcast from root 1")

    with torch.no_grad():
        for p in model.parameters():
            p.add_(rank + 1)
    kvtorch.broadcast_parameters(model.named_parameters(), root_rank=0, store=store)
    root0 = make_model(101)
    with torch.no_grad():
        for p in root0.parameters():
            p.add_(1)
    assert_same(model, root0, "broadcast from root 0")

    reference = copy.deepcopy(model)
    opt = kvtorch.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9), model.named_parameters(),
        store)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.2, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        half = slice(rank * 4, rank * 4 + 4)
        opt.zero_grad()
        F.cross_entropy(model(x[half]), y[half]).backward()
        opt.step()
        ref_opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        ref_opt.step()
    assert_same(model, reference, "training")
    store.barrier()
    print(f"torch-dist OK rank {rank}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
