"""PyTorch front end: data-parallel training through a kvactor store.

    import kvactor, kvactor.torch
    store = kvactor.create("dist_sync")            # one process per worker, under kvactor-launch
    kvactor.torch.broadcast_parameters(model.state_dict(), root_rank=0, store=store)
    opt = kvactor.torch.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), model.named_parameters(), store)
    for x, y in shard:
        opt.zero_grad()
        loss_fn(model(x), y).backward()   # each gradient is pushed as soon as it is produced
        opt.step()                        # waits for the sums, averages, steps the optimizer

Gradients. Each parameter's gradient is one string key of the store: the parameter's name
(after an optional prefix). A hook on the parameter's gradient accumulator issues
``pushpull(name, grad, out=grad)`` the moment backward() has produced that gradient, so the
transfer of the last layers overlaps the backward pass of the first ones; the store reads and
writes the gradient tensor in place (DLPack, no copy). Priorities follow MXNet and BytePS: a
higher priority is served first, and the i-th parameter of ``named_parameters`` gets priority
-i, so the first layers' gradients, produced last in backward() but needed first by the next
forward pass, overtake the later layers' queued work. ``step()`` waits for every outstanding
sum, divides it by the number of replicas that contributed (the store returns the sum; the
optimizer wants the mean), then calls the wrapped optimizer's ``step()``.

How replicas are counted. Every live DistributedOptimizer built on one store object in one
process is a replica of that process (several models in one process, e.g. one per device).
For a key, the replicas' gradients travel in one ``pushpull`` with one value per replica, which
the store sums (MXNet's multi-device push), once the last replica's hook has fired. The mean
divides by ``store.num_workers * replicas``: with ``local`` (one worker) and two replicas, by 2;
with ``dist_sync`` under kvactor-launch and one replica per process, by the number of workers.
So every process of a job must hold the same number of replicas, and all of a process's
replicas must run backward() before any of them calls step() (from one thread, or finishing
their backward passes first): step() on a replica whose key still waits for another replica's
gradient raises RuntimeError instead of waiting for ever. A replica stops counting when it is
closed (``close()``) or garbage-collected.

Not supported: asynchronous stores (``dist_async``: the servers must run the optimizer there),
several backward() passes per step() (gradient accumulation: a second gradient of a parameter
before step() raises RuntimeError), sparse gradients, device tensors (CPU tensors only, as the
binding reads them through DLPack), and ``add_param_group`` after wrapping.

Thread-safety: one DistributedOptimizer is used by one thread at a time; replicas of one store
may run their backward passes on different threads.
"""

import threading
import weakref
from collections.abc import Mapping

import torch

__all__ = ["DistributedOptimizer", "broadcast_parameters"]

# The element types the store holds; a bool tensor travels as its bytes (uint8).
_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64,
           torch.uint8)


def _wait(future):
    """Waits for a store future and raises its error, if any."""
    future.result()


def _wire_view(tensor, what):
    """A contiguous CPU tensor of at least one dimension that the store may read and write for
    ``tensor``: a view of it (same storage) when possible, else a copy (see _copy_back)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise TypeError(f"{what}: only CPU tensors are supported, got one on {tensor.device}")
    t = tensor.detach()
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    if t.dtype not in _DTYPES:
        raise TypeError(f"{what}: element type {t.dtype} is not one the store holds")
    if t.dim() == 0:
        t = t.reshape(1)
    return t.contiguous()


def _copy_back(target, wire):
    """Writes the store's result into ``target`` when its wire view is a copy."""
    if wire.data_ptr() != target.data_ptr():
        with torch.no_grad():
            target.copy_(wire.reshape(target.shape))


