"""The volatile disk model, without FUSE: what reaches the backing directory, and what a cut loses."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.lossyfs import ROOT_INO, CacheOptions, VolatileDisk
from repro.lossyfs.errors import AlreadyExists, InvalidOptions, IsADirectory, NotEmpty, NotFound, PowerCut

PS = 4096


def page(fill: int, n: int = 1) -> bytes:
    return bytes([fill]) * (PS * n)


def disk(backing: Path, **opts: object) -> VolatileDisk:
    return VolatileDisk(backing, CacheOptions(**opts))  # type: ignore[arg-type]


def new_file(d: VolatileDisk, name: str, data: bytes = b"") -> int:
    ino = d.create(ROOT_INO, name).ino
    if data:
        d.write(ino, 0, data)
    d.fsync(ino)
    return ino


def test_read_your_writes_across_pages_without_touching_the_backing_file(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f", page(0x41, 3))
    d.write(ino, PS - 10, b"x" * 30)  # straddles pages 0 and 1
    d.write(ino, 3 * PS + 100, b"tail")  # extends the file past a gap of zeros

    expected = bytearray(page(0x41, 3))
    expected[PS - 10 : PS + 20] = b"x" * 30
    expected += bytes(100) + b"tail"
    assert d.read(ino, 0, 10 * PS) == bytes(expected)
    assert d.getattr(ino).size == len(expected)
    assert (tmp_path / "f").read_bytes() == page(0x41, 3)
    assert d.dirty_pages(ino) == {0, 1, 3}


def test_fsync_persists_exactly_that_files_dirty_pages(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(page(0x61, 4))
    (tmp_path / "b").write_bytes(page(0x62, 2))
    d = disk(tmp_path)
    a = d.lookup(ROOT_INO, "a").ino
    b = d.lookup(ROOT_INO, "b").ino
    d.write(a, PS, page(0x31))
    d.write(a, 3 * PS + 7, b"z")
    d.write(b, 0, page(0x32))

    d.fsync(a)

    want_a = bytearray(page(0x61, 4))
    want_a[PS : 2 * PS] = page(0x31)
    want_a[3 * PS + 7] = ord("z")
    assert (tmp_path / "a").read_bytes() == bytes(want_a)
    assert d.dirty_pages(a) == frozenset()
    assert (tmp_path / "b").read_bytes() == page(0x62, 2)
    assert d.dirty_pages(b) == {0}


def test_fsync_persists_growth_and_shrink_of_the_size(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f", page(1, 2))
    d.truncate(ino, 100)
    d.fsync(ino)
    assert (tmp_path / "f").read_bytes() == page(1)[:100]
    d.truncate(ino, 5000)
    d.fsync(ino)
    assert (tmp_path / "f").read_bytes() == page(1)[:100] + bytes(4900)


def test_cut_loses_exactly_the_pages_not_yet_persisted(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(page(0, 16))
    d = disk(tmp_path, seed=7, writeback_rate=0.5)
    ino = d.lookup(ROOT_INO, "f").ino
    for p in range(16):
        d.write(ino, p * PS, page(p + 1))
    d.writeback()
    lost = d.dirty_pages(ino)
    assert 0 < len(lost) < 16  # the seed persists some, not all

    report = d.cut()

    on_disk = (tmp_path / "f").read_bytes()
    for p in range(16):
        want = page(0) if p in lost else page(p + 1)
        assert on_disk[p * PS : (p + 1) * PS] == want, p
    assert report.pages_dropped == len(lost)
    assert report.bytes_dropped == len(lost) * PS
    assert report.files_affected == ("f",)


def test_after_the_cut_every_call_fails_and_nothing_reaches_the_backing_dir(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f", b"durable")
    d.write(ino, 0, b"lost!!!")
    d.cut()
    calls = [
        lambda: d.write(ino, 0, b"later"),
        lambda: d.fsync(ino),
        lambda: d.read(ino, 0, 7),
        lambda: d.create(ROOT_INO, "g"),
        lambda: d.unlink(ROOT_INO, "f"),
        lambda: d.writeback(),
        lambda: d.sync_all(),
        lambda: d.cut(),
    ]
    for call in calls:
        with pytest.raises(PowerCut):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"durable"


def test_truncate_then_extend_reads_zeros_and_a_cut_keeps_the_old_size(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f", page(9, 3))
    d.write(ino, 2 * PS, page(8))  # dirty page beyond the coming truncate
    d.truncate(ino, 10)
    d.truncate(ino, 3 * PS)
    assert d.read(ino, 0, 3 * PS) == page(9)[:10] + bytes(3 * PS - 10)
    assert d.dirty_pages(ino) == frozenset()  # page 2 was dropped by the shrink

    report = d.cut()

    assert (tmp_path / "f").read_bytes() == page(9, 3)
    assert report.sizes_dropped == 1


def test_shrinking_into_a_dirty_page_zeroes_its_tail(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f")
    d.write(ino, 0, page(7))
    d.truncate(ino, 10)
    d.truncate(ino, PS)
    assert d.read(ino, 0, PS) == page(7)[:10] + bytes(PS - 10)
    d.fsync(ino)
    assert (tmp_path / "f").read_bytes() == page(7)[:10] + bytes(PS - 10)


def test_a_page_written_back_after_a_shrink_is_not_truncated_away_later(tmp_path: Path) -> None:
    d = disk(tmp_path, writeback_rate=1.0)
    ino = new_file(d, "f", page(9, 4))
    d.truncate(ino, 0)
    d.write(ino, 2 * PS, page(5))
    d.writeback()
    d.fsync(ino)
    assert (tmp_path / "f").read_bytes() == bytes(2 * PS) + page(5)


def test_rename_is_immediate_without_lazy_dirs_and_replaces_the_target(tmp_path: Path) -> None:
    d = disk(tmp_path)
    new_file(d, "old", b"old")
    src = new_file(d, "tmp", b"new")
    d.rename(ROOT_INO, "tmp", ROOT_INO, "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert (tmp_path / "old").read_bytes() == b"new"
    assert d.lookup(ROOT_INO, "old").ino == src
    with pytest.raises(NotFound):
        d.lookup(ROOT_INO, "tmp")
    d.write(src, 3, b"er")  # content follows the inode to its new name
    d.fsync(src)
    assert (tmp_path / "old").read_bytes() == b"newer"
    d.cut()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_rename_noreplace_and_directory_errors(tmp_path: Path) -> None:
    d = disk(tmp_path)
    new_file(d, "a")
    new_file(d, "b")
    sub = d.mkdir(ROOT_INO, "sub").ino
    new_file(d, "c")
    d.rename(ROOT_INO, "c", sub, "c")
    assert (tmp_path / "sub" / "c").exists()
    with pytest.raises(AlreadyExists):
        d.rename(ROOT_INO, "a", ROOT_INO, "b", noreplace=True)
    with pytest.raises(IsADirectory):
        d.rename(ROOT_INO, "a", ROOT_INO, "sub")
    with pytest.raises(NotEmpty):
        d.rmdir(ROOT_INO, "sub")
    with pytest.raises(IsADirectory):
        d.unlink(ROOT_INO, "sub")


def test_existing_backing_tree_is_served(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_bytes(b"hello")
    d = disk(tmp_path)
    sub = d.lookup(ROOT_INO, "dir").ino
    x = d.lookup(sub, "x")
    assert [name for name, _ in d.listdir(sub)] == ["x"]
    assert d.read(x.ino, 0, 100) == b"hello"
    assert d.lookup(sub, "..").ino == ROOT_INO


def test_lazy_create_is_lost_by_a_cut_even_after_a_file_fsync(tmp_path: Path) -> None:
    d = disk(tmp_path, lazy_dirs=True)
    new_file(d, "f", b"synced data, unsynced name")
    assert list(tmp_path.iterdir()) == []
    report = d.cut()
    assert list(tmp_path.iterdir()) == []
    assert report.entries_reverted == ("create f",)


def test_lazy_create_survives_once_the_directory_is_fsynced(tmp_path: Path) -> None:
    d = disk(tmp_path, lazy_dirs=True)
    ino = new_file(d, "f", b"synced")
    d.fsync(ROOT_INO)
    d.write(ino, 0, b"SYNCED-LATE")
    d.fsync(ino)
    d.cut()
    assert (tmp_path / "f").read_bytes() == b"SYNCED-LATE"


def test_lazy_unlink_of_a_journal_reverts_unless_the_directory_is_fsynced(tmp_path: Path) -> None:
    # synchronous=EXTRA in DELETE mode: the -journal unlink is durable only after a dir fsync.
    for extra in (False, True):
        backing = tmp_path / str(extra)
        backing.mkdir()
        d = disk(backing, lazy_dirs=True)
        new_file(d, "db-journal", b"hot journal")
        d.fsync(ROOT_INO)
        d.unlink(ROOT_INO, "db-journal")
        new_file(d, "db-journal", b"next transaction")  # same name, new inode, name not durable
        if extra:
            d.fsync(ROOT_INO)
        d.cut()
        want = b"next transaction" if extra else b"hot journal"
        assert (backing / "db-journal").read_bytes() == want


def test_lazy_rename_reverts_on_cut_and_dir_fsync_commits_it(tmp_path: Path) -> None:
    for fsync_dir in (False, True):
        backing = tmp_path / str(fsync_dir)
        backing.mkdir()
        d = disk(backing, lazy_dirs=True)
        new_file(d, "a", b"A")
        d.fsync(ROOT_INO)
        d.rename(ROOT_INO, "a", ROOT_INO, "b")
        if fsync_dir:
            d.fsync(ROOT_INO)
        report = d.cut()
        assert sorted(p.name for p in backing.iterdir()) == (["b"] if fsync_dir else ["a"])
        assert report.entries_reverted == (() if fsync_dir else ("rename a -> b",))


def test_fsync_of_one_directory_commits_the_entry_log_up_to_its_last_change(tmp_path: Path) -> None:
    d = disk(tmp_path, lazy_dirs=True)
    sub = d.mkdir(ROOT_INO, "sub").ino
    new_file(d, "root-1")
    d.create(sub, "sub-1")
    new_file(d, "root-2")
    d.fsync(sub)
    assert [c.describe() for c in d.pending_entries()] == ["create root-2"]
    d.cut()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root-1", "sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["sub-1"]


def test_torn_write_tears_the_in_flight_page_at_sector_boundaries(tmp_path: Path) -> None:
    torn_seen: set[tuple[int, ...]] = set()
    for seed in range(8):
        backing = tmp_path / str(seed)
        backing.mkdir()
        (backing / "f").write_bytes(page(0xAA))
        d = disk(backing, seed=seed, torn_writes=True)
        ino = d.lookup(ROOT_INO, "f").ino
        d.write(ino, 0, page(0xBB))

        report = d.cut()

        (torn,) = report.torn
        assert (torn.path, torn.page, torn.sectors_total) == ("f", 0, 8)
        assert 0 < len(torn.sectors_written) < 8
        on_disk = (backing / "f").read_bytes()
        for s in range(8):
            want = 0xBB if s in torn.sectors_written else 0xAA
            assert on_disk[s * 512 : (s + 1) * 512] == bytes([want]) * 512, (seed, s)
        torn_seen.add(torn.sectors_written)
    assert len(torn_seen) > 1  # the seed chooses the tear


def test_without_torn_writes_the_in_flight_page_is_all_old(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(page(0xAA))
    d = disk(tmp_path, torn_writes=False)
    d.write(d.lookup(ROOT_INO, "f").ino, 0, page(0xBB))
    assert d.cut().torn == ()
    assert (tmp_path / "f").read_bytes() == page(0xAA)


@pytest.mark.parametrize("rate, persisted", [(0.0, 0), (1.0, 8)])
def test_writeback_rate_bounds(tmp_path: Path, rate: float, persisted: int) -> None:
    d = disk(tmp_path, writeback_rate=rate)
    ino = new_file(d, "f", page(0, 8))
    d.write(ino, 0, page(1, 8))
    report = d.writeback()
    assert report.pages_written == persisted
    assert len(d.dirty_pages(ino)) == 8 - persisted


def _trial(backing: Path, seed: int) -> tuple[object, dict[str, bytes]]:
    d = disk(backing, seed=seed, torn_writes=True, lazy_dirs=True, writeback_rate=0.3)
    a = new_file(d, "a", page(1, 4))
    d.fsync(ROOT_INO)
    b = d.create(ROOT_INO, "b").ino
    for step in range(6):
        d.write(a, step * 1000, bytes([step + 10]) * 3000)
        d.write(b, step * PS, page(step + 20))
        d.writeback()
    report = d.cut()
    return report, {p.name: p.read_bytes() for p in sorted(backing.iterdir())}


def test_same_seed_same_outcome_and_other_seeds_differ(tmp_path: Path) -> None:
    outcomes = {}
    for run, seed in enumerate([3, 3, 4, 5]):
        backing = tmp_path / f"run{run}"
        backing.mkdir()
        outcomes[run] = _trial(backing, seed)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] != outcomes[2] or outcomes[0] != outcomes[3]


def test_unlinked_open_file_keeps_serving_its_data_until_forgotten(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f", b"still here")
    d.unlink(ROOT_INO, "f")
    assert not (tmp_path / "f").exists()
    assert d.read(ino, 0, 100) == b"still here"
    d.forget(ino)
    with pytest.raises(NotFound):
        d.getattr(ino)


@pytest.mark.parametrize("opts", [{"page_size": 1000}, {"page_size": 0}, {"writeback_rate": 1.5}])
def test_invalid_options_are_typed_errors(opts: dict[str, object]) -> None:
    with pytest.raises(InvalidOptions):
        CacheOptions(**opts)  # type: ignore[arg-type]


def test_missing_backing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        VolatileDisk(tmp_path / "nope")


def test_written_buffers_are_not_aliased_and_views_of_bytes_stay_correct(tmp_path: Path) -> None:
    d = disk(tmp_path)
    ino = new_file(d, "f")
    mutable = bytearray(page(0x11, 2))
    d.write(ino, 0, mutable)
    mutable[:] = page(0x22, 2)  # the caller reuses its buffer: the cache must not see it
    assert d.read(ino, 0, 2 * PS) == page(0x11, 2)
    d.write(ino, 2 * PS, page(0x33, 2))  # whole pages of immutable bytes
    d.write(ino, 2 * PS + 5, b"abc")  # then a partial rewrite of one of them
    d.truncate(ino, 3 * PS + 100)  # and a shrink into the other
    want = page(0x11, 2) + page(0x33)[:5] + b"abc" + page(0x33)[8:] + page(0x33)[:100]
    assert d.read(ino, 0, 10 * PS) == want
    d.fsync(ino)
    assert (tmp_path / "f").read_bytes() == want
