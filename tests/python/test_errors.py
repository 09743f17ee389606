"""Every kvactor::errc is a Python exception class deriving from kvactor.Error and from the
builtin a Python user expects; the store's real failures raise them with the C++ message, and
leave the store as it was."""

import numpy as np
import pytest

import kvactor

EXPECTED = {
    "not_initialized": ("NotInitialized", KeyError),
    "already_initialized": ("AlreadyInitialized", ValueError),
    "shape_mismatch": ("ShapeMismatch", ValueError),
    "dtype_mismatch": ("DtypeMismatch", TypeError),
    "mixed_key_types": ("MixedKeyTypes", TypeError),
    "invalid_argument": ("InvalidArgument", ValueError),
    "peer_lost": ("PeerLost", ConnectionError),
    "timeout": ("Timeout", TimeoutError),
    "protocol_error": ("ProtocolError", ConnectionError),
    "unauthenticated": ("Unauthenticated", PermissionError),
    "unsupported": ("Unsupported", NotImplementedError),
    "out_of_range": ("OutOfRange", IndexError),
    "updater_failed": ("UpdaterFailed", RuntimeError),
    "shut_down": ("ShutDown", RuntimeError),
    "internal": ("InternalError", RuntimeError),
    "aborted": ("Aborted", RuntimeError),
}


def test_one_class_per_code():
    assert set(kvactor.errors) == set(EXPECTED)
    for code, (name, builtin) in EXPECTED.items():
        cls = getattr(kvactor, name)
        assert kvactor.errors[code] is cls
        assert issubclass(cls, kvactor.Error) and issubclass(cls, builtin)
        assert cls.code == code and cls.__module__ == "kvactor"
        e = cls("the message")
        assert str(e) == "the message"  # also for KeyError, whose str() would quote it


F32 = np.float32


@pytest.fixture
def kv():
    store = kvactor.create("local")
    store.init("w", np.full((2, 3), 5, F32)).result()
    return store


def assert_unchanged(kv):
    out = np.zeros((2, 3), F32)
    kv.pull("w", out=out).result()
    assert (out == 5).all()


def test_not_initialized(kv):
    with pytest.raises(kvactor.NotInitialized, match='key "nope" is not initialized'):
        kv.push("nope", np.ones(3, F32)).result()
    with pytest.raises(KeyError):
        kv.pull("nope", out=np.ones(3, F32)).result()


def test_already_initialized(kv):
    with pytest.raises(kvactor.AlreadyInitialized, match='"w"'):
        kv.init("w", np.zeros((2, 3), F32)).result()
    assert_unchanged(kv)


def test_shape_and_dtype_mismatch(kv):
    with pytest.raises(kvactor.ShapeMismatch, match=r"\(3, 2\)"):
        kv.push("w", np.ones((3, 2), F32)).result()
    with pytest.raises(kvactor.DtypeMismatch, match="float64"):
        kv.push("w", np.ones((2, 3), np.float64)).result()
    assert_unchanged(kv)


def test_mixed_key_types(kv):
    with pytest.raises(kvactor.MixedKeyTypes):
        kv.init(3, np.ones(2, F32)).result()
    with pytest.raises(kvactor.MixedKeyTypes):
        kv.push(["w", 3], [np.ones((2, 3), F32), np.ones(2, F32)]).result()
    assert_unchanged(kv)


def test_invalid_argument(kv):
    with pytest.raises(kvactor.InvalidArgument, match="teleport"):
        kv.set_optimizer("teleport")
    with pytest.raises(kvactor.InvalidArgument, match="momentum"):
        kv.set_optimizer("sgd", momentum=1.5)
    with pytest.raises(kvactor.InvalidArgument, match="teleportation"):
        kv.is_capable("teleportation")
    with pytest.raises(ValueError, match="unknown store type"):
        kvactor.create("no_such_store")
    a = np.zeros((2, 3), F32)
    with pytest.raises(kvactor.InvalidArgument):  # one output given twice
        kv.pull(["w", "w"], out=[a, a]).result()
    assert_unchanged(kv)


def test_out_of_range(kv):
    out = np.full((2, 3), 9, F32)
    with pytest.raises(kvactor.OutOfRange, match="7"):
        kv.row_sparse_pull("w", out=out, row_ids=np.array([0, 7], np.int64)).result()
    assert (out == 9).all()  # found before anything was written


def test_unsupported(kv):
    with pytest.raises(kvactor.Unsupported):
        kv._send_command_to_servers(3, "1")


def test_updater_failed_names_the_python_exception(kv):
    def bad(key, recv, stored):
        raise ValueError("boom on %s" % key)

    kv._set_updater(bad)
    with pytest.raises(kvactor.UpdaterFailed, match=r"ValueError: boom on w \(at .*test_errors.py:\d+ in bad\)"):
        kv.push("w", np.ones((2, 3), F32)).result()
    assert_unchanged(kv)
    kv._set_updater(None)  # the store stays usable
    kv.push("w", np.full((2, 3), 6, F32)).result()
    out = np.zeros((2, 3), F32)
    kv.pull("w", out=out).result()
    assert (out == 6).all()


def test_shut_down_after_close(kv):
    kv.close()
    with pytest.raises(kvactor.ShutDown, match="closed"):
        kv.push("w", np.ones((2, 3), F32))
    kv.close()  # twice is fine


def test_wait_all_raises_an_error_nobody_looked_at(kv):
    kv.pull("nobody", out=np.zeros(2, F32))  # future dropped
    with pytest.raises(kvactor.NotInitialized, match="nobody"):
        kv.wait_all()
    kv.wait_all()  # reported once
