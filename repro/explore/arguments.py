"""`repro explore`'s own options -- which states to check, and real filesystems -- kept beside the code that reads them."""

from __future__ import annotations

import argparse

from repro.explore.blockspace import BlockModel
from repro.explore.command import DEFAULT_BUDGET, DEFAULT_SHRINK
from repro.explore.configs import CONFIGURATIONS
from repro.explore.models import FILESYSTEM_PRESETS, PRESETS as MODEL_PRESETS, model_grammar
from repro.explore.second import DEFAULT_REOPENS
from repro.filesystems import FsKind


def add_search_args(explore: argparse.ArgumentParser) -> None:
    """--models, --budget, --shrink: which states are checked, how many, and how many findings are explained."""
    explore.add_argument("--models", default="all",
                         help=f"comma-separated persistence models: the presets {', '.join(MODEL_PRESETS)}, or parts "
                              f"joined with '+' ({model_grammar()}), e.g. dirs=lazy+data=prefix, or a filesystem's "
                              f"models ({', '.join(FILESYSTEM_PRESETS)}: what that kernel filesystem can leave, "
                              f"checked against it by --compare-models) (default all: the presets); for a trace "
                              f"recorded with --fs: {', '.join(m.value for m in BlockModel)}")
    explore.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                         help=f"states per model checked exhaustively; a larger model is sampled with --seed "
                              f"(default {DEFAULT_BUDGET})")
    explore.add_argument("--shrink", type=int, default=DEFAULT_SHRINK,
                         help=f"findings per model shrunk to an ordering, 'Y must persist before X' (default "
                              f"{DEFAULT_SHRINK}, a seeded choice; 0: none)")


def add_recovery_args(explore: argparse.ArgumentParser) -> None:
    """--recovery: a crash during the reopen of chosen crash states (the second level)."""
    explore.add_argument("--recovery", type=int, default=0, metavar="N",
                         help="crash during recovery: reopen N crash states (findings first, then allowed losses, "
                              f"then a seeded sample; {DEFAULT_REOPENS} is a good start) on a recording machine, "
                              "explore the crash states of each reopen and judge them where the first state was: "
                              "one that breaks a promise the first kept, or lacks a row it held, is a finding "
                              "(exit 1); default 0: none")


def add_recording_args(explore: argparse.ArgumentParser) -> None:
    """--reproducible: a recording whose shape repeats with the seed."""
    explore.add_argument("--reproducible", action="store_true",
                         help="record without the kernel's writeback cache, and without -shm's data (no crash state "
                              "holds it): the same seed gives a trace of the same shape, so a state id names the same "
                              "state in both (the bytes differ where the store writes timestamps)")


def add_filesystem_args(explore: argparse.ArgumentParser) -> None:
    """--fs and the comparison's options (--compare-models, --configs, --filesystems)."""
    kinds = ", ".join(k.value for k in FsKind)
    explore.add_argument("--fs", default=None, metavar="KIND[:OPTION,...]",
                         help=f"record below a kernel filesystem ({kinds}; options data=ordered|journal|writeback "
                              "for ext4, nobarrier) made on a loop device over the recording lossy mount: its crash "
                              "states are block-level and the kernel recovers each")
    explore.add_argument("--compare-models", action="store_true",
                         help="record each --configs configuration on the lossy filesystem and below each of "
                              "--filesystems, explore every recording, and compare the classes of outcome: one a "
                              "kernel filesystem shows and no file-level model does is a defect of the models (exit 1)")
    explore.add_argument("--configs", default="all",
                         help=f"with --compare-models: comma-separated store configurations: "
                              f"{', '.join(CONFIGURATIONS)} (default all)")
    explore.add_argument("--filesystems", nargs="+", default=["ext4"], metavar="KIND[:OPTION,...]",
                         help="with --compare-models: the kernel filesystems to compare with, as --fs takes them "
                              "(default ext4); each gets a disk of at least its smallest size")
