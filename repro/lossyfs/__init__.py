"""The power-loss filesystem: a volatile disk cache (plain Python) and a thin FUSE adapter over it."""

from __future__ import annotations

from repro.lossyfs.disk import ROOT_INO, VolatileDisk
from repro.lossyfs.model import CacheOptions, CutReport, EntryChange, EntryOp, Kind, NodeStat, TornPage

__all__ = [
    "ROOT_INO",
    "CacheOptions",
    "CutReport",
    "EntryChange",
    "EntryOp",
    "Kind",
    "NodeStat",
    "TornPage",
    "VolatileDisk",
]
