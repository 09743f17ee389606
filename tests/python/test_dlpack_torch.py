"""PyTorch tensors through DLPack: CPU tensors are read and written in place (the pulled tensor
is the caller's memory), bfloat16 included; non-contiguous ones are refused. CUDA tensors are
in test_dlpack_torch_cuda.py."""

import numpy as np
import pytest

import kvactor

torch = pytest.importorskip("torch")


def test_pull_into_a_torch_tensor_writes_its_memory():
    kv = kvactor.create("local")
    kv.init("w", torch.full((4, 5), 2.0)).result()
    out = torch.zeros(4, 5)
    ptr = out.data_ptr()
    kv.pull("w", out=out).result()
    assert out.data_ptr() == ptr and bool((out == 2).all())
    grads = [torch.ones(4, 5), torch.ones(4, 5)]
    kv.pushpull("w", grads).result()  # written back into the tensors
    assert all(bool((g == 2).all()) for g in grads)


def test_torch_and_numpy_mix_and_bfloat16():
    kv = kvactor.create("local")
    kv.init(0, torch.tensor([1.5, -2.0], dtype=torch.bfloat16)).result()
    out = torch.zeros(2, dtype=torch.bfloat16)
    kv.pull(0, out=out).result()
    assert out.tolist() == [1.5, -2.0]
    as_numpy = np.zeros(2, np.float32)
    kv.pull(0, out=as_numpy).result()
    assert as_numpy.tolist() == [1.5, -2.0]


def test_non_contiguous_and_unsupported_tensors_are_refused():
    kv = kvactor.create("local")
    kv.init(0, torch.zeros(3, 4)).result()
    with pytest.raises(TypeError, match="not contiguous"):
        kv.pull(0, out=torch.zeros(4, 3).t())
    with pytest.raises(TypeError, match="is not one kvactor stores"):
        kv.pull(0, out=torch.zeros(3, 4, dtype=torch.int16))
    with pytest.raises(RuntimeError, match="detach"):  # torch's own rule for autograd leaves
        kv.push(0, torch.zeros(3, 4, requires_grad=True))
