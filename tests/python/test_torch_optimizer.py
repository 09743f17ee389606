"""kvactor.torch in one process: DistributedOptimizer over a `local` store with replicas of a
model (each replica one of the process's "devices"), broadcast_parameters, and the refusals.

The reference for every training case is plain PyTorch: one model on the whole batch. Two
replicas that each take half of every batch, averaged through the store, must follow it to
float rounding (the mean of two half-batch means is the full-batch mean).
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import kvactor
import kvactor.torch as kvtorch


def make_model(seed=1):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def batches(steps=4, size=8, seed=2):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 6, generator=g), torch.randint(0, 3, (size,), generator=g))
            for _ in range(steps)]


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)


def train(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def train_reference(model, data):
    train(model, sgd(model), data)


def assert_same_weights(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


class Recorder:
    """A store that records each pushpull (key, priority) and forwards everything."""

    def __init__(self, store):
        self.store = store
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def pushpull(self, key, value, out=None, priority=0):
        self.calls.append((key, priority))
        return self.store.pushpull(key, value, out=out, priority=priority)


def test_two_replicas_follow_one_model_on_the_whole_batch():
    reference = make_model()
    replicas = [copy.deepcopy(reference) for _ in range(2)]
    store = kvactor.create("local")
    opts = [kvtorch.DistributedOptimizer(sgd(m), m.named_parameters(), store) for m in replicas]
    data = batches()
    for x, y in data:
        for opt in opts:
            opt.zero_grad()
        for i, (m, opt) in enumerate(zip(replicas, opts)):
            half = slice(i * len(x) // 2, (i + 1) * len(x) // 2)
            F.cross_entropy(m(x[half]), y[half]).backward()
        for opt in opts:
            opt.step()
    train_reference(reference, data)
    assert_same_weights(replicas[0], reference)
    assert_same_weights(replicas[1], reference)


def test_one_replica_is_plain_training():
    reference = make_model()
    model = copy.deepcopy(reference)
    opt = kvtorch.DistributedOptimizer(sgd(model), model.named_parameters(),
                                       kvactor.create("local"))
    data = batches()
    train(model, opt, data)
    train_reference(reference, data)
    assert_same_weights(model, reference)


def test_gradients_are_pushed_during_backward_first_layers_first_in_priority():
    model = make_model()
    store = Recorder(kvactor.create("local"))
    opt = kvtorch.DistributedOptimizer(sgd(model), model.named_parameters(), store)
    x, y = batches(steps=1)[0]
    hidden = model[1](model[0](x))
    seen_midway = []
    # Runs in backward() after the last layer's gradients exist and before the first layer's.
    hidden.register_hook(lambda grad: seen_midway.append(list(store.calls)))
    F.cross_entropy(model[2](hidden), y).backward()

    assert sorted(k for k, _ in seen_midway[0]) == ["2.bias", "2.weight"]
    assert sorted(opt.pending()) == sorted(n for n, _ in model.named_parameters())
    priority = dict(store.calls)
    assert priority == {"0.weight": 0, "0.bias": -1, "2.weight": -2, "2.bias": -3}
    assert [k for k, _ in store.calls[2:]] in (["0.weight", "0.bias"], ["0.bias", "0.weight"])
    opt.step()
    assert opt.pending() == []


def test_unused_parameter_still_travels_and_gets_zero_gradient():
    model = make_model()
    extra = torch.nn.Parameter(torch.ones(4))
    named = list(model.named_parameters()) + [("extra", extra)]
    store = Recorder(kvactor.create("local"))
    opt = kvtorch.DistributedOptimizer(
        torch.optim.SGD([p for _, p in named], lr=0.1), named, store)
    x, y = batches(steps=1)[0]
    F.cross_entropy(model(x), y).backward()
    assert "extra" not in opt.pending()
    opt.step()
    assert "extra" in [k for k, _ in store.calls]
    assert torch.equal(extra.grad, torch.zeros(4))
    assert torch.equal(extra.detach(), torch.ones(4))


def test_synchronize_then_step_sends_once():
    model = make_model()
    store = Recorder(kvactor.create("local"))
    opt = kvtorch.DistributedOptimizer(sgd(model), model.named_parameters(), store)
    x, y = batches(steps=1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.synchronize()
    sent = len(store.calls)
    opt.step()
    assert sent == 4 and len(store.calls) == 4


def test_scheduler_and_state_dict_see_the_wrapped_optimizer():
    model = make_model()
    inner = sgd(model)
    opt = kvtorch.DistributedOptimizer(inner, model.named_parameters(), kvactor.create("local"))
    assert opt.param_groups is inner.param_groups
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = batches(steps=1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.step()
    scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.1)
    state = opt.state_dict()
    assert state["state"]  # momentum buffers, from the wrapped optimizer
    opt.load_state_dict(state)


def test_second_backward_before_step_is_refused():
    model = make_model()
    opt = kvtorch.DistributedOptimizer(sgd(model), model.named_parameters(),
                                       kvactor.create("local"))
    x, y = batches(steps=1)[0]
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="second gradient"):
        F.cross_entropy(model(x), y).backward()
    opt.zero_grad()  # lets the sums land and starts over
    F.cross_entropy(model(x), y).backward()
    opt.step()


def test_step_before_the_other_replica_backward_is_refused_not_hung():
    store = kvactor.create("local")
    a, b = make_model(), make_model()
    opt_a = kvtorch.DistributedOptimizer(sgd(a), a.named_parameters(), store)
    opt_b = kvtorch.DistributedOptimizer(sgd(b), b.named_parameters(), store)
    x, y = batches(steps=1)[0]
    F.cross_entropy(a(x), y).backward()
    with pytest.raises(RuntimeError, match="wait for another replica"):
        opt_a.step()
    # Withdrawn: both replicas start the step over and it completes.
    opt_a.zero_grad()
    opt_b.zero_grad()
    F.cross_entropy(a(x), y).backward()
    F.cross_entropy(b(x), y).backward()
    opt_a.step()
    opt_b.step()
    assert_same_weights(a, b)


def test_closed_replica_stops_counting():
    store = kvactor.create("local")
    reference = make_model()
    a, b = copy.deepcopy(reference), copy.deepcopy(reference)
    opt_a = kvtorch.DistributedOptimizer(sgd(a), a.named_parameters(), store)
    opt_b = kvtorch.DistributedOptimizer(sgd(b), b.named_parameters(), store)
    with pytest.raises(ValueError, match="already wrapped"):
        kvtorch.DistributedOptimizer(sgd(b), b.named_parameters(), store)
    opt_b.close()
    data = batches(steps=2)
    train(a, opt_a, data)
    train_reference(reference, data)
    assert_same_weights(a, reference)


def test_bad_arguments_are_refused():
    model = make_model()
    store = kvactor.create("local")
    params = list(model.named_parameters())
    with pytest.raises(ValueError, match="not in named_parameters"):
        kvtorch.DistributedOptimizer(sgd(model), params[:2], store)
    with pytest.raises(ValueError, match="unique"):
        kvtorch.DistributedOptimizer(sgd(model), params + [(params[0][0], params[1][1])], store)
    with pytest.raises(ValueError, match="pairs"):
        kvtorch.DistributedOptimizer(sgd(model), [p for _, p in params], store)
    with pytest.raises(TypeError):
        kvtorch.DistributedOptimizer(object(), params, store)
    with pytest.raises(NotImplementedError):
        kvtorch.DistributedOptimizer(sgd(model), params, store).add_param_group({"params": []})


def test_broadcast_parameters_in_one_process_keeps_the_values():
    store = kvactor.create("local")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model[1].num_batches_tracked += 7  # a 0-d int64 buffer
    state = model.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    kvtorch.broadcast_parameters(state, root_rank=0, store=store)
    kvtorch.broadcast_parameters(model.named_parameters(), root_rank=0, store=store)  # again
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="root_rank"):
        kvtorch.broadcast_parameters(state, root_rank=1, store=store)


def test_broadcast_parameters_takes_non_contiguous_and_bool_tensors():
    store = kvactor.create("local")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # not contiguous
    flags = torch.tensor([True, False, True])
    kvtorch.broadcast_parameters({"t": t, "flags": flags}, store=store)
    assert torch.equal(t, torch.arange(12, dtype=torch.float32).reshape(3, 4).t())
    assert torch.equal(flags, torch.tensor([True, False, True]))
    with pytest.raises(TypeError, match="element type"):
        kvtorch.broadcast_parameters({"c": torch.zeros(2, dtype=torch.int16)}, store=store)
