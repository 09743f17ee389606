"""kvactor: MXNet's KVStore API on kvactor's actor runtime.

    import numpy as np, kvactor
    kv = kvactor.create("local")
    kv.init(3, np.ones((2, 3), np.float32))
    out = np.empty((2, 3), np.float32)
    kv.push(3, np.full((2, 3), 8, np.float32))
    kv.pull(3, out=out).wait()          # out is read after the call's wait()/result()

Data calls (init, push, pull, pushpull, broadcast, row_sparse_pull) return a kvactor.Future
at once and read or write the given NumPy arrays / DLPack tensors in place, without copies;
an array belongs to the store until its call's future is done. Control calls (set_optimizer,
set_gradient_compression, save/load_optimizer_states, barrier, wait_all) wait and raise.
Errors are kvactor.Error subclasses that also derive from the builtin a Python user expects
(kvactor.NotInitialized is a KeyError, kvactor.ShapeMismatch a ValueError, ...).
"""

from . import _kvactor
from ._kvactor import Error, Future, RowSparse, cuda_compiled, cuda_device_count, cuda_emulated
from ._store import KVStore, create

# One class per kvactor::errc (the table is in python/src/errors.cpp).
globals().update({cls.__name__: cls for cls in _kvactor._error_classes.values()})
errors = dict(_kvactor._error_classes)

__all__ = ["create", "KVStore", "Future", "RowSparse", "Error", "cuda_compiled",
           "cuda_device_count", "cuda_emulated", "errors"] + sorted(cls.__name__ for cls in errors.values())
