"""Composable persistence models: the presets number their states exactly as the five models of before
(so old state ids stay valid), combined parts enumerate what they say, and every state's files are
what a replay of the trace from its start gives."""

from __future__ import annotations

import itertools
import pathlib
import random
import shutil

import pytest

from repro.errors import ScenarioError
from repro.explore.materialize import Materializer
from repro.explore.models import PRESETS, Dirs, DirSync, PersistenceModel as M
from repro.explore.space import StateSpace, StateSpec, parse_state_id
from repro.explore.timeline import Timeline, apply_entry, sectors
from repro.lossyfs.trace import Create, Rename, TraceReader, TraceWriter, Truncate, Unlink, Write
from test_explore_states import A, B, basic, trace
from test_explore_support import recorded_run

# -- the enumeration of before, as it was (repro/explore/space.py before composable models) ------------


def legacy_count(name: str, t: Timeline, point) -> int:  # type: ignore[no-untyped-def]
    writes = [p for p in point.unsynced if isinstance(t.ops[p], Write)]
    if name == "synced-only":
        return 1
    if name == "prefix":
        return len(point.unsynced) + 1
    if name == "reorder-one":
        return len(writes)
    if name == "torn":
        write = t.in_flight(point)
        return max(0, sectors(write) - 1) if write is not None else 0
    return len(point.pending) + 1


def legacy_states(name: str, t: Timeline) -> list[tuple[object, ...]]:
    """Every state of an old model, in its old order: (crash point, persisted, dropped, torn, entries)."""
    out: list[tuple[object, ...]] = []
    for point in t.points:
        volatile = point.unsynced
        for local in range(legacy_count(name, t, point)):
            if name == "synced-only":
                out.append((point.index, (), volatile, None, None))
            elif name == "prefix":
                out.append((point.index, volatile[:local], volatile[local:], None, None))
            elif name == "reorder-one":
                drop = [p for p in volatile if isinstance(t.ops[p], Write)][local]
                out.append((point.index, tuple(p for p in volatile if p != drop), (drop,), None, None))
            elif name == "torn":
                write = t.in_flight(point)
                assert write is not None
                before = tuple(p for p in volatile if p != point.last_op)
                out.append((point.index, before, (), (point.last_op, local + 1, sectors(write)), None))
            else:
                out.append((point.index, (), volatile, None, point.committed_entries + local))
    return out


def legacy_sample(name: str, total: int, budget: int, seed: int) -> tuple[int, ...]:
    if total <= budget:
        return tuple(range(total))
    return tuple(sorted(random.Random(f"{seed}:{name}").sample(range(total), budget)))


def as_old(spec: StateSpec) -> tuple[object, ...]:
    torn = (spec.torn.pos, spec.torn.kept, spec.torn.total) if spec.torn is not None else None
    assert spec.grown is None and (spec.torn is None or spec.torn.mask is None)
    return (spec.point.index, spec.persisted, spec.dropped, torn, spec.entries)


