"""NumPy arrays and DLPack capsules as the store's values and outputs: read and written in
place (the pulled array is the caller's memory), every supported dtype, and clear refusals
(TypeError) for what would need a copy: non-contiguous, unsupported dtype, read-only output,
foreign byte order, misaligned data. A refused call changes nothing."""

import numpy as np
import pytest

import kvactor

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8]


def data_pointer(a):
    return a.__array_interface__["data"][0]


def make_store(shape=(2, 3), dtype=np.float32, value=1):
    kv = kvactor.create("local")
    kv.init("w", np.full(shape, value, dtype)).result()
    return kv


def test_pull_writes_into_the_callers_memory():
    kv = make_store(value=7)
    buf = np.zeros(10, np.float32)
    out = buf[2:8].reshape(2, 3)  # a C-contiguous view into a bigger buffer
    before = data_pointer(out)
    kv.pull("w", out=out).result()
    assert data_pointer(out) == before
    # The store wrote exactly that region of buf: in place, no copy handed back.
    assert buf.tolist() == [0, 0] + [7] * 6 + [0, 0]


def test_pushpull_without_out_writes_back_into_the_values():
    kv = make_store(value=0)
    grads = [np.full((2, 3), 2, np.float32) for _ in range(3)]
    pointers = [data_pointer(g) for g in grads]
    kv.pushpull("w", grads).result()
    assert [data_pointer(g) for g in grads] == pointers
    for g in grads:
        assert (g == 6).all()


def test_pushed_values_are_read_where_they_are():
    kv = make_store(value=0)
    big = np.arange(12, dtype=np.float32)
    kv.push("w", big[3:9].reshape(2, 3))
    out = np.empty((2, 3), np.float32)
    kv.pull("w", out=out).result()
    assert out.ravel().tolist() == list(range(3, 9))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_supported_dtype_round_trips(dtype):
    kv = kvactor.create("local")
    kv.init(1, np.full((3, 2), 3, dtype))
    kv.push(1, [np.full((3, 2), 2, dtype), np.full((3, 2), 5, dtype)])
    out = np.zeros((3, 2), dtype)
    kv.pull(1, out=out).result()
    assert out.dtype == dtype
    assert (out == 7).all()


def test_a_pull_converts_into_an_output_of_another_dtype():
    kv = make_store(value=2.75)
    out = np.zeros((2, 3), np.int32)
    kv.pull("w", out=out).result()
    assert (out == 2).all()  # MXNet's CopyFromTo: integers truncate


@pytest.mark.parametrize("make", [
    lambda: np.zeros((3, 4), np.float32)[:, ::2],             # strided view
    lambda: np.asfortranarray(np.zeros((2, 3), np.float32)),   # column-major
    lambda: np.zeros((3, 2), np.float32).T,                    # transposed
])
def test_non_contiguous_arrays_are_refused(make):
    kv = make_store(value=4)
    bad = make()
    with pytest.raises(TypeError, match="C-contiguous"):
        kv.pull("w", out=bad)
    with pytest.raises(TypeError, match="C-contiguous"):
        kv.push("w", bad)
    assert (bad == 0).all()  # untouched
    out = np.zeros((2, 3), np.float32)
    kv.pull("w", out=out).result()
    assert (out == 4).all()  # the store is as it was


@pytest.mark.parametrize("dtype", [np.int16, np.bool_, np.complex64, np.uint32, np.int8,
                                   np.float128 if hasattr(np, "float128") else np.longdouble])
def test_unsupported_dtypes_are_refused_by_name(dtype):
    kv = make_store()
    bad = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError, match=str(np.dtype(dtype))):
        kv.pull("w", out=bad)
    with pytest.raises(TypeError, match="is not one kvactor stores"):
        kv.init("other", bad)


def test_foreign_byte_order_is_refused():
    kv = make_store()
    with pytest.raises(TypeError, match="byte order"):
        kv.push("w", np.zeros((2, 3), ">f4"))


def test_a_read_only_array_may_be_pushed_but_not_pulled_into():
    kv = make_store(value=0)
    ro = np.full((2, 3), 3, np.float32)
    ro.setflags(write=False)
    kv.push("w", ro).result()  # read only: fine
    with pytest.raises(TypeError, match="read-only"):
        kv.pull("w", out=ro)
    with pytest.raises(TypeError, match="read-only"):
        kv.pushpull("w", ro)  # without out, the result goes back into the values
    out = np.zeros((2, 3), np.float32)
    kv.pull("w", out=out).result()
    assert (out == 3).all()


def test_misaligned_data_is_refused():
    kv = make_store()
    raw = np.zeros(4 * 6 + 1, np.uint8)
    misaligned = raw[1:].view(np.float32).reshape(2, 3)
    assert not misaligned.flags.aligned
    with pytest.raises(TypeError, match="aligned"):
        kv.pull("w", out=misaligned)


def test_an_array_changed_in_place_is_taken_as_it_is_now():
    """The binding reuses the view of an array passed again; one whose dims, dtype or memory
    changed in place since is viewed anew (a stale view would mismatch the keys' shapes)."""
    kv = kvactor.create("local")
    kv.init(["a", "b", "i"], [np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                              np.zeros((3, 2), np.int32)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    kv.push("a", x).result()
    x.shape = (3, 2)  # the same memory, other dims
    kv.push("b", x).result()
    x.view(np.int32)[:] = 5  # the same object viewed as int32 below: its bits, as int32
    x.dtype = np.int32
    kv.push("i", x).result()
    x.dtype = np.float32
    y = x.copy()
    x.resize((3, 2), refcheck=False)  # may move the memory; the view follows it
    x[:] = 9
    kv.pushpull("b", x).result()
    assert (x == 9).all()
    out = np.zeros((3, 2), np.int32)
    kv.pull("i", out=out).result()
    assert (out == 5).all()
    kv.pull("a", out=y.reshape(2, 3)).result()
    np.testing.assert_array_equal(y.reshape(-1), np.arange(6, dtype=np.float32))


def test_lists_scalars_and_0d_arrays_are_not_copied_into_arrays():
    kv = make_store()
    with pytest.raises(TypeError, match=r"value\[0\]\[0\]: .* got float"):
        kv.push("w", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(TypeError, match="got float"):
        kv.push("w", 1.0)
    with pytest.raises(kvactor.InvalidArgument, match="0-d"):
        kv.push("w", np.ones((), np.float32))


def test_a_dlpack_capsule_is_a_view_too():
    kv = make_store(value=0)
    src = np.full((2, 3), 5, np.float32)
    kv.push("w", src.__dlpack__()).result()
    out = np.zeros((2, 3), np.float32)
    kv.pull("w", out=out.__dlpack__()).result()  # writes into out's memory through the capsule
    assert (out == 5).all()


def test_int_and_str_keys_and_numpy_integers():
    kv = kvactor.create("local")
    kv.init(np.int64(4), np.ones(2, np.float32)).result()
    out = np.zeros(2, np.float32)
    kv.pull(4, out=out).result()
    assert (out == 1).all()
    with pytest.raises(TypeError, match="a key is an int or a str"):
        kv.pull(4.0, out=out)
    with pytest.raises(TypeError, match="a key is an int or a str"):
        kv.pull(True, out=out)
