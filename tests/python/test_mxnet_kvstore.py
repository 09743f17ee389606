"""MXNet's own KVStore unit cases (tests/python/unittest/test_kvstore.py of apache/mxnet 1.x),
rewritten for kvactor with the same keys, shapes and expected numbers.

What differs, and why:
- mx.nd arrays are NumPy arrays; `tostype('row_sparse')` is kvactor.RowSparse.from_dense, a
  row-sparse `out` is a kvactor.RowSparse.
- MXNet's calls return at once and NDArray reads wait for them; NumPy reads cannot wait, so
  each pull's future is waited on (.result()) before its output is read.
- "Devices" are four CPU arrays, as MXNet's test uses four cpu contexts.
- MXNet's lists such as `[[a, b, c, d]] * 3` repeat the same arrays for every key; as outputs
  they would be written by three keys at once, which kvactor refuses (outputs may not
  overlap), so each key gets arrays of its own.
- Errors are exceptions of the call's future (result()), as kvactor's calls are asynchronous:
  MXNet raises MXNetError at the call.
- row_sparse_pull into a dense output is a kvactor superset (MXNet refuses it): the output
  gets the requested rows and zeros elsewhere; that case checks kvactor's rule.
- pull(ignore_sparse=False) into row-sparse outputs is refused (kvactor.InvalidArgument, "use
  row_sparse_pull"), as kvactor's C++ API does; MXNet's sparse aggregator case pulls that way
  and also through row_sparse_pull, which is kept.
"""

import numpy as np
import pytest

import kvactor

shape = (4, 4)
keys = [5, 7, 11]
str_keys = ["b", "c", "d"]


def zeros(stype="default"):
    dense = np.zeros(shape, np.float32)
    return kvactor.RowSparse.from_dense(dense) if stype == "row_sparse" else dense


def ones(stype="default", scale=1.0):
    dense = np.full(shape, scale, np.float32)
    return kvactor.RowSparse.from_dense(dense) if stype == "row_sparse" else dense


def init_kv(stype="default"):
    kv = kvactor.create()
    kv.init(3, zeros(stype))
    kv.init(keys, [zeros(stype) for _ in keys])
    return kv


def init_kv_with_str(stype="default"):
    kv = kvactor.create()
    kv.init("a", zeros(stype))
    kv.init(str_keys, [zeros(stype) for _ in str_keys])
    return kv


def check_diff_to_scalar(a, x):
    a = a.asnumpy() if isinstance(a, kvactor.RowSparse) else a
    assert np.sum(np.abs(a - x)) == 0, a


def rand_row_sparse(rng):
    dense = rng.random(shape).astype(np.float32)
    dense[rng.random(shape[0]) < 0.5] = 0  # about half the rows absent
    return kvactor.RowSparse.from_dense(dense)


@pytest.mark.parametrize("stype", ["default", "row_sparse"])
def test_single_kv_pair(stype):
    def check_single_kv_pair(kv, key):
        kv.push(key, ones(stype))
        val = np.empty(shape, np.float32)
        kv.pull(key, out=val).result()
        check_diff_to_scalar(val, 1)

    check_single_kv_pair(init_kv(), 3)
    check_single_kv_pair(init_kv_with_str(), "a")


