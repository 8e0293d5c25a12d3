"""How the settings reference reads the settings class: its fields from pydantic, the meaning of
each from the class's source, so nothing about a setting is written twice.

A field's meaning is, in order: its `description=`; the comment above it; for an `x_override`
field, the docstring of the property or method `x` that reads it. A comment that opens with a
title ("Distributed search (...): ...", "`make deploy`: ...") speaks for the run of fields below
it, up to a blank line or the next comment, and is split on ';' when it has one part per field;
a comment without a title speaks for the one field below it.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
import typing
from pathlib import Path
from typing import Any


def env_name(name: str, field: Any, prefix: str = "") -> str:
    """The environment variable(s) a field reads: its alias, else prefix + NAME."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        return alias
    choices = getattr(alias, "choices", None)
    if choices:
        return " / ".join(c for c in choices if isinstance(c, str))
    return f"{prefix}{name}".upper()


# A group comment opens with a title: "Distributed search (README ...): ...", "`make deploy`: ..."
_TITLE = re.compile(
    r"^(?P<title>[^.:;()]{2,40}?)\s*(?:\((?P<ref>[^)]*)\)\s*[:.;]|:)\s*(?P<body>.*)$"
)


def _comments(source: str) -> dict[int, tuple[str, bool]]:
    """line -> (comment text, whether the comment stands alone on its line)."""
    found = {}
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            alone = not lines[row - 1][:col].strip()
            found[row] = (tok.string.lstrip("#").strip(), alone)
    return found


def _field_runs(source: str, class_name: str) -> list[tuple[str, list[ast.AnnAssign]]]:
    """The class's fields in runs: (comment above the run, fields). A run ends at a blank line
    or a comment; a comment without a title speaks for the one field below it only."""
    tree = ast.parse(source)
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    comments, lines = _comments(source), source.splitlines()
    runs: list[tuple[str, list[ast.AnnAssign]]] = []
    previous_end = cls.lineno
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            previous_end = node.end_lineno or node.lineno
            continue
        above, row = [], node.lineno - 1
        while row in comments and comments[row][1]:
            above.insert(0, comments[row][0])
            row -= 1
        gap = any(not lines[i - 1].strip() for i in range(previous_end + 1, node.lineno))
        alone = bool(runs) and bool(runs[-1][0]) and not _TITLE.match(runs[-1][0])
        if above or gap or not runs or alone:
            runs.append((" ".join(above), [node]))
        else:
            runs[-1][1].append(node)
        previous_end = node.end_lineno or node.lineno
    return runs


def _split_top_level(text: str, sep: str = ";") -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "([") - (char in ")]")
        if char == sep and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p.rstrip(".") for p in parts if p]


def _meanings(runs: list[tuple[str, list[ast.AnnAssign]]]) -> dict[str, str]:
    """Field name -> meaning from its comment. A titled comment over several fields is split
    on ';' when it has one part per field; otherwise the first field shows it whole."""
    meanings = {}
    for comment, nodes in runs:
        if not comment:
            continue
        names = [n.target.id for n in nodes]  # type: ignore[union-attr]
        match = _TITLE.match(comment)
        if match is None or len(names) == 1:
            meanings[names[0]] = _drop_readme_refs(comment)
            continue
        title, body = match["title"].strip(), match["body"]
        parts = _split_top_level(body)
        if len(parts) == len(names):
            meanings.update({n: f"{title}: {p}." for n, p in zip(names, parts, strict=True)})
        else:
            meanings[names[0]] = f"{title}: {_lower_first(_drop_readme_refs(body))}"
            meanings.update({n: f"{title}: see {{{names[0]}}} above." for n in names[1:]})
    return meanings


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _drop_readme_refs(text: str) -> str:
    """Comments cite README sections that are now pages of this site; the reader is here."""
    text = re.sub(r"\s*\(README[^)]*\)", "", text)
    return re.sub(r'README "[^"]*"(, "[^"]*")*;?\s*', "", text).strip()


def _type_text(annotation: Any, metadata: list[Any]) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(f"`{a}`" for a in typing.get_args(annotation))
    if args and typing.get_origin(annotation) in (typing.Union, type(int | None)):
        return " or ".join(_type_text(a, metadata) for a in args)
    text = getattr(annotation, "__name__", str(annotation))
    bounds = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    for item in metadata:
        for attr, sign in bounds.items():
            value = getattr(item, attr, None)
            if value is not None:
                text += f", {sign} {value}"
    return text


def _default_text(field: Any, source: str | None) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = f"`{value}`"
    if source and source not in (repr(value), str(value)) and isinstance(value, int | float):
        text += f" (`{source}`)"
    return text


def _default_sources(runs: list[tuple[str, list[ast.AnnAssign]]]) -> dict[str, str]:
    found = {}
    for _, nodes in runs:
        for node in nodes:
            call = node.value
            if isinstance(call, ast.Call) and call.args:
                found[node.target.id] = ast.unparse(call.args[0])  # type: ignore[union-attr]
    return found


def _derived_meanings(cls: type) -> dict[str, str]:
    """`x_override` fields: the docstring of the property or method `x` that reads them."""
    found = {}
    for name in cls.model_fields:  # type: ignore[attr-defined]
        base = name.removesuffix("_override")
        member = inspect.getattr_static(cls, base, None) if base != name else None
        member = getattr(member, "wrapped_property", member)  # a computed_field
        doc = inspect.getdoc(getattr(member, "fget", member)) if member is not None else None
        if doc:
            found[name] = doc.split("\n\n")[0].replace("\n", " ")
    return found


def settings_rows(cls: type) -> list[tuple[str, str, str, str]]:
    """(env name, type, default, meaning) of every field of the settings class `cls`, in the
    class's order; markdown, ready for a table row."""
    source = Path(inspect.getsourcefile(cls) or "").read_text()
    runs = _field_runs(source, cls.__name__)
    meanings = {**_derived_meanings(cls), **_meanings(runs)}
    defaults = _default_sources(runs)
    prefix = cls.model_config.get("env_prefix", "")  # type: ignore[attr-defined]
    fields = cls.model_fields  # type: ignore[attr-defined]
    envs = {name: env_name(name, field, prefix) for name, field in fields.items()}
    rows = []
    for name, field in fields.items():
        meaning = field.description or meanings.get(name, "")
        meaning = re.sub(
            r"\{(\w+)\}", lambda m: f"`{envs[m[1]]}`" if m[1] in envs else m[0], meaning
        )
        rows.append(
            (
                envs[name],
                _type_text(field.annotation, field.metadata),
                _default_text(field, defaults.get(name)),
                meaning.replace("|", "\\|") or "—",
            )
        )
    return rows
