"""One declaration per compress setting: a dataclass field made with :func:`setting` carries its
default, its help, its command-line flag and the range it must lie in, so the dataclass
default, the argparse option and its check all come from that one place.

A setting whose default depends on the kind of run (the demo or real faces) is declared with
``preset=True``: its option defaults to None and the run's preset fills it
(:mod:`motivnet_edge.compress.settings`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError


@dataclass(frozen=True)
class Option:
    """How a setting appears on the command line and what it must be: ``flag`` (without the
    dashes; "" for the field's own name with dashes, None for no option); a range (``low`` and
    ``high`` inclusive, ``above`` and ``below`` exclusive); ``choices``; ``preset``: its
    default comes from the run's preset; ``fmt``: how the presets' values are shown in help."""

    help: str = ""
    flag: str | None = ""
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    preset: bool = False
    fmt: str = "{}"


def setting(default=dataclasses.MISSING, help: str = "", **option):
    """A dataclass field that is also a command-line option (see :class:`Option`)."""
    meta = {"option": Option(help, **option)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def options(cls) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of ``cls`` that are command-line options, with their declarations."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls)
            if "option" in f.metadata and f.metadata["option"].flag is not None]


def flag_of(f: dataclasses.Field, opt: Option) -> str:
    return "--" + (opt.flag or f.name).replace("_", "-")


def dest_of(f: dataclasses.Field, opt: Option) -> str:
    return (opt.flag or f.name).replace("-", "_")


def _range_text(opt: Option) -> str:
    parts = [f">= {opt.low:g}" if opt.low is not None else "",
             f"> {opt.above:g}" if opt.above is not None else "",
             f"<= {opt.high:g}" if opt.high is not None else "",
             f"< {opt.below:g}" if opt.below is not None else ""]
    return " and ".join(p for p in parts if p)


def add_options(group, cls, preset_help=None) -> None:
    """Every option of ``cls`` added to an argparse ``group``; ``preset_help(name, fmt,
    on_off)`` describes the presets' values of a preset setting."""
    hints = typing.get_type_hints(cls)
    for f, opt in options(cls):
        kind, text = hints[f.name], opt.help
        kwargs: dict = {"dest": dest_of(f, opt)}
        if opt.preset and preset_help is not None:
            shown = preset_help(f.name, opt.fmt, kind is bool)
            text = f"{text} ({shown})" if text else shown
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind == list[Path]:
            kwargs.update(type=Path, action="append", default=[])
        else:
            base = next((t for t in (int, float, Path, str) if kind in (t, t | None)), str)
            kwargs["type"] = base
        if "default" not in kwargs:
            kwargs["default"] = None if opt.preset or f.default is dataclasses.MISSING \
                else f.default
        if opt.choices:
            kwargs["choices"] = opt.choices
        group.add_argument(flag_of(f, opt), help=text.replace("%", "%%") or None, **kwargs)


def check_options(args: argparse.Namespace, cls) -> None:
    """Every option of ``cls`` given in ``args`` checked against its declared range."""
    for f, opt in options(cls):
        value = getattr(args, dest_of(f, opt), None)
        if value is None or isinstance(value, (bool, list, str, Path)):
            continue
        bad = (opt.low is not None and value < opt.low) or \
            (opt.high is not None and value > opt.high) or \
            (opt.above is not None and value <= opt.above) or \
            (opt.below is not None and value >= opt.below)
        if bad:
            raise MotivnetError(f"{flag_of(f, opt)} {value} must be {_range_text(opt)}")


def given(args: argparse.Namespace, cls) -> dict:
    """The values of ``cls``'s options the command line set (None: not given), by field."""
    values = {f.name: getattr(args, dest_of(f, opt), None) for f, opt in options(cls)}
    return {k: v for k, v in values.items() if v is not None}
