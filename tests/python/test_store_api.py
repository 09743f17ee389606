"""The rest of MXNet's KVStore API from Python: the documented examples of MXNet's KVStore
API reference (mxnet.kvstore) with their numbers (broadcast, pushpull, set_optimizer,
_set_updater), set_optimizer's MXNet-style arguments, gradient compression, optimizer states,
priorities, properties, options and closing."""

import inspect

import numpy as np
import pytest

import kvactor

F32 = np.float32
SHAPE = (2, 3)


def full(value, shape=SHAPE):
    return np.full(shape, value, F32)


def pulled(kv, key, shape=SHAPE, dtype=F32):
    out = np.zeros(shape, dtype)
    kv.pull(key, out=out).result()
    return out


def test_broadcast_example():
    kv = kvactor.create("local")
    a = np.zeros(SHAPE, F32)
    kv.broadcast("3", full(2), out=a).result()
    assert (a == 2).all()


def test_pushpull_examples():
    kv = kvactor.create("local")
    kv.init("3", full(2))
    a = np.zeros(SHAPE, F32)
    kv.pushpull("3", full(8), out=a).result()
    assert (a == 8).all()
    kv.pushpull("3", [full(1) for _ in range(4)], out=a).result()
    assert (a == 4).all()
    keys = ["4", "5", "6"]
    kv.init(keys, [full(0) for _ in keys])
    b = [np.zeros(SHAPE, F32) for _ in keys]
    kv.pushpull(keys, [full(1) for _ in keys], out=b).result()
    assert (b[1] == 1).all()
    keys = ["7", "8", "9"]
    kv.init(keys, [full(0) for _ in keys])
    bb = [[full(1) for _ in range(4)] for _ in keys]
    kv.pushpull(keys, bb).result()  # in place
    assert (bb[1][1] == 4).all()


def test_set_optimizer_example_default_sgd():
    kv = kvactor.create()
    weight = np.zeros((2, 2), F32)
    kv.init(3, weight)
    kv.set_optimizer("sgd")  # MXNet's SGD defaults: learning rate 0.01
    kv.push(3, np.ones((2, 2), F32))
    kv.pull(3, out=weight).result()
    np.testing.assert_allclose(weight, -0.01, rtol=1e-6)


@pytest.mark.parametrize("how", ["kwargs", "dict", "params"])
def test_set_optimizer_hyper_parameters(how):
    kv = kvactor.create()
    kv.init(0, full(1.0, (4,)))
    args = {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.0}
    if how == "kwargs":
        kv.set_optimizer("sgd", **args)
    elif how == "dict":
        kv.set_optimizer(dict(args, type="sgd"))
    else:
        kv.set_optimizer("sgd", args)
    grad = full(1.0, (4,))
    kv.push(0, grad)
    kv.push(0, grad)
    # SGD with momentum: m1 = -0.1; w1 = 0.9; m2 = 0.9 * -0.1 - 0.1 = -0.19; w2 = 0.71.
    np.testing.assert_allclose(pulled(kv, 0, (4,)), 0.71, rtol=1e-6)


def test_set_optimizer_nested_arguments_are_flattened():
    kv = kvactor.create()
    kv.init([1, 2], [full(0.0, (2,)), full(0.0, (2,))])
    kv.set_optimizer("sgd", learning_rate=1.0, lr_mult={2: 0.5},
                     lr_scheduler={"type": "factor", "step": 1, "factor": 0.5})
    kv.push([1, 2], [full(1.0, (2,)), full(1.0, (2,))])
    kv.push([1, 2], [full(1.0, (2,)), full(1.0, (2,))])
    # Factor schedule: lr 1 for update 1, 0.5 for update 2 (step 1); key 2 at half of that.
    np.testing.assert_allclose(pulled(kv, 1, (2,)), -1.5, rtol=1e-6)
    np.testing.assert_allclose(pulled(kv, 2, (2,)), -0.75, rtol=1e-6)
    with pytest.raises(TypeError, match="must be a number"):
        kv.set_optimizer("sgd", learning_rate="fast")
    with pytest.raises(TypeError, match="Optimizer objects"):
        kv.set_optimizer(object())
    with pytest.raises(ValueError, match="lr_scheduler type"):
        kv.set_optimizer("sgd", lr_scheduler={"type": "zigzag"})


def test_set_updater_example():
    kv = kvactor.create("local")
    kv.init("3", full(2))
    kv.push("3", [full(1) for _ in range(4)])  # '3' now holds 4s
    seen = []

    def update(key, input, stored):
        seen.append(key)
        stored += input * 2

    kv._set_updater(update)
    assert (pulled(kv, "3") == 4).all()
    kv.push("3", full(1))
    assert (pulled(kv, "3") == 6).all()
    assert seen == ["3"]
    with pytest.raises(TypeError, match="callable"):
        kv._set_updater(42)


def test_updater_arrays_view_the_store():
    kv = kvactor.create("local")
    kv.init(5, full(1.0))
    shapes = []

    def update(key, input, stored):
        shapes.append((key, input.shape, input.dtype, stored.shape, input.flags.writeable,
                       stored.flags.writeable))
        stored[...] = input * 10 + stored

    kv._set_updater(update)
    kv.push(5, full(2.0)).result()
    assert shapes == [(5, SHAPE, np.dtype(F32), SHAPE, False, True)]
    assert (pulled(kv, 5) == 21).all()


