"""HTML forms generated from the typed parameter models (pydantic), and back.

:func:`form_fields` describes each field of a model for a template (name, input kind,
value, choices, bounds, help from the field's ``description``); :func:`parse_form` turns the
submitted strings back into the model, with one message per bad field. A field whose
value is a model becomes a section (``MiniscopeParams`` -> one section per step), its
inputs named ``section.field``. Lists and tuples are typed as JSON (``[5, 5]``).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Mapping

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

NONE_TYPE = type(None)


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strip_optional(annotation) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not NONE_TYPE]
        optional = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), optional
    return annotation, False


def field_kind(annotation) -> tuple[str, list | None, bool]:
    """``(kind, choices, optional)``: kind is checkbox | select | number | text | json."""
    inner, optional = _strip_optional(annotation)
    if inner is bool:
        return "checkbox", None, optional
    if typing.get_origin(inner) is Literal:
        return "select", list(typing.get_args(inner)), optional
    if inner in (int, float):
        return "number", None, optional
    if inner is str:
        return "text", None, optional
    return "json", None, optional


def _bounds(info) -> dict:
    out = {}
    for m in info.metadata:
        if isinstance(m, (Ge, Gt)):
            out["min"] = m.ge if isinstance(m, Ge) else m.gt
        if isinstance(m, (Le, Lt)):
            out["max"] = m.le if isinstance(m, Le) else m.lt
    return out


def _shown(kind: str, value) -> Any:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value)
    return value


def form_fields(model: type[BaseModel], values: BaseModel | None = None, prefix: str = "") -> list[dict]:
    """The fields of ``model`` for a template, with ``values``' values (default: the defaults).

    Each dict: ``name`` (form name), ``label``, ``kind``, ``value``, ``choices``, ``optional``,
    ``help``, ``min``/``max`` when bounded; a nested model gives ``kind == "section"`` with
    ``fields`` and ``help`` (its docstring's first line).
    """
    values = values if values is not None else model()
    dumped = values.model_dump(mode="json")
    out = []
    for name, info in type(values).model_fields.items():
        if _is_model(info.annotation):
            doc = (info.annotation.__doc__ or "").strip().splitlines()
            out.append({"name": prefix + name, "label": name, "kind": "section",
                        "help": info.description or (doc[0] if doc else ""),
                        "fields": form_fields(info.annotation, getattr(values, name), prefix + name + ".")})
            continue
        kind, choices, optional = field_kind(info.annotation)
        out.append({"name": prefix + name, "label": name, "kind": kind, "choices": choices,
                     "optional": optional, "value": _shown(kind, dumped[name]), "help": info.description or "",
                     **_bounds(info)})
    return out


def collect(model: type[BaseModel], form: Mapping[str, str], prefix: str = "", errors: dict | None = None,
            only: set[str] | None = None) -> dict:
    """Submitted strings -> ``{field: value}`` for ``model`` (nested models as dicts), not yet
    validated: a checkbox absent is False, an empty optional field None, JSON parsed, a
    field absent from the form left out (its current value or default stands). ``only``:
    these fields alone. Unparsable JSON goes to ``errors``."""
    errors = {} if errors is None else errors
    data = {}
    for name, info in model.model_fields.items():
        if only is not None and name not in only:
            continue
        key = prefix + name
        if _is_model(info.annotation):
            data[name] = collect(info.annotation, form, key + ".", errors)
            continue
        kind, choices, optional = field_kind(info.annotation)
        if kind == "checkbox":
            data[name] = key in form
            continue
        raw = form.get(key)
        if raw is None:
            continue  # not in the form: the default
        raw = str(raw).strip()
        if raw == "" and optional:
            data[name] = None
        elif kind == "json":
            try:
                data[name] = json.loads(raw)
            except json.JSONDecodeError:
                errors[key] = "not valid JSON (a list is written [1, 2]; empty for none where allowed)"
        elif kind == "select":
            match = [c for c in choices if str(c) == raw]
            data[name] = match[0] if match else raw
        else:
            data[name] = raw
    return data


def parse_form(model: type[BaseModel], form: Mapping[str, str]) -> tuple[BaseModel | None, dict[str, str]]:
    """The model built from submitted form values, or None and ``{field name: message}``."""
    errors: dict[str, str] = {}
    data = collect(model, form, "", errors)
    try:
        params = model.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            errors.setdefault(".".join(str(p) for p in e["loc"]), e["msg"])
        return None, errors
    return (None, errors) if errors else (params, errors)


def error_fragment(text: str, status: int = 400):
    """The one-line answer to a bad form or request, as an htmx fragment (escaped)."""
    from fastapi.responses import HTMLResponse
    from markupsafe import escape

    return HTMLResponse(f'<p class="error">{escape(text)}</p>', status_code=status)
