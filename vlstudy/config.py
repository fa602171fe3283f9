"""Typed configuration: dataclasses filled from `params.yaml` sections, with errors that name the key and file.

Every component of vlstudy takes a dataclass config (STYLE.md rule 4). The pipeline keeps its values in
`params.yaml`, one section per stage; `from_dict` turns a section (a plain dict, as YAML or papermill gives
it) into the stage's dataclass and rejects anything a typo would otherwise let through silently: an unknown
key, a value of the wrong type, a missing required key. The error names the file and the dotted key, e.g.

    ParamError: params.yaml: data.mini_youku.n_pretrain: expected int, got '3k' (str)

No library does this for plain dataclasses without adding a dependency tree (pydantic, omegaconf); the
checks needed here are a few dozen lines, so they are written by hand.

Model configs are transformers ``PreTrainedConfig`` subclasses, which are dataclasses too (transformers 5). Two
kinds of their fields are not parameters and are neither read from nor written to a params section:

- the bookkeeping fields that ``PreTrainedConfig`` itself declares (``transformers_version``, ``return_dict``,
  ``id2label``, ...);
- *derived* fields (`derived`): values a component fills itself — a width another field fixes (as
  ``Blip2Config`` sets the Q-Former's ``encoder_hidden_size`` from the vision width), the vocabulary of a
  tokenizer, the activation of the checkpoint a model starts from. They are saved in the model's
  ``config.json`` and never typed in params.yaml.

A sub-config field (``sub_configs_defaults`` of the class) is filled from a nested mapping with the same checks.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

__all__ = ["ParamError", "from_dict", "to_dict", "deep_merge", "field_names", "derived", "param_fields"]

# Field metadata key of a derived field (see `derived`).
DERIVED = "vlstudy.derived"


class ParamError(ValueError):
    """A parameter value that cannot fill its dataclass field; the message names the file and key."""


def derived(default: Any) -> Any:
    """A dataclass field that the component fills itself (from other fields, a tokenizer or a checkpoint).

    It is stored with the config (a model's ``config.json``) but is not a parameter: `from_dict` rejects it in a
    params section and `to_dict` leaves it out. Use it as the default of a field: ``hidden_act: str = derived("gelu")``.
    """
    return dataclasses.field(default=default, metadata={DERIVED: True})


def _transformers_base_fields(cls: type) -> set[str]:
    """The fields declared by transformers' ``PreTrainedConfig`` if `cls` derives from it (found by name, so this
    module imports nothing of transformers)."""
    for base in cls.__mro__:
        if base.__name__ == "PreTrainedConfig" and base.__module__ == "transformers.configuration_utils":
            return {f.name for f in dataclasses.fields(base)}
    return set()


def param_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass `cls` that are parameters: all but derived fields and transformers' bookkeeping."""
    skip = _transformers_base_fields(cls)
    return [f for f in dataclasses.fields(cls) if f.name not in skip and not f.metadata.get(DERIVED)]


def _field_types(cls: type, fields: list[dataclasses.Field]) -> dict[str, Any]:
    """Resolved annotations of `fields`; a transformers sub-config field gets its sub-config class.

    Annotations are resolved per declaring class (not with ``get_type_hints(cls)``, which would also evaluate the
    annotations of transformers' base class, some of which name modules it imports only for type checkers).
    """
    sub_configs = getattr(cls, "sub_configs", None) or {}
    types_: dict[str, Any] = {}
    for f in fields:
        if f.name in sub_configs:
            types_[f.name] = sub_configs[f.name]
            continue
        owner = next(k for k in cls.__mro__ if f.name in inspect.get_annotations(k))
        types_[f.name] = inspect.get_annotations(owner, eval_str=True)[f.name]
    return types_

def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (ints widen to float, lists to tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ParamError(f"{where}: expected {_type_name(tp)}, got null")
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ParamError:
                continue
        raise ParamError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ParamError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ParamError(f"{where}: expected a mapping for {tp.__name__}, got {value!r} ({type(value).__name__})")
        return _from_mapping(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ParamError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"{where}: expected a mapping, got {value!r} ({type(value).__name__})")
        ktp, vtp = get_args(tp) or (Any, Any)
        return {_convert(k, ktp, f"{where}.{k}"): _convert(v, vtp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ParamError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _from_mapping(cls: type[T], data: dict, where: str) -> T:
    fields = {f.name: f for f in param_fields(cls) if f.init}
    hints = _field_types(cls, list(fields.values()))
    unknown = [k for k in data if k not in fields]
    if unknown:
        known = ", ".join(fields)
        raise ParamError(f"{where}.{unknown[0]}: unknown key for {cls.__name__} (known keys: {known})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"{where}.{name}: required key is missing")
    try:
        return cls(**kwargs)
    except ParamError:
        raise
    except (ValueError, TypeError) as e:  # __post_init__ checks of value ranges
        raise ParamError(f"{where}: {e}") from e
    except Exception as e:  # huggingface_hub's strict-dataclass validators raise their own error class
        if type(e).__name__.startswith("StrictDataclass"):
            raise ParamError(f"{where}: {e}") from e
        raise


def from_dict(cls: type[T], data: dict | None, where: str = "params") -> T:
    """Build dataclass `cls` from a (possibly nested) mapping, checking keys and types.

    Args:
        cls: the dataclass to fill; nested dataclass fields take nested mappings.
        data: the mapping (a `params.yaml` section, or papermill parameters). None means all defaults.
        where: how errors name the source, e.g. ``"params.yaml: data"``.

    Raises:
        ParamError: on an unknown key, a wrong type, a missing required key, or a failed range check.
    """
    return _from_mapping(cls, dict(data or {}), where)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML/JSON-ready values: tuples become lists, paths become strings."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in param_fields(type(obj))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def deep_merge(base: dict, override: dict, where: str = "override") -> dict:
    """`base` with `override` applied recursively; a key of `override` that `base` lacks is an error.

    Used for profiles: ``profiles/smoke.yaml`` may only change keys that ``params.yaml`` defines.
    """
    out = dict(base)
    for key, value in override.items():
        if key not in base:
            raise ParamError(f"{where}.{key}: unknown key (not in the base params)")
        if isinstance(value, dict) and isinstance(base[key], dict):
            out[key] = deep_merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]