def random_trace(tmp: pathlib.Path, seed: int, ops: int = 160) -> Timeline:
    """A trace of every kind of operation the models read, drawn with ``seed``."""
    rng = random.Random(seed)
    tw = TraceWriter(tmp / f"r{seed}.jsonl", 4096)
    tw.initial_file("db", 2, bytes(range(256)) * 16)
    inos = {"db": 2}
    sizes = {2: 4096}
    next_ino, acks = 3, 0
    tw.mark("ready 0")
    for _ in range(ops):
        kind = rng.choice("wwwwwwtffdcrumak")
        name = rng.choice(sorted(inos))
        ino = inos[name]
        if kind == "w":
            offset = rng.choice([0, 100, 512, 4096, sizes[ino], sizes[ino] + 300])
            length = rng.choice([1, 200, 512, 1500, 4096])
            tw.write(ino, name, offset, bytes([rng.randrange(1, 256)]) * length)
            sizes[ino] = max(sizes[ino], offset + length)
        elif kind == "t":
            sizes[ino] = rng.randrange(0, sizes[ino] + 1)
            tw.truncate(ino, name, sizes[ino])
        elif kind == "f":
            tw.fsync(ino, name, rng.random() < 0.5)
        elif kind == "d":
            tw.fsyncdir("")
        elif kind == "c" and len(inos) < 5:
            new = f"f{next_ino}"
            tw.create(next_ino, new)
            inos[new], sizes[next_ino] = next_ino, 0
            next_ino += 1
        elif kind == "r" and name != "db":
            new = f"f{next_ino}"
            next_ino += 1
            tw.rename(ino, name, new)
            inos[new] = inos.pop(name)
        elif kind == "u" and name != "db":
            tw.unlink(ino, name)
            del inos[name]
        elif kind == "m":
            tw.mkdir(f"d{next_ino}")
            next_ino += 1
        elif kind in "ak":
            acks += 1
            tw.mark(f"ack {acks}")
    tw.stop(True)
    tw.close()
    return Timeline(TraceReader(tmp / f"r{seed}.jsonl"))


def timelines(tmp: pathlib.Path) -> list[Timeline]:
    recorded = recorded_run(tmp / "rec", commits=10)
    return [trace(tmp, basic), Timeline(recorded.reader())] + [random_trace(tmp, s) for s in range(6)]


def test_the_presets_number_their_states_exactly_as_the_models_of_before(tmp_path: pathlib.Path) -> None:
    compared = 0
    for t in timelines(tmp_path):
        space = StateSpace(t)
        for name, model in PRESETS.items():
            assert model.value == name and M.parse(name) is model
            old = legacy_states(name, t)
            assert space.total(model) == len(old), name
            assert [as_old(space.spec(model, i)) for i in range(len(old))] == old, name
            for budget, seed in ((5, 1), (17, 4242), (10_000, 7)):
                assert space.select(model, budget, seed).indices == legacy_sample(name, len(old), budget, seed)
            compared += len(old)
    assert compared > 5000  # not a comparison of empty spaces


# -- parts, parsed and combined ----------------------------------------------------------------------


def test_models_parse_from_parts_in_any_order_and_read_back_canonically() -> None:
    lazy_prefix = M.parse("dirs=lazy+data=prefix")
    assert lazy_prefix == M.parse("data=prefix+dirs=lazy") and lazy_prefix.value == "data=prefix+dirs=lazy"
    assert lazy_prefix.lazy_dirs and not M.PREFIX.lazy_dirs
    assert M.parse("data=prefix") is M.PREFIX and M.parse("dirs=lazy").value == "lazy-dirs"
    assert M.parse("data=drop-1").value == "reorder-one" and M.parse("data=synced+dirs=at-once") is M.SYNCED_ONLY
    assert M.parse("dirs=lazy+dirsync=skipped").value == "dirs=lazy+dirsync=skipped"
    assert parse_state_id("data=prefix+dirs=lazy:7") == (lazy_prefix, 7)
    assert M.parse_list("all") == tuple(PRESETS.values())
    assert M.parse_list("prefix, data=prefix,torn") == (M.PREFIX, M.TORN)
    for bad in ("nope", "data=nope", "data=drop-5", "data=drop-0", "dirs=lazy+dirs=ordered", "data", "=prefix",
                "colour=red"):
        with pytest.raises(ScenarioError):
            M.parse(bad)
    for bad in ("data=nope:1", "prefix+:1"):
        with pytest.raises(ScenarioError):
            parse_state_id(bad)


def test_combined_parts_are_the_product_of_their_choices(tmp_path: pathlib.Path) -> None:
    t = random_trace(tmp_path, 11)
    model = M.parse("dirs=lazy+data=prefix")
    space = StateSpace(t, (model, M.PREFIX, M.LAZY_DIRS))
    assert space.total(model) == sum((len(p.unsynced) + 1) * (len(p.pending) + 1) for p in t.points)
    seen = {(s.point.index, s.persisted, s.entries) for s in map(lambda i: space.spec(model, i),
                                                                 range(space.total(model)))}
    assert len(seen) == space.total(model)  # every combination once
    assert space.total(model) > space.total(M.PREFIX) + space.total(M.LAZY_DIRS)