class _Group:
    """What the replicas of one process that share one store have in common: the keys the
    process initialised, the live replicas of each key, and the gradients of replicas that wait
    for the others. Its lock guards all of it and the replicas' slot states."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}  # key -> (shape, dtype) of the initialised gradient
        self.owners = {}  # key -> WeakSet of the replicas with a parameter of that key
        self.waiting = {}  # key -> {id(replica): slot} offered, not yet sent
        self.broadcast_keys = set()  # keys broadcast_parameters has initialised

    def replicas(self, key):
        return len(self.owners[key])


_groups = weakref.WeakKeyDictionary()  # store -> _Group; the store's life bounds the group's
_groups_lock = threading.Lock()


def _group_of(store):
    with _groups_lock:
        group = _groups.get(store)
        if group is None:
            group = _groups[store] = _Group()
        return group


class _Slot:
    """One parameter of one replica: its key, priority and where it is in this step."""

    __slots__ = ("name", "key", "param", "priority", "wire", "future", "state")

    IDLE, WAITING, SENT, REDUCED = range(4)

    def __init__(self, name, key, param, priority):
        self.name, self.key, self.param, self.priority = name, key, param, priority
        self.wire = None
        self.future = None
        self.state = _Slot.IDLE


class DistributedOptimizer(torch.optim.Optimizer):
    """Wraps ``optimizer`` so that each gradient is summed over every replica of every worker
    through ``store`` and averaged before the wrapped optimizer steps.

    ``named_parameters``: (name, parameter) pairs, usually ``model.named_parameters()``; every
    parameter of ``optimizer`` that requires a gradient must be named, names unique; named
    parameters the optimizer does not hold are left alone. The names (after ``prefix``) are the
    store's keys; the first replica of a process to use a key initialises it (in ``dist_sync`` a
    collective call: every worker builds its optimizers at the same point of its program).

    The wrapped optimizer keeps its parameter groups and state (``param_groups``, ``state`` and
    ``state_dict()`` are its own), so learning-rate schedulers and checkpoints work on either.
    """

    def __init__(self, optimizer, named_parameters, store, *, prefix=""):
        # Optimizer.__init__ is not called on purpose: the wrapped optimizer owns the groups.
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("optimizer must be a torch.optim.Optimizer")
        if "async" in store.type:
            raise ValueError(f"DistributedOptimizer needs a synchronous store, not {store.type}: "
                             "dist_async updates on every push and needs an optimizer on the "
                             "servers (set_optimizer)")
        self._optimizer = optimizer
        self._store = store
        self._group = _group_of(store)
        self._slots = _make_slots(optimizer, named_parameters, prefix)
        self._hooks = []
        self._grad_accs = []
        self._join()
        for slot in self._slots:
            self._hook(slot)

    # ---- what torch.optim.Optimizer users read, delegated to the wrapped optimizer ----

    @property
    def param_groups(self):
        return self._optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self._optimizer.param_groups = value

    @property
    def state(self):
        return self._optimizer.state

    @state.setter
    def state(self, value):
        self._optimizer.state = value

    @property
    def defaults(self):
        return self._optimizer.defaults

    @defaults.setter
    def defaults(self, value):
        self._optimizer.defaults = value

    def state_dict(self):
        return self._optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self._optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group):
        raise NotImplementedError("DistributedOptimizer: add the parameter group to the wrapped "
                                  "optimizer before wrapping it")

    def __repr__(self):
        return f"DistributedOptimizer({self._optimizer!r}, store={self._store.type})"

    # ---- the training step ----

    def synchronize(self):
        """Waits until every gradient of this replica holds the mean over all replicas of all
        workers. A parameter whose gradient backward() did not produce this step contributes
        its current gradient (zeros when it has none): every worker must push every key."""
        with self._group.lock:
            for slot in self._slots:
                if slot.state == _Slot.IDLE:
                    self._offer(slot)
            blocked = [s.name for s in self._slots if s.state == _Slot.WAITING]
        if blocked:
            raise RuntimeError(
                "DistributedOptimizer.synchronize(): the gradients of "
                f"{', '.join(blocked)} wait for another replica on this store; run every "
                "replica's backward() before any replica's step()")
        for slot in self._slots:
            if slot.state == _Slot.SENT:
                _wait(slot.future)
                _copy_back(slot.param.grad, slot.wire)
                replicas = self._store.num_workers * self._group.replicas(slot.key)
                slot.param.grad.div_(replicas)
                slot.future, slot.wire, slot.state = None, None, _Slot.REDUCED

    def step(self, closure=None):
        """synchronize(), then the wrapped optimizer's step(). A closure (which zeroes the
        gradients and runs backward()) has its gradients synchronized after each evaluation:
        use one only with optimizers that evaluate it equally often on every worker."""
        try:
            if closure is None:
                self.synchronize()
                return self._optimizer.step()

            def synchronized_closure():
                with torch.enable_grad():
                    loss = closure()
                self.synchronize()
                return loss

            return self._optimizer.step(synchronized_closure)
        finally:
            for slot in self._slots:
                if slot.state == _Slot.REDUCED:
                    slot.state = _Slot.IDLE

    def zero_grad(self, *args, **kwargs):
        """The wrapped optimizer's zero_grad(), once the sums in flight have landed (the store
        writes into the gradients until then); gradients waiting for another replica are
        withdrawn."""
        self._settle()
        return self._optimizer.zero_grad(*args, **kwargs)

    def pending(self):
        """The names of the parameters whose gradients are sent (or wait for another replica)
        and not yet synchronized: between backward() and step(), each one backward() reached."""
        return [s.name for s in self._slots if s.state in (_Slot.WAITING, _Slot.SENT)]

    def close(self):
        """Lets the sums in flight land, removes the hooks and stops counting as a replica."""
        self._settle()
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._grad_accs.clear()
        with self._group.lock:
            for slot in self._slots:
                self._group.owners[slot.key].discard(self)

    # ---- internals ----

    def _join(self):
        """Initialises the keys no replica of this process has (one call: in dist stores one
        barrier) and counts this replica as an owner of each of its keys."""
        group = self._group
        with group.lock:
            fresh_keys, fresh_values = [], []
            for slot in self._slots:
                p = slot.param
                known = group.keys.get(slot.key)
                if known is not None and known != (tuple(p.shape), p.dtype):
                    raise ValueError(f"parameter {slot.name}: shape {tuple(p.shape)} {p.dtype} "
                                     f"differs from another replica's {known[0]} {known[1]}")
                for other in group.owners.get(slot.key, ()):
                    if any(s.param is p for s in other._slots):
                        raise ValueError(f"parameter {slot.name} is already wrapped by a live "
                                         "DistributedOptimizer on this store: close() it first")
                if known is None:
                    fresh_keys.append(slot.key)
                    fresh_values.append(_wire_view(torch.zeros_like(p), slot.name))
            if fresh_keys:
                # The values are never read: every round replaces them with the pushes' sum.
                _wait(self._store.init(fresh_keys, fresh_values))
            for slot in self._slots:
                group.keys[slot.key] = (tuple(slot.param.shape), slot.param.dtype)
                group.owners.setdefault(slot.key, weakref.WeakSet()).add(self)

    def _hook(self, slot):
        # A leaf's gradient accumulator runs once per backward(), right after it has written
        # param.grad: the earliest moment the gradient is complete. Holding the accumulator
        # keeps the node (and so the hook) across iterations; the hook holds the replica only
        # weakly, so dropping the replica ends it.
        acc = slot.param.expand_as(slot.param).grad_fn.next_functions[0][0]
        replica = weakref.ref(self)

        def on_gradient(*_):
            me = replica()
            if me is None:
                return
            with me._group.lock:
                if slot.state != _Slot.IDLE:
                    raise RuntimeError(
                        f"DistributedOptimizer: a second gradient of {slot.name} before step(); "
                        "accumulating gradients over several backward() passes is not "
                        "supported")
                me._offer(slot)

        self._hooks.append(acc.register_hook(on_gradient))
        self._grad_accs.append(acc)

    def _offer(self, slot):
        """Offers this replica's gradient for the slot's key and sends the key once every
        replica of the process has offered. Called with the group's lock held."""
        p = slot.param
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        slot.wire = _wire_view(p.grad, slot.name)
        group = self._group
        waiting = group.waiting.setdefault(slot.key, {})
        waiting[id(self)] = slot
        if len(waiting) < group.replicas(slot.key):
            slot.state = _Slot.WAITING
            return
        del group.waiting[slot.key]
        slots = list(waiting.values())
        wires = [s.wire for s in slots] if len(slots) > 1 else slots[0].wire
        priority = max(s.priority for s in slots)
        future = self._store.pushpull(slot.key, wires, out=wires, priority=priority)
        for s in slots:
            s.future, s.state = future, _Slot.SENT

    def _settle(self):
        with self._group.lock:
            for slot in self._slots:
                if slot.state == _Slot.WAITING:
                    self._group.waiting.get(slot.key, {}).pop(id(self), None)
                    slot.wire, slot.state = None, _Slot.IDLE
        for slot in self._slots:
            if slot.state == _Slot.SENT:
                _wait(slot.future)
            slot.future, slot.wire, slot.state = None, None, _Slot.IDLE


