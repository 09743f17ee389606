"""PyTorch CUDA tensors through DLPack into the device store, in place. Needs torch with CUDA
and a real GPU that kvactor sees (this file skips otherwise; test_dlpack.py checks the refusal
without a device and the device path on emulated devices)."""

import pytest

import kvactor

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch has no CUDA device", allow_module_level=True)
if kvactor.cuda_device_count() == 0 or kvactor.cuda_emulated():
    pytest.skip("kvactor has no real CUDA device", allow_module_level=True)


def test_cuda_tensors_are_read_and_written_in_place():
    kv = kvactor.create("device")
    x = torch.full((8,), 3.0, device="cuda:0")
    torch.cuda.synchronize()  # the store cannot see torch's streams: finish the work first
    kv.init(0, x).result()
    grads = [torch.ones(8, device="cuda:0") for _ in range(2)]
    torch.cuda.synchronize()
    kv.push(0, grads).result()
    out = torch.zeros(8, device="cuda:0")
    ptr = out.data_ptr()
    kv.pull(0, out=out).result()
    assert out.data_ptr() == ptr and bool((out == 2).all())
    host = torch.zeros(8)
    kv.pull(0, out=host).result()  # a CPU tensor from a key on the device
    assert bool((host == 2).all())