def test_gradient_compression_two_bit_merge():
    kv = kvactor.create("local")
    kv.init(1, np.zeros(4, F32))
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    grad = np.array([0.7, -0.7, 0.2, 0.6], F32)
    out = np.zeros(4, F32)
    kv.pushpull(1, [grad.copy(), grad.copy()], out=out).result()
    # Each device's value is quantized to +-0.5 or 0 (residuals kept), then summed.
    assert out.tolist() == [1.0, -1.0, 0.0, 1.0]
    with pytest.raises(kvactor.InvalidArgument, match="bogus"):
        kv.set_gradient_compression({"type": "2bit", "bogus": 1})
    with pytest.raises(kvactor.InvalidArgument, match="'type' is required"):
        kv.set_gradient_compression({"threshold": 0.5})
    kv.set_gradient_compression({"type": "none"})


def test_optimizer_states_round_trip(tmp_path):
    path = str(tmp_path / "states")
    first = kvactor.create("local")
    first.init(0, full(1.0, (3,)))
    first.set_optimizer("sgd", learning_rate=0.1, momentum=0.9)
    first.push(0, full(1.0, (3,)))
    first.save_optimizer_states(path, dump_optimizer=True)
    first.push(0, full(1.0, (3,)))
    expected = pulled(first, 0, (3,))

    second = kvactor.create("local")
    second.init(0, full(0.9, (3,)))  # the weight after the first push
    second.load_optimizer_states(path)  # sets the optimizer too, and the momentum
    second.push(0, full(1.0, (3,)))
    np.testing.assert_allclose(pulled(second, 0, (3,)), expected, rtol=1e-6)
    with pytest.raises(kvactor.Error):
        second.load_optimizer_states(str(tmp_path / "missing"))


def test_priorities_and_properties():
    kv = kvactor.create("local", num_shards=2, worker_threads=2)
    kv.init(["a", "b"], [full(0), full(0)])
    fs = [kv.push("a", full(1), priority=10), kv.push("b", full(2), priority=-3)]
    for f in fs:
        f.result()
    assert (pulled(kv, "a") == 1).all() and (pulled(kv, "b") == 2).all()
    assert (kv.type, kv.rank, kv.num_workers) == ("local", 0, 1)
    assert kv.is_capable("optimizer") and kv.is_capable("OPTIMIZER")
    kv.barrier()
    kv._barrier()
    assert kv.outstanding == 0
    with pytest.raises(TypeError, match="unknown option 'shards'"):
        kvactor.create("local", shards=2)


def test_data_calls_bind_arguments_as_python_does():
    """push, pull and pushpull (bound in CPython's fast convention, not pybind11's): keywords,
    defaults, and Python's own TypeErrors for what does not bind; nothing reaches the store."""
    kv = kvactor.create("local")
    kv.init("a", full(1)).result()
    out = np.zeros(SHAPE, F32)
    kv.pushpull(value=full(2), key="a", out=out, priority=3).result()
    assert (out == 2).all()
    kv.pull("a", out, 0, True).result()
    assert (out == 2).all()
    for call, message in [
        (lambda: kv.push("a"), "missing required argument 'value'"),
        (lambda: kv.push(), "missing required argument 'key'"),
        (lambda: kv.push("a", full(1), 0, 1), "at most 3 arguments"),
        (lambda: kv.push("a", full(1), prio=1), "unexpected keyword argument 'prio'"),
        (lambda: kv.pushpull("a", full(1), key="a"), "multiple values for argument 'key'"),
        (lambda: kv.push("a", full(1), priority=1.5), "integer"),
        (lambda: kv.pull("a", out, ignore_sparse=1), "ignore_sparse must be a bool"),
        (lambda: kv.pull("a"), "pull's out is required"),
    ]:
        with pytest.raises(TypeError, match=message):
            call()
    with pytest.raises(OverflowError):
        kv.push("a", full(1), priority=2**40)
    assert kv.outstanding == 0
    assert (pulled(kv, "a") == 2).all()  # none of the refused pushes reached it
    assert str(inspect.signature(kv.pushpull)) == "(key, value, out=None, priority=0)"
    assert str(inspect.signature(kvactor.KVStore.pull)) == (
        "(self, /, key, out=None, priority=0, ignore_sparse=True)")
    with pytest.raises(TypeError):
        kvactor.Future()
    with pytest.raises(TypeError, match="not initialized"):
        kvactor.KVStore.__new__(kvactor.KVStore).push("a", full(1))


def test_context_manager_closes():
    with kvactor.create("local") as kv:
        kv.init(1, full(1)).result()
    with pytest.raises(kvactor.ShutDown):
        kv.init(2, full(1))
    assert "closed" in repr(kv)


def test_row_sparse_values_and_outputs():
    kv = kvactor.create("local")
    dense = np.zeros((5, 2), F32)
    dense[1] = 1
    dense[3] = 3
    rs = kvactor.RowSparse.from_dense(dense)
    assert rs.indices.tolist() == [1, 3] and rs.shape == (5, 2) and rs.dtype == "float32"
    kv.init("e", rs)
    kv.push("e", kvactor.RowSparse(np.full((1, 2), 7, F32), np.array([4]), (5, 2)))
    out = kvactor.RowSparse.zeros((5, 2))
    kv.row_sparse_pull("e", out=out, row_ids=np.array([4, 0, 4], np.int64)).result()
    assert out.indices.tolist() == [0, 4]
    assert out.data.tolist() == [[0, 0], [7, 7]]
    assert out.asnumpy()[4].tolist() == [7, 7]
    assert "2 rows" in repr(out)
    with pytest.raises(TypeError, match="mixes"):
        kv.push(["e", "e"], [np.zeros((5, 2), F32), out])