def _make_slots(optimizer, named_parameters, prefix):
    named = list(named_parameters)
    if any(not (isinstance(p, tuple) and len(p) == 2) for p in named):
        raise ValueError("named_parameters must be (name, parameter) pairs, e.g. "
                         "model.named_parameters()")
    names = [n for n, _ in named]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"parameter names must be unique; repeated: {', '.join(dups)}")
    if len({id(p) for _, p in named}) != len(named):
        raise ValueError("one parameter appears under two names")
    named_ids = {id(p) for _, p in named}
    wanted = {id(p) for g in optimizer.param_groups for p in g["params"] if p.requires_grad}
    if wanted - named_ids:
        raise ValueError(f"{len(wanted - named_ids)} parameter(s) of the optimizer are not in "
                         "named_parameters")
    slots = []
    for index, (name, p) in enumerate(named):
        if id(p) in wanted:
            if p.device.type != "cpu":
                raise TypeError(f"parameter {name}: only CPU tensors are supported")
            slots.append(_Slot(name, prefix + name, p, -index))
    return slots


def broadcast_parameters(params, root_rank=0, *, store, prefix="broadcast:"):
    """Gives every worker root_rank's values of ``params``, written into its tensors in place.

    ``params``: a state_dict (name -> tensor) or (name, tensor) pairs such as
    ``model.named_parameters()``; CPU tensors of a type the store holds (bool travels as bytes;
    0-dimensional tensors such as BatchNorm's counters are fine). The keys are ``prefix + name``;
    every worker passes the same names, and only root's values count.

    The first call for a name with root_rank 0 is the store's broadcast (init from rank 0's
    values, then a pull). Later calls, and any root other than 0, are one pushpull round in
    which root pushes its values and every other worker zeros, so that the sum is root's values
    exactly; the store must then have no optimizer or updater set. The keys keep one copy of
    the values in the store (on the servers) for the store's life.

    A process is one worker: with a ``local`` store the values stay as they are. Replicas in
    one process copy each other directly (``replica.load_state_dict(model.state_dict())``).
    """
    items = sorted(params.items() if isinstance(params, Mapping) else params,
                   key=lambda item: item[0])  # the same order on every worker
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError("broadcast_parameters: names must be unique")
    rank, workers = store.rank, store.num_workers
    if not 0 <= root_rank < workers:
        raise ValueError(f"broadcast_parameters: root_rank {root_rank} is not a worker's rank "
                         f"(0..{workers - 1})")
    # A tensor listed twice (tied weights in a state_dict) travels once: outputs of one call
    # may not overlap. Empty tensors have nothing to send.
    seen, kept = set(), []
    for name, t in items:
        if isinstance(t, torch.Tensor) and t.numel() > 0:
            where = (t.data_ptr(), t.numel() * t.element_size(), tuple(t.stride()))
            if where in seen:
                continue
            seen.add(where)
        kept.append((name, t))
    items = [(n, t) for n, t in kept if not isinstance(t, torch.Tensor) or t.numel() > 0]
    wires = [_wire_view(t, n) for n, t in items]
    keys = [prefix + n for n, _ in items]
    group = _group_of(store)
    with group.lock:
        fresh = {i for i, k in enumerate(keys) if k not in group.broadcast_keys}
    if fresh and root_rank == 0:
        _wait(store.broadcast([keys[i] for i in sorted(fresh)], [wires[i] for i in sorted(fresh)],
                              out=[wires[i] for i in sorted(fresh)]))
        rounds = [i for i in range(len(keys)) if i not in fresh]
    else:
        if fresh:
            _wait(store.init([keys[i] for i in sorted(fresh)],
                             [torch.zeros_like(wires[i]) for i in sorted(fresh)]))
        rounds = list(range(len(keys)))
    with group.lock:
        group.broadcast_keys.update(keys)
    if rounds:
        values = [wires[i] if rank == root_rank else torch.zeros_like(wires[i]) for i in rounds]
        _wait(store.pushpull([keys[i] for i in rounds], values, out=[wires[i] for i in rounds]))
    for (_, target), wire in zip(items, wires):
        _copy_back(target, wire)
