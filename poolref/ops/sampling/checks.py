r"""Argument checks shared by ``grid_sample`` and ``interpolate``."""

from __future__ import annotations

from ..._checks import check_flag


def check_choice(value, name: str, allowed, op: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{op}: {name} must be one of {', '.join(map(repr, allowed))}, got {name}={value!r}")
    return value


def check_align_corners(align_corners, op: str) -> bool:
    return check_flag(align_corners, "align_corners", op)