def test_row_sparse_pull():
    kv = init_kv_with_str("row_sparse")
    kv.init("e", kvactor.RowSparse.from_dense(np.ones(shape, np.float32)))
    rng = np.random.default_rng(0)

    def check_row_sparse_pull(kv, count):
        num_rows = shape[0]
        vals = [kvactor.RowSparse.from_dense(np.zeros(shape, np.float32)) for _ in range(count)]
        # MXNet's ids: random, repeated, unsorted, float (mx.nd.array's default), 2-D.
        row_ids = [rng.integers(num_rows, size=num_rows).astype(np.float32)
                   .reshape(2, num_rows // 2) for _ in range(count)]
        row_ids_to_pull = row_ids[0] if len(row_ids) == 1 else row_ids
        vals_to_pull = vals[0] if len(vals) == 1 else vals
        kv.row_sparse_pull("e", out=vals_to_pull, row_ids=row_ids_to_pull).result()
        for val, row_id in zip(vals, row_ids):
            retained = val.asnumpy()
            excluded_row_ids = np.setdiff1d(np.arange(num_rows), row_id)
            for row in range(num_rows):
                expected_val = np.zeros_like(retained[row])
                expected_val += 0 if row in excluded_row_ids else 1
                np.testing.assert_allclose(retained[row], expected_val)

    check_row_sparse_pull(kv, 1)
    check_row_sparse_pull(kv, 4)


def test_init():
    def check_init(kv, key):
        kv.init(key, ones(scale=4))
        a = np.zeros(shape, np.float32)
        kv.pull(key, out=a).result()
        check_diff_to_scalar(a, 4)

    check_init(kvactor.create(), 3)
    check_init(kvactor.create(), "a")


def test_pull():
    def check_pull(kv):
        a = np.ones(shape, np.float32)
        b = np.zeros(shape, np.float32)
        kv.init("1", np.zeros(shape, np.float32))
        kv.push("1", [a, a, a, a])
        kv.pull("1", b).result()
        check_diff_to_scalar(b, 4)
        kv.init("2", np.zeros(shape, np.float32))
        kv.pull("2", b).result()
        check_diff_to_scalar(b, 0)

    check_pull(kvactor.create("device"))
    check_pull(kvactor.create())


@pytest.mark.parametrize("stype", ["default", "row_sparse"])
def test_list_kv_pair(stype):
    def check_list_kv_pair(kv, key):
        kv.push(key, [ones(stype, 4) for _ in key])
        val = [np.empty(shape, np.float32) for _ in key]
        kv.pull(key, out=val).result()
        for v in val:
            check_diff_to_scalar(v, 4)

    check_list_kv_pair(init_kv(), keys)
    check_list_kv_pair(init_kv_with_str(), str_keys)


def check_single_key_of_devices(kv, key, stype, num_devs):
    """MXNet's "single" step of its aggregator and updater cases: one value of ones per
    device pushed, then pulled into one output per device."""
    vals = [ones(stype) for _ in range(num_devs)]
    outs = [np.empty(shape, np.float32) for _ in range(num_devs)]
    kv.push(key, vals)
    kv.pull(key, out=outs).result()
    for out in outs:
        check_diff_to_scalar(out, num_devs)


@pytest.mark.parametrize("stype", ["default", "row_sparse"])
def test_aggregator(stype):
    def check_aggregator(kv, key, key_list):
        num_devs = 4
        check_single_key_of_devices(kv, key, stype, num_devs)
        # list
        vals = [[ones(stype, 2.0) for _ in range(num_devs)]] * len(key_list)
        outs = [[np.empty(shape, np.float32) for _ in range(num_devs)] for _ in key_list]
        kv.push(key_list, vals)
        kv.pull(key_list, out=outs).result()
        for out in outs:
            for o in out:
                check_diff_to_scalar(o, num_devs * 2.0)

    check_aggregator(init_kv(), 3, keys)
    check_aggregator(init_kv_with_str(), "a", str_keys)


def test_sparse_aggregator():
    rng = np.random.default_rng(1)
    kv = init_kv_with_str("row_sparse")
    num_devs = 4
    all_rows = np.arange(shape[0], dtype=np.float32)

    # single
    vals = [rand_row_sparse(rng) for _ in range(num_devs)]
    expected_sum = sum(v.asnumpy() for v in vals)
    kv.push("a", vals)
    kv.row_sparse_pull("a", out=vals, row_ids=[all_rows] * len(vals)).result()
    result_sum = sum(v.asnumpy() for v in vals)
    np.testing.assert_allclose(result_sum, expected_sum * num_devs, rtol=1e-6)

    # list
    vals = [[rand_row_sparse(rng) for _ in range(num_devs)] for _ in str_keys]
    expected = [sum(v.asnumpy() for v in vv) for vv in vals]
    kv.push(str_keys, vals)
    kv.row_sparse_pull(str_keys, out=vals, row_ids=[[all_rows] * num_devs] * len(vals)).result()
    for vv, exp in zip(vals, expected):
        result_sum = sum(v.asnumpy() for v in vv)
        np.testing.assert_allclose(result_sum, exp * num_devs, rtol=1e-6)

    # MXNet's other way, pull(ignore_sparse=False) into row-sparse outputs: refused here.
    with pytest.raises(kvactor.InvalidArgument, match="row_sparse_pull"):
        kv.pull("a", out=vals[0], ignore_sparse=False).result()


def updater(key, recv, local):
    """use updater: += with int keys"""
    assert isinstance(key, int)
    local += recv


def str_updater(key, recv, local):
    """use updater: += with str keys"""
    assert isinstance(key, str)
    local += recv


@pytest.mark.parametrize("stype", ["default", "row_sparse"])
def test_updater(stype):
    def check_updater(kv, key, key_list):
        num_devs = 4
        check_single_key_of_devices(kv, key, stype, num_devs)
        # list
        vals = [[ones(stype) for _ in range(num_devs)]] * len(key_list)
        outs = [[np.empty(shape, np.float32) for _ in range(num_devs)] for _ in key_list]
        num_push = 4
        for _ in range(num_push):
            kv.push(key_list, vals)
        kv.pull(key_list, out=outs).result()
        for out in outs:
            for o in out:
                check_diff_to_scalar(o, num_devs * num_push)

    kv = init_kv()
    kv._set_updater(updater)
    check_updater(kv, 3, keys)

    str_kv = init_kv_with_str()
    str_kv._set_updater(str_updater)
    check_updater(str_kv, "a", str_keys)


def test_get_type():
    kvtype = "local_allreduce_cpu"
    kv = kvactor.create(kvtype)
    assert kv.type == kvtype


def test_invalid_pull():
    def check_ignored_pull_single(kv, key):
        rsp_val = kvactor.RowSparse.from_dense(np.full(shape, 2, np.float32))
        kv.pull(key, out=rsp_val).result()
        check_diff_to_scalar(rsp_val, 2)

    def check_ignored_pull_list(kv, key):
        rsp_val = [kvactor.RowSparse.from_dense(np.full(shape, 2, np.float32)) for _ in key]
        kv.pull(key, out=rsp_val).result()
        for v in rsp_val:
            check_diff_to_scalar(v, 2)

    def check_rsp_pull_into_dense_single(kv, key):
        # MXNet refuses a dense out here; kvactor fills row 1 and zeroes the others.
        dns_val = np.full(shape, 2, np.float32)
        kv.row_sparse_pull(key, out=dns_val, row_ids=np.array([1], np.float32)).result()
        check_diff_to_scalar(dns_val, 0)  # the stored values are zeros

    def check_rsp_pull_into_dense_list(kv, key):
        dns_val = [np.full(shape, 2, np.float32) for _ in key]
        kv.row_sparse_pull(key, out=dns_val, row_ids=[np.array([1], np.float32)] * len(key)).result()
        for v in dns_val:
            check_diff_to_scalar(v, 0)

    def check_invalid_key_types_single(kv, key):
        dns_val = np.full(shape, 2, np.float32)
        rsp_val = kvactor.RowSparse.from_dense(dns_val)
        for call in (lambda: kv.init(key, dns_val), lambda: kv.push(key, dns_val),
                     lambda: kv.pull(key, dns_val)):
            with pytest.raises(kvactor.MixedKeyTypes):
                call().result()
        with pytest.raises(kvactor.MixedKeyTypes):
            kv.row_sparse_pull(key, rsp_val, row_ids=np.array([1.0], np.float32)).result()

    def check_invalid_key_types_list(kv, key):
        dns_val = [np.full(shape, 2, np.float32) for _ in key]
        rsp_val = [kvactor.RowSparse.from_dense(v) for v in dns_val]
        ids = [np.array([1.0], np.float32)] * len(key)
        for call in (lambda: kv.init(key, dns_val), lambda: kv.push(key, dns_val),
                     lambda: kv.pull(key, dns_val)):
            with pytest.raises(kvactor.MixedKeyTypes):
                call().result()
        with pytest.raises(kvactor.MixedKeyTypes):
            kv.row_sparse_pull(key, rsp_val, row_ids=ids).result()

    int_kv = init_kv()
    str_kv = init_kv_with_str()
    kvs = [int_kv, str_kv]
    single_keys = [3, "a"]
    list_keys = [keys, str_keys]
    for i in range(2):
        # pull with row-sparse outputs is ignored: no value updated
        check_ignored_pull_single(kvs[i], single_keys[i])
        check_ignored_pull_list(kvs[i], list_keys[i])
        check_rsp_pull_into_dense_single(kvs[i], single_keys[i])
        check_rsp_pull_into_dense_list(kvs[i], list_keys[i])
        # a store takes either int or str keys
        check_invalid_key_types_single(kvs[i], single_keys[1 - i])
        check_invalid_key_types_list(kvs[i], list_keys[1 - i])
