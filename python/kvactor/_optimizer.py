"""MXNet-style optimizer arguments -> kvactor's optimizer_config (a type and named numbers).

kvactor's names are MXNet's (actors/src/optimizers.hpp): nested values are flattened with
dots, as the C++ config spells them: lr_mult={3: 0.5} -> 'lr_mult.3': 0.5;
lr_scheduler={'type': 'factor', 'step': 100} -> 'lr_scheduler': 1, 'lr_scheduler.step': 100;
a list -> '.0', '.1', ... (MultiFactorScheduler's steps). Booleans become 1 and 0.
"""

import numbers

# MXNet's scheduler classes and kvactor's numbers for them.
_SCHEDULERS = {"factor": 1, "factorscheduler": 1, "multifactor": 2, "multifactorscheduler": 2,
               "poly": 3, "polyscheduler": 3, "cosine": 4, "cosinescheduler": 4}
_WARMUP_MODES = {"linear": 0, "constant": 1}


def _number(name, value):
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError("optimizer parameter %r must be a number, got %s"
                    % (name, type(value).__name__))


def _flatten(name, value, out):
    if name == "lr_scheduler" and isinstance(value, dict):
        args = dict(value)
        kind = str(args.pop("type", "")).lower()
        if kind not in _SCHEDULERS:
            raise ValueError("lr_scheduler type %r is not one of factor, multifactor, poly, "
                             "cosine" % kind)
        out["lr_scheduler"] = float(_SCHEDULERS[kind])
        for sub, v in args.items():
            if sub == "warmup_mode" and isinstance(v, str):
                v = _WARMUP_MODES.get(v, v)
            if sub == "base_lr":
                out.setdefault("learning_rate", _number("base_lr", v))
                continue
            _flatten("lr_scheduler." + str(sub), v, out)
    elif isinstance(value, dict):
        for sub, v in value.items():
            _flatten("%s.%s" % (name, sub), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten("%s.%d" % (name, i), v, out)
    else:
        out[name] = _number(name, value)


def optimizer_params(optimizer, params, kwargs):
    """(type, {name: float}) from set_optimizer's arguments."""
    merged = {}
    if isinstance(optimizer, dict):
        merged.update(optimizer)
        kind = merged.pop("type", None)
    else:
        kind = optimizer
    if not isinstance(kind, str):
        raise TypeError("set_optimizer takes an optimizer name ('sgd', ...) or a dict with a "
                        "'type'; MXNet Optimizer objects are not supported")
    if params:
        merged.update(params)
    merged.update(kwargs)
    flat = {}
    for name, value in merged.items():
        _flatten(str(name), value, flat)
    return kind, flat