def test_drop_k_drops_every_set_of_up_to_k_writes_once(tmp_path: pathlib.Path) -> None:
    t = random_trace(tmp_path, 3)
    model = M.parse("data=drop-2")
    space = StateSpace(t, (model,))
    by_point: dict[int, list[tuple[int, ...]]] = {}
    for i in range(space.total(model)):
        spec = space.spec(model, i)
        assert set(spec.persisted) | set(spec.dropped) == set(spec.point.unsynced)
        by_point.setdefault(spec.point.index, []).append(spec.dropped)
    for point in t.points:
        writes = [p for p in point.unsynced if isinstance(t.ops[p], Write)]
        want = [c for k in (1, 2) for c in itertools.combinations(writes, k)]
        assert by_point.get(point.index, []) == want


def test_torn_any_keeps_every_proper_subset_of_sectors(tmp_path: pathlib.Path) -> None:
    def build(tw: TraceWriter) -> None:
        tw.mark("ready 0")
        tw.write(A, "a", 100, b"w" * 1200)  # sectors 0, 1, 2 of the file: 3 sectors, 6 torn states

    t = trace(tmp_path, build)
    model = M.parse("data=torn-any")
    space = StateSpace(t, (model,))
    assert space.total(model) == 6
    m = Materializer(t, tmp_path / "work")
    got = set()
    for i in range(6):
        spec = space.spec(model, i)
        m.write(spec, tmp_path / f"s{i}")
        got.add((tmp_path / f"s{i}" / "a").read_bytes())
    old = b"0" * 1000
    new = old[:100] + b"w" * 1200
    want = set()
    for mask in range(1, 7):
        data = bytearray(old)
        for sector in range(3):
            if mask >> sector & 1:
                lo, hi = max(100, sector * 512), min(1300, (sector + 1) * 512)
                data[len(data):] = bytes(max(0, hi - len(data)))
                data[lo:hi] = new[lo:hi]
        want.add(bytes(data))
    assert got == want and len(got) == 6


def test_appends_may_grow_the_file_before_the_data_lands(tmp_path: pathlib.Path) -> None:
    def build(tw: TraceWriter) -> None:
        tw.mark("ready 0")
        tw.write(A, "a", 900, b"n" * 300)  # grows a from 1000 to 1200 bytes

    t = trace(tmp_path, build)
    m = Materializer(t, tmp_path / "work")
    for choice, fill in (("zeros", b"\0"), ("garbage", b"\xa5")):
        model = M.parse(f"appends={choice}")
        space = StateSpace(t, (model,))
        assert space.total(model) == 1 + 2  # right after ready; after the write: with the data, or grown
        grown = space.spec(model, 2)
        assert grown.grown is not None
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        m.write(grown, tmp_path / "out")
        assert (tmp_path / "out" / "a").read_bytes() == b"0" * 1000 + fill * 200  # the old bytes stay
        assert m.size(grown, A) == 1200 and m.read(grown, A, 990, 20) == b"0" * 10 + fill * 10


