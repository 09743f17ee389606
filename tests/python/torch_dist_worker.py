"""A dist_sync worker for test_torch_dist.py (run under kvactor-launch, not by pytest).

Each worker starts from a model of its own seed; broadcast_parameters must give every worker
root's weights, from root 0 and from root 1, on new keys and on keys broadcast before. Then
DistributedOptimizer trains on the worker's half of each batch, and the weights must match
plain PyTorch on the whole batch, computed here too. Prints "torch-dist OK rank R" and exits 0, or raises.
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


def assert_same(a, b, what, exact=False):
    tol = 0 if exact else 1e-5
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=tol, atol=tol / 10, msg=f"{what}: {name}")


def main():
    torch.set_num_threads(1)
    store = kvactor.create("dist_sync")
    rank, workers = store.rank, store.num_workers
    assert workers == 2, workers

    # The three ways broadcast_parameters works: the store's broadcast (new keys, root 0), a
    # pushpull round on keys it broadcast before (root 1), and init + pushpull (new keys,
    # root 1). Each worker perturbs its copy first, so only root's values may survive.
    model = make_model(100 + rank)
    kvtorch.broadcast_parameters(model.state_dict(), root_rank=0, store=store)
    expected = make_model(100)
    assert_same(model, expected, "broadcast from root 0", exact=True)
    for shift, prefix in ((1, "broadcast:"), (10, "fresh:")):
        with torch.no_grad():
            for p, q in zip(model.parameters(), expected.parameters()):
                p.add_(shift * (rank + 1))
                q.add_(shift * 2)  # what rank 1 adds
        kvtorch.broadcast_parameters(model.named_parameters(), root_rank=1, store=store,
                                     prefix=prefix)
        assert_same(model, expected, f"broadcast from root 1, keys {prefix}", exact=True)

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
