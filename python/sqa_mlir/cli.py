"""argparse types shared by the command-line tools (bench/, test checkers)."""

from __future__ import annotations

import argparse


def parse_shapes(text: str):
    """``BxSxT[,BxSxT...]`` -> [(B, S, T), ...], every size >= 1."""
    shapes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.lower().split("x")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT")
        try:
            b, s, t = (int(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT")
        if b < 1 or s < 1 or t < 1:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}: sizes must be >= 1")
        shapes.append((b, s, t))
    if not shapes:
        raise argparse.ArgumentTypeError("no shapes given")
    return shapes


def parse_window(text: str):
    """``L,R`` -> (L, R), each >= -1 (-1: unbounded)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"bad window {text!r}; expected L,R")
    try:
        left, right = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad window {text!r}; expected L,R")
    if left < -1 or right < -1:
        raise argparse.ArgumentTypeError("window bounds must be >= -1 (-1: unbounded)")
    return left, right
