"""CLI options built from the parameter table (steady.params), so each field is spelled, bounded
and explained in one place.

    @request_options()                 # every field with flags: -n/--images, --steps, --cfg ...
    @request_options("model", "steps") # only these
    @request_options("sampler", sampler="Euler")   # with another default for this command
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from steady.params import GenerationRequest, table


def request_options(*names: str, **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the table's click options for ``names`` (default: every field that has flags), in the
    table's order; each lands in the command's keyword arguments under its field name.
    ``defaults``: this command's own default for a field (a measuring command's fixed sampler)."""
    rows = [(n, p) for n, p in table().items() if p.flags and (not names or n in names)]
    default = GenerationRequest.__dataclass_fields__

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name, p in reversed(rows):
            value = defaults.get(name, default[name].default)
            kw: dict[str, Any] = {"help": p.help}
            if p.multiple:  # given more than once: a tuple (the command makes one run per value)
                kw.update(type=p.kind, multiple=True, default=())
            elif p.kind is bool:
                kw.update(is_flag=True, default=bool(value))
            else:
                kw.update(type=p.kind, default=value, show_default=value not in (None, ""))
            if p.metavar:
                kw["metavar"] = p.metavar
            fn = click.option(*p.flags, name, **kw)(fn)
        return fn

    return decorate
