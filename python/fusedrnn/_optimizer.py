"""The optimizers' shared part: params sources, param groups, grads checking, state_dict.

``fusedrnn.optim`` builds SGD, Adam and AdamW on :class:`Optimizer`; each defines its
hyperparameter checks (``_check_group``) and its per-parameter rule (``_update``).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["Optimizer"]


# ----------------------------------------------------------------------- params sources
def _is_module(obj):
    return (not isinstance(obj, Mapping) and callable(getattr(obj, "state_dict", None))
            and callable(getattr(obj, "load_state_dict", None)))


def _is_group(obj):
    return isinstance(obj, Mapping) and "params" in obj and not isinstance(
        obj["params"], np.ndarray)


class _Source:
    """One params source: a fusedrnn module or a dict of NumPy arrays."""

    def __init__(self, obj, where):
        self.obj, self.where = obj, where
        if _is_module(obj):
            self.module = True
            sd = obj.state_dict()
            for k, a in sd.items():
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{where}: {type(obj).__name__}.state_dict()[{k!r}] is a "
                                    f"{type(a).__name__}, not a NumPy array; fusedrnn.optim "
                                    "steps fusedrnn modules and dicts of NumPy arrays")
        elif isinstance(obj, Mapping):
            self.module = False
            sd = obj
            for k, a in sd.items():
                name = f"{where}[{k!r}]"
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
                if a.dtype.kind != "f":
                    raise TypeError(f"{name}: expected a floating array, got dtype {a.dtype}")
                if not a.flags.writeable:
                    raise ValueError(f"{name}: the array is read-only; the optimizer updates "
                                     "it in place")
        else:
            raise TypeError(f"{where}: expected a fusedrnn layer or cell, a dict of NumPy "
                            f"arrays or a param group dict {{'params': ...}}, got "
                            f"{type(obj).__name__}")
        self.keys = list(sd.keys())
        self.shapes = {k: a.shape for k, a in sd.items()}
        self.dtypes = {k: a.dtype for k, a in sd.items()}

    def check(self):
        """A dict's arrays are still those the optimizer was built for (same keys,
        shapes, dtypes, writeable): it may have been rebound since."""
        if self.module:
            return
        if list(self.obj.keys()) != self.keys:
            raise ValueError(f"{self.where}: its keys changed since the optimizer was built "
                             f"(was {self.keys}, now {list(self.obj.keys())})")
        for k, a in self.obj.items():
            if not (isinstance(a, np.ndarray) and a.shape == self.shapes[k]
                    and a.dtype == self.dtypes[k] and a.flags.writeable):
                raise ValueError(f"{self.where}[{k!r}]: no longer a writeable {self.dtypes[k]} "
                                 f"array of shape {self.shapes[k]} (it was rebound since the "
                                 "optimizer was built; update arrays in place)")

    def arrays(self):
        """Writable arrays to update in place: the dict's own, or copies of a module's."""
        if self.module:
            return self.obj.state_dict()
        return dict(self.obj)

    def commit(self, updated):
        if self.module and updated:
            self.obj.load_state_dict(updated, strict=False)  # repacks the kernels' weights


def _number(value, name, *, low=0.0, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    ok = value >= low and (high is None or (value < high if high_open else value <= high))
    if not ok:
        rng = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: expected a number {rng}, got {value!r}")
    return value


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


#: torch.optim group entries that choose an implementation, not the update rule.
_TORCH_SWITCHES = frozenset({"foreach", "fused", "capturable", "differentiable",
                             "decoupled_weight_decay"})


# ----------------------------------------------------------------------------- the base
class Optimizer:
    """Base class: param groups, state, grads checking and the optimizer's state_dict.

    ``param_groups``: a list of dicts, one per group, each with ``"params"`` (the list
    of its sources) and the hyperparameters; change ``lr`` (or any other) between steps
    as in torch.  ``state``: per parameter index (sources in order, each source's keys
    in order), a dict of the buffers (created at a parameter's first step).
    """

    _state_keys: tuple = ()
    _decoupled = False  # AdamW's weight decay

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups, self._sources, self._slots = [], [], []
        self._group_sources = []  # per group: its _Source objects
        self.state = {}
        listed = isinstance(params, (list, tuple))
        if not listed and (_is_module(params) or isinstance(params, Mapping)):
            items = [params]  # one layer, cell, dict of arrays or group
        elif listed:
            items = list(params)
        else:
            raise TypeError("params: expected a fusedrnn layer or cell, a dict of NumPy "
                            "arrays, a param group dict or a list of these, got "
                            f"{type(params).__name__}")
        if not items:
            raise ValueError("params: got an empty list; give at least one layer, cell or "
                             "dict of arrays")
        for gi, item in enumerate(items):
            where = f"params[{gi}]" if listed else "params"
            if _is_group(item):
                group = dict(item)
                unknown = [k for k in group if k != "params" and k not in self.defaults]
                if unknown:
                    raise ValueError(f"{where}: unknown option(s) {unknown}; expected "
                                     f"'params' and any of {list(self.defaults)}")
                srcs = group["params"]
                if isinstance(srcs, (list, tuple)):
                    sw = [f"{where}['params'][{i}]" for i in range(len(srcs))]
                    srcs = list(srcs)
                else:
                    srcs, sw = [srcs], [f"{where}['params']"]
            else:
                group, srcs, sw = {}, [item], [where]
            for k, v in self.defaults.items():
                group.setdefault(k, v)
            self._check_group(group, where if _is_group(item) else None)
            sources = [_Source(s, w) for s, w in zip(srcs, sw)]
            group["params"] = [s.obj for s in sources]
            for s in sources:
                s.offset = len(self._slots)
                for k in s.keys:
                    self._slots.append((len(self._sources), k))
                self._sources.append(s)
            self._group_sources.append(sources)
            self.param_groups.append(group)
        self._check_distinct()
        if not self._slots:
            raise ValueError("params: no parameters to optimize (every source is empty)")

    def _check_distinct(self):
        seen_mods, seen_arrays = [], []
        for s in self._sources:
            if s.module:
                if any(m is s.obj for m in seen_mods):
                    raise ValueError(f"{s.where}: this module appears more than once in params")
                seen_mods.append(s.obj)
            else:
                for k, a in s.obj.items():
                    if any(np.may_share_memory(a, b) for b in seen_arrays):
                        raise ValueError(f"{s.where}[{k!r}]: this array (or memory it shares) "
                                         "appears more than once in params")
                    seen_arrays.append(a)

    def _check_group(self, group, where):
        """Validate the hyperparameters; ``where`` None: constructor arguments."""
        raise NotImplementedError

    @staticmethod
    def _name(where, key):
        return key if where is None else f"{where}[{key!r}]"

    # -- grads --------------------------------------------------------------------------
    def _grads_per_source(self, grads):
        n = len(self._sources)
        if isinstance(grads, Mapping):
            if n != 1:
                raise TypeError(f"grads: expected a list of {n} dicts (one per params source, "
                                "in the order given), got one dict")
            return [grads]
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of {n} dict(s) of arrays (one per params "
                            f"source), got {type(grads).__name__}")
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} dict(s) (one per params source, in the "
                             f"order given), got {len(grads)}")
        for i, g in enumerate(grads):
            if not isinstance(g, Mapping):
                raise TypeError(f"grads[{i}]: expected a dict of arrays, got "
                                f"{type(g).__name__}")
        return list(grads)

    def _checked_grads(self, grads):
        """{slot index: gradient array} for every parameter that has a gradient."""
        per_source = self._grads_per_source(grads)
        single = isinstance(grads, Mapping)
        out = {}
        slot_of = {sk: i for i, sk in enumerate(self._slots)}
        for si, (src, g) in enumerate(zip(self._sources, per_source)):
            src.check()
            where = "grads" if single else f"grads[{si}]"
            for k, a in g.items():
                name = f"{where}[{k!r}]"
                if k not in src.shapes:
                    raise ValueError(f"{name}: not a parameter of {src.where}; expected keys "
                                     f"among {src.keys}")
                if a is None:
                    continue
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
                dt = src.dtypes[k]
                if a.dtype.kind != "f" or (a.dtype != dt and not np.can_cast(a.dtype, dt,
                                                                             "safe")):
                    raise TypeError(f"{name}: expected dtype {dt} (the parameter's, or one "
                                    f"that converts to it exactly), got {a.dtype}")
                if a.shape != src.shapes[k]:
                    raise ValueError(f"{name}: expected shape {src.shapes[k]} (the "
                                     f"parameter's), got {a.shape}")
                out[slot_of[(si, k)]] = np.asarray(a, dtype=dt)
        return out

    # -- the step -------------------------------------------------------------------------
    def step(self, grads) -> None:
        """Update every parameter that has a gradient, in place.

        grads: one dict per params source, in the order the sources were given (a
        single dict when there is a single source), keyed like that source
        (``backward``'s grads dict for a fusedrnn module).  Absent or None entries are
        skipped.  The gradients are not modified.  Nothing is changed unless every
        gradient is valid.
        """
        checked = self._checked_grads(grads)
        for gi, group in enumerate(self.param_groups):
            self._check_group(group, f"param_groups[{gi}]")
        for group, sources in zip(self.param_groups, self._group_sources):
            for src in sources:
                todo = [(src.offset + j, k) for j, k in enumerate(src.keys)
                        if src.offset + j in checked]
                if not todo:
                    continue
                arrays, updated = src.arrays(), {}
                for i, k in todo:
                    p = arrays[k]
                    state = self.state.get(i, {})
                    self._update(p, checked[i], state, group)
                    if state:  # SGD without momentum keeps none, as torch
                        self.state[i] = state
                    updated[k] = p
                src.commit(updated)

    def _update(self, p, g, state, group):
        raise NotImplementedError

    # -- state_dict -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {index: {buffer name: copy}}, "param_groups": [{hyperparameters...,
        "params": [indices]}]}: torch's layout, parameters numbered in order."""
        groups, i = [], 0
        for gi, group in enumerate(self.param_groups):
            count = self._group_size(gi)
            g = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            g["params"] = list(range(i, i + count))
            groups.append(g)
            i += count
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in sorted(self.state.items())}
        return {"state": state, "param_groups": groups}

    def _group_size(self, gi):
        return sum(len(s.keys) for s in self._group_sources[gi])

    def load_state_dict(self, state_dict) -> None:
        """Restore the state and hyperparameters saved by ``state_dict`` (copied).

        The groups must hold as many parameters as this optimizer's, in the same order;
        buffers must have their parameter's shape (floating values are cast to its dtype).
        """
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or \
                "param_groups" not in state_dict:
            raise TypeError("state_dict: expected a dict with 'state' and 'param_groups' (from "
                            "Optimizer.state_dict())")
        groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups):
            n = len(groups) if isinstance(groups, (list, tuple)) else type(groups).__name__
            raise ValueError(f"state_dict['param_groups']: expected {len(self.param_groups)} "
                             f"groups, got {n}")
        id_map, new_groups, i = {}, [], 0
        for gi, (mine, saved) in enumerate(zip(self.param_groups, groups)):
            where = f"state_dict['param_groups'][{gi}]"
            if not isinstance(saved, Mapping) or not isinstance(saved.get("params"),
                                                                (list, tuple)):
                raise TypeError(f"{where}: expected a dict with a list 'params'")
            count = self._group_size(gi)
            if len(saved["params"]) != count:
                raise ValueError(f"{where}['params']: expected {count} parameters (this "
                                 f"optimizer's group {gi}), got {len(saved['params'])}")
            saved = self._from_torch_group(saved, where)
            unknown = [k for k in saved if k != "params" and k not in self.defaults]
            if unknown:
                raise ValueError(f"{where}: unknown option(s) {unknown}")
            g = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            for k, v in self.defaults.items():
                g.setdefault(k, v)
            self._check_group(g, where)
            g["params"] = mine["params"]
            new_groups.append(g)
            for j, old in enumerate(saved["params"]):
                id_map[old] = i + j
            i += count
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"state_dict['state']: expected a dict, got "
                            f"{type(saved_state).__name__}")
        new_state = {}
        for old, s in saved_state.items():
            where = f"state_dict['state'][{old!r}]"
            if old not in id_map:
                raise ValueError(f"{where}: no parameter has this index in "
                                 "state_dict['param_groups']")
            if not isinstance(s, Mapping):
                raise TypeError(f"{where}: expected a dict, got {type(s).__name__}")
            idx = id_map[old]
            si, key = self._slots[idx]
            src = self._sources[si]
            new_state[idx] = self._load_buffers(s, where, src.shapes[key], src.dtypes[key])
        self.param_groups, self.state = new_groups, new_state

    def _from_torch_group(self, saved, where):
        """A torch.optim group without its implementation switches (foreach, fused, ...),
        which do not change the arithmetic; those that would are refused."""
        out = {k: v for k, v in saved.items() if k not in _TORCH_SWITCHES}
        for k in _TORCH_SWITCHES.intersection(saved):
            v = saved[k]
            if k == "decoupled_weight_decay":
                if v is not None and bool(v) != self._decoupled:
                    use = "AdamW" if v else "Adam"
                    raise ValueError(f"{where}['{k}']: {v!r} is {use}'s rule; load it into "
                                     f"fusedrnn.optim.{use}")
            elif v not in (None, False):
                raise ValueError(f"{where}['{k}']: {v!r} is not supported (only the "
                                 "single-tensor CPU form)")
        return out

    def _load_buffers(self, s, where, shape, dtype):
        out = {}
        for k, v in s.items():
            name = f"{where}[{k!r}]"
            if k not in self._state_keys:
                raise ValueError(f"{name}: not a buffer of {type(self).__name__}; expected "
                                 f"any of {list(self._state_keys)}")
            if v is None:  # torch may save an absent buffer as None
                continue
            if k == "step":
                try:
                    f = float(np.asarray(v))
                except (TypeError, ValueError) as e:
                    raise TypeError(f"{name}: expected a number, got {type(v).__name__}") from e
                if not (math.isfinite(f) and f >= 0 and f == int(f)):
                    raise ValueError(f"{name}: expected a count >= 0, got {v!r}")
                out[k] = int(f)
                continue
            if hasattr(v, "detach") and hasattr(v, "numpy"):
                v = v.detach().cpu().numpy()
            a = np.asarray(v)
            if a.dtype.kind != "f":
                raise TypeError(f"{name}: expected a floating array, got dtype {a.dtype}")
            if a.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (the parameter's), got "
                                 f"{a.shape}")
            out[k] = np.array(a, dtype=dtype, copy=True)
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