def test_ordered_entries_commit_at_any_fsync_and_skipped_dirsyncs_commit_nothing(tmp_path: pathlib.Path) -> None:
    def build(tw: TraceWriter) -> None:
        tw.mark("ready 0")
        tw.create(B, "b")        # seq 2
        tw.fsync(A, "a", True)   # seq 3: a journal commit under ordered
        tw.unlink(B, "b")        # seq 4
        tw.fsyncdir("")          # seq 5

    t = trace(tmp_path, build)
    last = t.points[-1]
    assert last.committed(Dirs.ORDERED, DirSync.KEPT) == (2, 0)
    assert last.committed(Dirs.LAZY, DirSync.KEPT) == (2, 0)
    assert last.committed(Dirs.LAZY, DirSync.SKIPPED)[0] == 0
    assert last.committed(Dirs.ORDERED, DirSync.SKIPPED)[0] == 1
    after_fsync = t.points[2]
    assert after_fsync.committed(Dirs.ORDERED, DirSync.KEPT)[0] == 1
    assert after_fsync.committed(Dirs.LAZY, DirSync.KEPT)[0] == 0
    space = StateSpace(t, (M.parse("dirs=lazy+dirsync=skipped"),))
    m = Materializer(t, tmp_path / "work")
    model = space.models[0]
    names = [sorted(m.state_names(space.spec(model, i))) for i in range(space.total(model))
             if space.spec(model, i).point.index == last.index]
    assert names == [["a"], ["a", "b"], ["a"]]  # the directory fsync did not count


# -- every state's files against a replay from the trace's start ----------------------------------------


def replayed(t: Timeline, spec: StateSpec) -> dict[str, bytes]:
    """The state's files, from nothing but the trace: what fsyncs made durable before the crash point, the
    state's own persisted/torn/grown operations, the names its entry log prefix gives."""
    durable = {p for k, ps in t.durable_at.items() if k < spec.point.pos for p in ps}
    mine = set(spec.persisted)
    content = {f.ino: bytearray(f.data) for f in t.initial.files}
    names = {f.path: f.ino for f in t.initial.files}
    entries = 0
    for pos, op in enumerate(t.ops[:spec.point.pos]):
        if isinstance(op, (Create, Rename, Unlink)):
            if isinstance(op, Create):
                content[op.ino] = bytearray()
            if spec.entries is None or entries < spec.entries:
                apply_entry(names, op)
            entries += 1
        if not isinstance(op, (Write, Truncate)):
            continue
        buf = content[op.ino]
        if pos in durable or pos in mine:
            if isinstance(op, Truncate):
                del buf[op.size:]
                buf.extend(bytes(op.size - len(buf)))
            else:
                buf.extend(bytes(max(0, op.offset - len(buf))))
                buf[op.offset:op.offset + op.length] = op.data
        elif spec.torn is not None and pos == spec.torn.pos:
            assert isinstance(op, Write)
            first = op.offset // 512
            for sector in spec.torn.sectors_kept():
                lo, hi = max(op.offset, (first + sector) * 512), min(op.offset + op.length, (first + sector + 1) * 512)
                buf.extend(bytes(max(0, lo - len(buf))))
                buf[lo:hi] = op.data[lo - op.offset:hi - op.offset]
        elif spec.grown is not None and pos in spec.dropped and pos in t.grows:
            assert isinstance(op, Write)
            fill = b"\xa5" if spec.grown.value == "garbage" else b"\0"
            buf.extend(fill * max(0, op.offset + op.length - len(buf)))
    return {path: bytes(content[ino]) for path, ino in names.items()}


@pytest.mark.parametrize("name", [*PRESETS, "dirs=lazy+data=prefix", "data=drop-2+appends=garbage",
                                  "data=torn-any+dirs=ordered", "appends=zeros+data=prefix+dirs=lazy+dirsync=skipped"])
def test_every_state_holds_what_a_replay_from_the_start_gives(name: str, tmp_path: pathlib.Path) -> None:
    model = M.parse(name)
    checked = 0
    for seed in (1, 2):
        t = random_trace(tmp_path, seed, ops=70)
        space = StateSpace(t, (model,))
        m = Materializer(t, tmp_path / f"work{seed}")
        for i in space.select(model, 300, seed).indices:
            spec = space.spec(model, i)
            out = tmp_path / "out"
            shutil.rmtree(out, ignore_errors=True)
            m.write(spec, out)
            got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
            assert got == replayed(t, spec), spec.state_id
            for path, data in got.items():
                ino = m.state_names(spec)[path]
                assert m.size(spec, ino) == len(data) and m.read(spec, ino, 0, len(data) + 10) == data
            checked += 1
    assert checked >= 20
