"""KVStore: MXNet's KVStore class over kvactor's store, and create()."""

import sys

from . import _kvactor
from ._optimizer import optimizer_params


class KVStore(_kvactor._Store):
    """MXNet's KVStore. Make one with kvactor.create(type).

    Keys are ints or strs (never both in one store); values and outputs are NumPy arrays
    (C-contiguous, float16/32/64, int32/64, uint8), objects with __dlpack__ (PyTorch tensors)
    or kvactor.RowSparse, one per key, a list (one per device: summed on push, each filled on
    pull) or a list of lists. Data calls return a kvactor.Future; their arrays belong to the
    store until it is done.
    """

    def set_optimizer(self, optimizer, params=None, **kwargs):
        """Makes an optimizer the store's updater (on dist stores: every server's).

        optimizer: MXNet's name ('sgd', 'nag', 'adam', 'adagrad', 'rmsprop', 'adadelta',
        'ftrl', 'signum', 'lamb'), or a dict with 'type' and the hyper-parameters. The
        hyper-parameters are MXNet's, as keyword arguments or a dict:

            kv.set_optimizer('sgd', learning_rate=0.1, momentum=0.9, wd=1e-4)
            kv.set_optimizer({'type': 'adam', 'learning_rate': 1e-3})
            kv.set_optimizer('sgd', lr_mult={3: 0.5},
                             lr_scheduler={'type': 'factor', 'step': 100, 'factor': 0.9})

        Waits until the store (every server) has it; an unknown name or hyper-parameter
        raises kvactor.InvalidArgument.
        """
        kind, flat = optimizer_params(optimizer, params, kwargs)
        self._set_optimizer_config(kind, flat)

    def _barrier(self):
        """MXNet's spelling of barrier()."""
        self.barrier()

    def set_updater(self, updater):
        """MXNet's _set_updater (see there)."""
        self._set_updater(updater)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        try:
            return "<kvactor.KVStore %s rank %d of %d>" % (self.type, self.rank, self.num_workers)
        except _kvactor.Error:
            return "<kvactor.KVStore closed>"


def create(name="local", **options):
    """MXNet's kvstore.create: 'local' (aliases 'local_update_cpu', 'local_allreduce_cpu'),
    'device' ('local_allreduce_device'), 'dist_sync', 'dist_async', 'dist_sync_device',
    'dist_async_device'.

    A dist store joins the cluster described by the DMLC_* environment (kvactor-launch sets
    it) and returns once the cluster has assembled. As in MXNet, when this process's
    DMLC_ROLE is 'scheduler' or 'server', create() runs that role until the job ends and then
    exits the process (SystemExit with the role's status).

    options: num_shards, worker_threads, reducer_threads, parallel_threshold_bytes,
    fusion_key_bytes, fusion_bytes, fusion_window_us (kvactor::options).
    """
    if name.startswith("dist") and _kvactor._node_role() in ("scheduler", "server"):
        sys.stdout.flush()
        raise SystemExit(_kvactor._run_node())
    return KVStore(name, **options)
