"""DLPack producers hand their memory to the store without copies: hand-made capsules (the
protocol's structs built with ctypes) for what no installed library produces here — device
memory, odd strides, vector lanes — and the rules they must meet. PyTorch tensors are in
test_dlpack_torch.py (that file skips where torch is missing)."""

import ctypes

import numpy as np
import pytest

import kvactor

CPU, CUDA, CUDA_HOST, OPENCL = 1, 2, 3, 4
INT, UINT, FLOAT, BFLOAT = 0, 1, 2, 4


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Producer:
    """An object with __dlpack__ over `array`'s memory, described as the arguments say."""

    def __init__(self, array, device=CPU, device_id=0, code=FLOAT, bits=None, lanes=1,
                 strides=None, shape=None):
        self.array = array  # keeps the memory alive
        shape = array.shape if shape is None else shape
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = None if strides is None else (ctypes.c_int64 * len(strides))(*strides)
        self.managed = DLManagedTensor()
        t = self.managed.dl_tensor
        t.data = array.__array_interface__["data"][0]
        t.device = DLDevice(device, device_id)
        t.ndim = len(shape)
        t.dtype = DLDataType(code, bits or array.dtype.itemsize * 8, lanes)
        t.shape = self.shape
        t.strides = self.strides
        t.byte_offset = 0

    def __dlpack__(self, stream=None):
        return _new_capsule(ctypes.addressof(self.managed), b"dltensor", None)


def store(value=0.0):
    kv = kvactor.create("local")
    kv.init("w", np.full((2, 3), value, np.float32)).result()
    return kv


def test_a_producer_is_read_and_written_in_place():
    kv = store(4.0)
    mem = np.zeros((2, 3), np.float32)
    kv.pull("w", out=Producer(mem)).result()
    assert (mem == 4).all()
    kv.push("w", Producer(np.full((2, 3), 9, np.float32), device=CUDA_HOST)).result()
    kv.pull("w", out=Producer(mem)).result()
    assert (mem == 9).all()


def test_compact_strides_are_accepted_and_others_refused():
    kv = store(1.0)
    mem = np.zeros((2, 3), np.float32)
    kv.pull("w", out=Producer(mem, strides=(3, 1))).result()
    assert (mem == 1).all()
    one_row = np.zeros((1, 3), np.float32)
    kv.init("r", Producer(one_row, strides=(99, 1))).result()  # size-1 dims: any stride
    with pytest.raises(TypeError, match="not contiguous"):
        kv.pull("w", out=Producer(mem, strides=(1, 2)))


def test_dtypes_lanes_and_devices_are_checked():
    kv = store()
    mem = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="lanes"):
        kv.pull("w", out=Producer(mem, lanes=2))
    with pytest.raises(TypeError, match="code 0, 16 bits"):
        kv.pull("w", out=Producer(np.zeros((2, 3), np.int16), code=INT))
    with pytest.raises(TypeError, match="device type 4"):
        kv.pull("w", out=Producer(mem, device=OPENCL))
    with pytest.raises(kvactor.InvalidArgument, match="0-d"):
        kv.push("w", Producer(np.zeros(1, np.float32), shape=()))


def test_bfloat16_travels_as_bfloat16():
    kv = kvactor.create("local")
    halves = np.array([0x3F80, 0x4000, 0xC040], np.uint16)  # 1.0, 2.0, -3.0 as bfloat16
    kv.init("b", Producer(halves, code=BFLOAT)).result()
    out = np.zeros(3, np.float32)
    kv.pull("b", out=out).result()  # converted to the output's float32
    assert out.tolist() == [1.0, 2.0, -3.0]


def test_a_cuda_tensor_needs_a_device():
    kv = kvactor.create("device")
    mem = np.full(4, 3, np.float32)
    if kvactor.cuda_device_count() == 0:
        # No device here (or a build without CUDA): refused, naming the device and why.
        with pytest.raises(kvactor.Unsupported, match=r"cuda\(0\).*CUDA"):
            kv.init(1, Producer(mem, device=CUDA))
        return
    if not kvactor.cuda_emulated():
        pytest.skip("a real GPU: host memory cannot pose as device memory (torch.cuda covers it)")
    # Emulated devices keep their memory on the host, so host memory can pose as theirs: the
    # value goes through the device store's device path.
    kv.init(1, Producer(mem, device=CUDA)).result()
    kv.push(1, [Producer(np.ones(4, np.float32), device=CUDA, device_id=i)
                for i in range(kvactor.cuda_device_count())]).result()
    out = np.zeros(4, np.float32)
    kv.pull(1, out=Producer(out, device=CUDA)).result()
    assert (out == kvactor.cuda_device_count()).all()
