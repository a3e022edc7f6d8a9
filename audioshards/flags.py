"""Settings kept as frozen dataclasses become command-line flags, and a Markdown reference of them.

One implementation for both command lines (``python -m pipeline`` and ``python -m training train``),
so a setting's name, default and help are written once, beside its field, and ``--help``, the
parsed configuration and ``docs/configuration.md`` cannot disagree. It lives in the shared
``audioshards`` package because both command lines need it and neither half may import the other;
it uses nothing but the standard library.

A field is a flag when it was made with :func:`setting` (its metadata has a ``help``); a field
whose type is a dataclass is a section, whose flags are named after their own fields (optionally
with a prefix). Fields without help, such as the spectrogram fixed by the model card, get no flag.
Flags the user does not give stay out of the parsed namespace, so callers can tell a given value
from a default (the trainer's resume rules need that).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Iterable, Mapping, Sequence


def setting(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
            metavar: str | tuple[str, ...] | None = None, choices: Sequence[str] | None = None,
            shown: str | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a flag. ``shown`` replaces the default in help and reference when the
    value depends on the machine (a core count, an install path). No default: a required flag."""
    metadata = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "shown": shown}
    metadata = {key: value for key, value in metadata.items() if value is not None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Flag:
    """One leaf setting and its flag."""

    dotted: str  # "run.batch": the namespace's dest and the key of given settings
    flag: str  # "--batch"
    kind: Any  # the field's type
    field: dataclasses.Field
    default: Any  # what an unset flag means: MISSING = required, None = derived (the help says how)

    @property
    def help(self) -> str:
        return self.field.metadata["help"]

    def shown_default(self) -> str | None:
        """The default as a reader should see it, or None when there is nothing to show."""
        if "shown" in self.field.metadata:
            return self.field.metadata["shown"]
        if self.default is dataclasses.MISSING or self.default is None or self.default in ((), ""):
            return None
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, tuple):
            return " ".join(str(value) for value in self.default)
        return str(self.default)


def _field_default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def flags(cls: type, prefixes: Mapping[str, str] | None = None) -> list[Flag]:
    """Every leaf setting of ``cls`` with a flag. ``prefixes``: section name → flag prefix
    (``{"global_augment": "global-"}``: ``global_augment.volume_db`` → ``--global-volume-db``)."""
    return list(_walk(cls, None, "", "", prefixes or {}))


def _walk(cls: type, instance: Any, path: str, prefix: str, prefixes: Mapping[str, str]) -> Iterable[Flag]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        # A section's defaults are those of the instance its parent holds (the trainer's global and
        # local views share a class but not their defaults); a field defaulting to None is derived.
        default = _field_default(field) if instance is None else getattr(instance, field.name)
        if field.default is None:
            default = None
        dotted = f"{path}{field.name}"
        if dataclasses.is_dataclass(kind):
            yield from _walk(kind, default, dotted + ".", prefix + prefixes.get(field.name, ""), prefixes)
        elif field.metadata.get("help"):
            flag = field.metadata.get("flag") or "--" + prefix + field.name.rstrip("_").replace("_", "-")
            yield Flag(dotted, flag, kind, field, default)


#: What a flag without its own metavar (or choices) asks for, by value type: ``--keep-checkpoints N``
#: says what to type where the flag's last word (``CHECKPOINTS``) did not. A string is a path
#: unless its setting says otherwise (``metavar=``) or lists its ``choices``.
METAVARS: dict[type, str] = {int: "N", float: "X", str: "PATH"}


def add_arguments(parser: argparse.ArgumentParser, rows: Sequence[Flag],
                  titles: Mapping[str, str] | None = None) -> dict[str, argparse._ArgumentGroup]:
    """One flag per row, in a group per section (``titles``: section → group title; the section of
    a top-level field is ""). Returns the groups, so a caller can add its own flags to them."""
    titles = titles or {}
    groups: dict[str, argparse._ArgumentGroup] = {}
    seen = set()
    for row in rows:
        if row.flag in seen:
            raise RuntimeError(f"two settings share the flag {row.flag}")
        seen.add(row.flag)
        section = row.dotted.split(".")[0] if "." in row.dotted else ""
        if section not in groups:
            groups[section] = parser.add_argument_group(titles.get(section, f"{section} settings"))
        shown = row.shown_default()
        help = row.help + ("" if shown is None else f" (default: {shown})")
        kwargs: dict[str, Any] = dict(dest=row.dotted, default=argparse.SUPPRESS, help=help.replace("%", "%%"),
                                      required=row.default is dataclasses.MISSING)
        metadata, args = row.field.metadata, typing.get_args(row.kind)
        if row.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(row.kind) is tuple:  # (low, high) pairs, or a list of any length
            kwargs.update(type=args[0], nargs="+" if args[-1] is Ellipsis else len(args))
        else:  # X or X | None
            kwargs["type"] = next((a for a in args if a is not type(None)), row.kind) if args else row.kind
        if "choices" in metadata:
            kwargs["choices"] = metadata["choices"]
        elif row.kind is not bool:
            pair = ("LOW", "HIGH") if kwargs.get("nargs") == 2 else None
            kwargs["metavar"] = metadata.get("metavar") or pair or METAVARS.get(kwargs["type"], "VALUE")
        groups[section].add_argument(row.flag, **kwargs)
    return groups


