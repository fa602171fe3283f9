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

import yaml

T = TypeVar("T")

__all__ = ["ParamError", "from_dict", "to_dict", "deep_merge", "field_names", "derived", "param_fields",
           "RECIPE_SECTION", "apply_recipe", "recipe_applies", "field_docs", "read_params", "resolve_section",
           "check_positive"]

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


def deep_merge(base: dict, override: dict, where: str = "override", strict: bool = True) -> dict:
    """`base` with `override` applied recursively.

    Args:
        base: the mapping to start from (not changed).
        override: keys to change; nested mappings are merged, other values replace.
        where: how errors name the override, e.g. ``"profiles/smoke.yaml"``.
        strict: a key of `override` that `base` lacks is an error (False: it is added; the dataclass check that
            follows then rejects a typo).
    """
    out = dict(base)
    for key, value in override.items():
        if strict and key not in base:
            raise ParamError(f"{where}.{key}: unknown key (not in the base params)")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = deep_merge(base[key], value, f"{where}.{key}", strict)
        else:
            out[key] = value
    return out


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


RECIPE_SECTION = "recipe"


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass an annotation holds (``Foo``, ``Foo | None``), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if get_origin(tp) in (Union, types.UnionType):
        found = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def recipe_applies(name: str, tp: Any, recipe: dict) -> bool:
    """Whether the recipe entry `name` fills a field of that name and annotation `tp`: a mapping fills a dataclass
    field (``train`` → `TrainConfig`), a plain value a plain field (``seed``); ``train: int`` of a split count is
    another thing that happens to share the name."""
    if name not in recipe:
        return False
    return isinstance(recipe[name], dict) == (_dataclass_in(tp) is not None)


def apply_recipe(cls: type, section: dict | None, recipe: dict) -> dict:
    """`section` with the shared recipe filled in: the mapping `from_dict` then turns into `cls`.

    params.yaml states the training recipe once, in its ``recipe`` section (e.g. ``train``, ``seed``). Wherever
    `cls` (at any depth, inside dicts of dataclasses too) has a field named like a recipe key, the recipe's value
    is used when the section leaves the field out, and a section's partial mapping is merged over it when the
    field is itself a dataclass (``train: {epochs: 20}`` keeps the recipe's other ``train`` keys).

    Args:
        cls: the stage's params dataclass.
        section: its params.yaml section (None = empty).
        recipe: the ``recipe`` section.

    Returns:
        A new mapping; `section` is not changed.
    """
    out = dict(section or {})
    fields = [f for f in param_fields(cls) if f.init]
    hints = _field_types(cls, fields)
    for f in fields:
        tp = hints[f.name]
        sub = _dataclass_in(tp)
        if recipe_applies(f.name, tp, recipe):
            given = out.get(f.name)
            if sub is not None and (given is None or isinstance(given, dict)):
                out[f.name] = deep_merge(recipe[f.name], given or {}, strict=False)
            elif f.name not in out:
                out[f.name] = recipe[f.name]
        if sub is not None and isinstance(out.get(f.name), dict):
            out[f.name] = apply_recipe(sub, out[f.name], recipe)
        elif get_origin(tp) is dict and isinstance(out.get(f.name), dict):
            value_tp = _dataclass_in((get_args(tp) or (Any, Any))[1])
            if value_tp is not None:
                out[f.name] = {k: apply_recipe(value_tp, v, recipe) if isinstance(v, dict) else v
                               for k, v in out[f.name].items()}
    return out


def field_docs(cls: type) -> dict[str, str]:
    """``{field: first sentence of its description}`` from the ``Attributes:`` section of `cls`'s docstring."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    in_attrs, current = False, None
    for line in lines:
        stripped = line.strip()
        if stripped.endswith("Attributes:"):
            in_attrs = True
            continue
        if not in_attrs:
            continue
        head, sep, rest = stripped.partition(":")
        if sep and head.isidentifier() and head in {f.name for f in dataclasses.fields(cls)}:
            current = head
            docs[current] = rest.strip()
        elif stripped and current:
            docs[current] += " " + stripped
        elif not stripped and docs:
            current = None
    return {k: v.split(". ")[0].rstrip(".") for k, v in docs.items()}


def read_params(root: str | Path, params_file: str = "params.yaml") -> dict:
    """The whole params file as a dict; a YAML error names the file, line and column."""
    path = Path(root) / params_file
    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamError(f"{params_file}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(params, dict):
        raise ParamError(f"{params_file}: expected a mapping of sections, got {type(params).__name__}")
    return params


def resolve_section(cls: type, section: dict | None, recipe: dict | None, where: str):
    """`cls` filled from a section with the shared recipe applied; errors name `where` and the key."""
    return from_dict(cls, apply_recipe(cls, section, recipe or {}), where=where)


def check_positive(config: object, *names: str) -> None:
    """Raise ValueError unless each named field of `config` is >= 1 (None allowed): counts, sizes, frames.

    Call it from a dataclass's ``__post_init__``; `from_dict` then reports the error with the params file and the
    key, e.g. ``params.yaml: finetune_captioning: num_frames must be >= 1, got 0``.
    """
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
