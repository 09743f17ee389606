"""kvactor.Future from Python: waiting releases the GIL (another Python thread runs while a
pull waits), results and errors, timeouts, done callbacks, concurrent.futures and asyncio,
and the arrays of a call whose future was dropped staying alive until the call is done."""

import asyncio
import gc
import inspect
import sys
import threading
import time
import weakref

import numpy as np
import pytest

import kvactor

SHAPE = (2, 3)
BOUND = 30  # seconds: only a failure waits this long


class Gate:
    """An updater that blocks each push until released, so a test controls when calls end.
    threading.Event.wait releases the GIL while it blocks."""

    def __init__(self):
        self.entered = threading.Event()
        self.go = threading.Event()

    def __call__(self, key, recv, stored):
        self.entered.set()
        assert self.go.wait(BOUND)
        stored += recv


def gated_store():
    kv = kvactor.create("local")
    kv.init("w", np.zeros(SHAPE, np.float32)).result()
    gate = Gate()
    kv._set_updater(gate)
    return kv, gate


def line_of(function, marker):
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if line.rstrip().endswith(marker))


def test_another_python_thread_runs_while_a_pull_waits():
    kv, gate = gated_store()
    kv.push("w", np.ones(SHAPE, np.float32))
    out = np.zeros(SHAPE, np.float32)
    pull = kv.pull("w", out=out)  # ordered after the push, which the gate holds
    main = threading.main_thread().ident
    wait_line = line_of(test_another_python_thread_runs_while_a_pull_waits, "# the wait")
    ran = []

    def helper():
        # Runs Python code until the main thread is inside pull.wait() (its frame is on that
        # line), then lets the push finish. If wait() held the GIL, this thread could not
        # run, the pull could not finish, and wait() would time out.
        assert gate.entered.wait(BOUND)
        deadline = time.monotonic() + BOUND
        while sys._current_frames()[main].f_lineno != wait_line and time.monotonic() < deadline:
            pass
        ran.append(sum(range(1000)))
        gate.go.set()

    t = threading.Thread(target=helper)
    t.start()
    done = pull.wait(timeout=BOUND)  # the wait
    t.join()
    assert done and ran == [499500]
    assert (out == 1).all()


def test_result_timeout_raises_the_builtin_timeout_error_and_the_call_goes_on():
    kv, gate = gated_store()
    push = kv.push("w", np.ones(SHAPE, np.float32))
    assert gate.entered.wait(BOUND)
    assert not push.done()
    assert push.wait(timeout=0) is False
    with pytest.raises(TimeoutError) as info:
        push.result(timeout=0.001)
    assert not isinstance(info.value, kvactor.Error)  # the call itself did not fail
    gate.go.set()
    push.result(timeout=BOUND)
    assert push.done() and push.exception() is None


def test_result_and_exception_carry_the_calls_error():
    kv = kvactor.create("local")
    f = kv.pull("missing", out=np.zeros(SHAPE, np.float32))
    exc = f.exception(timeout=BOUND)
    assert isinstance(exc, kvactor.NotInitialized) and "missing" in str(exc)
    with pytest.raises(kvactor.NotInitialized):
        f.result()
    assert "failed" in repr(f) and "not_initialized" in repr(f)


def test_done_callbacks_run_once_the_call_completes():
    kv, gate = gated_store()
    push = kv.push("w", np.ones(SHAPE, np.float32))
    called = threading.Event()
    seen = []

    def callback(fut):
        seen.append((fut is push, fut.done(), threading.current_thread() is not threading.main_thread()))
        called.set()

    push.add_done_callback(callback)
    assert not called.is_set()
    gate.go.set()
    assert called.wait(BOUND)
    assert seen == [(True, True, True)]
    # Registered on a finished call: runs too.
    again = threading.Event()
    push.add_done_callback(lambda fut: again.set())
    assert again.wait(BOUND)


def test_as_concurrent_and_asyncio():
    kv = kvactor.create("local")
    kv.init(1, np.full(SHAPE, 3, np.float32)).result()
    out = np.zeros(SHAPE, np.float32)
    assert kv.pull(1, out=out).as_concurrent().result(timeout=BOUND) is None
    assert (out == 3).all()

    async def main():
        out2 = np.zeros(SHAPE, np.float32)
        await kv.pull(1, out=out2)                         # awaitable itself
        await asyncio.wrap_future(kv.push(1, out2).as_concurrent())
        await kv.pull(1, out=out2)
        with pytest.raises(kvactor.NotInitialized):
            await kv.pull(99, out=np.zeros(SHAPE, np.float32))
        return out2

    assert (asyncio.run(main()) == 3).all()


def test_a_dropped_futures_arrays_live_until_the_call_is_done():
    kv, gate = gated_store()
    value = np.ones(SHAPE, np.float32)
    alive = weakref.ref(value)
    kv.push("w", value)  # the future is dropped at once
    del value
    gc.collect()
    assert gate.entered.wait(BOUND)
    assert alive() is not None  # the store still reads it
    gate.go.set()
    kv.wait_all()
    kv.outstanding  # any call into the module drops what finished calls held
    gc.collect()
    assert alive() is None