def given(namespace: argparse.Namespace, rows: Sequence[Flag]) -> dict[str, Any]:
    """{dotted setting: value} for the flags present on the command line."""
    dotted = {row.dotted for row in rows}
    return {key: (tuple(value) if isinstance(value, list) else value) for key, value in vars(namespace).items()
            if key in dotted}


def build(cls: type, settings: Mapping[str, Any], base: Any = None) -> Any:
    """An instance of ``cls``: its defaults (or ``base``'s values) with ``settings`` applied."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in settings.items():
        head, _, rest = dotted.partition(".")
        if rest:
            sections.setdefault(head, {})[rest] = value
        else:
            values[head] = value
    for head, inner in sections.items():
        current = getattr(base, head) if base is not None else _field_default(cls.__dataclass_fields__[head])
        values[head] = build(hints[head], inner, current)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def from_dict(cls: type, values: Mapping[str, Any], *, what: str | None = None,
              error: type[Exception] = ValueError) -> Any:
    """An instance of the dataclass ``cls`` from its ``to_dict`` form (nested sections and JSON
    lists included), as a saved config or a manifest holds it; a key ``cls`` does not have raises
    ``error`` naming ``what`` (default: the class) and the known keys."""
    hints = typing.get_type_hints(cls)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise error(f"unknown {what or cls.__name__} settings {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            value = from_dict(kind, value, error=error)
        elif typing.get_origin(kind) is tuple and value is not None:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def accept_snake_case(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the snake_case spelling of this parser's own flags (``--num_shards``) turned into
    their kebab-case names (``--num-shards``). Our flags are kebab-case, as most command lines'
    are; Beam's options, typed on the same line, are snake_case (``--temp_location``), so users
    type ours that way too. Anything the parser does not know stays as it is (Beam's options)."""
    known = set(parser._option_string_actions)  # noqa: SLF001 (argparse keeps them nowhere public)
    result = []
    for index, token in enumerate(argv):
        if token == "--":
            return result + list(argv[index:])
        name, equals, value = token.partition("=")
        if name.startswith("--") and "_" in name and name not in known and name.replace("_", "-") in known:
            token = name.replace("_", "-") + equals + value
        result.append(token)
    return result


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def reference(parser: argparse.ArgumentParser, rows: Sequence[Flag] = ()) -> str:
    """A Markdown table per argument group of ``parser``: flag, default, meaning. Flags made from
    ``rows`` show their dataclass default and help; hand-written ones what argparse holds."""
    by_dest = {row.dotted: row for row in rows}
    tables = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        lines = [f"### {group.title}", "", "| flag | default | meaning |", "| --- | --- | --- |"]
        for action in actions:
            row = by_dest.get(action.dest)
            if row is not None:
                default, help = row.shown_default(), row.help
            else:
                default = None if any(action.default is v for v in (None, False, argparse.SUPPRESS)) else str(action.default)
                help = (action.help or "") % {**vars(action), "prog": parser.prog}
            if action.required:
                default = "required"
            elif default is not None and (row is None or "shown" not in row.field.metadata):
                default = f"`{default}`"
            cells = [invocation(action), default or "", help]
            # Escaped: a | would end the cell, a <ytid> would be taken for an HTML tag.
            lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("<", "\\<") for cell in cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def invocation(action: argparse.Action) -> str:
    """``--flag METAVAR`` as Markdown code, written here rather than by argparse's formatter,
    whose layout (and, from Python 3.14, colours) varies between Python versions."""
    if action.nargs == 0:
        return ", ".join(f"`{option}`" for option in action.option_strings)
    metavar = action.metavar or ("{" + ",".join(action.choices) + "}" if action.choices else action.dest.upper())
    if isinstance(metavar, tuple):
        arguments = " ".join(metavar)
    elif action.nargs == "+":
        arguments = f"{metavar} [{metavar} ...]"
    elif isinstance(action.nargs, int):
        arguments = " ".join([metavar] * action.nargs)
    else:
        arguments = metavar
    return ", ".join(f"`{option} {arguments}`" for option in action.option_strings)
