"""What the lab writes goes where it was told: merge's --out follows run's rule, --force never writes through a
link, and a full --out, an unwritable cache or a crafted report.json is one line and the lab's exit code."""

from __future__ import annotations

import errno
import io
import os
import pathlib
import subprocess

import pytest

from repro.cli import main
from repro.errors import ExitCode
from repro.report import outdir
from test_cli import _no_engine, one_error_line  # noqa: F401 (an autouse fixture: no engine, an empty cwd)
from test_shards import shard_dirs, trials


def shards(tmp_path: pathlib.Path) -> list[str]:
    return [str(d) for d in shard_dirs(tmp_path / "shards", trials(), 3)]


def earlier_report(path: pathlib.Path) -> None:
    path.mkdir(parents=True)
    (path / "report.json").write_text('{"format": 1, "run": {}, "trials": []}')


# -- 1. `repro merge --out` refuses an existing directory without --force, as `repro run --out` does --------


def test_merge_refuses_a_non_empty_out_without_force_and_force_replaces_only_the_lab_report(
        capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "merged"
    earlier_report(out)
    (out / "notes.txt").write_text("mine")
    assert main(["merge", *dirs, "--out", str(out)]) == ExitCode.BAD_INPUT
    assert "--force" in one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json"]  # untouched
    assert main(["merge", *dirs, "--out", str(out), "--force"]) == ExitCode.TRIAL_FAILED  # the merged verdicts
    capsys.readouterr()
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.html").is_file()
    assert '"merged_from"' in (out / "report.json").read_text()


def test_merge_with_force_still_refuses_a_directory_that_is_no_lab_report(capsys: pytest.CaptureFixture[str],
                                                                           tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    assert main(["merge", *dirs, "--out", str(out), "--force"]) == ExitCode.BAD_INPUT
    assert "even with --force" in one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_a_merge_whose_shards_are_wrong_leaves_the_out_it_would_clear(capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "merged"
    earlier_report(out)
    assert main(["merge", *dirs[:2], "--out", str(out), "--force"]) == ExitCode.BAD_INPUT
    assert "exactly once" in one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["report.json"]  # checked before anything was cleared


# -- 2. --force never writes through a symbolic link ----------------------------------------------------------


@pytest.mark.parametrize("command", [["run", "--fault", "sigkill"], ["merge", "SHARDS"]])
def test_an_out_that_is_a_link_is_refused(command: list[str], capsys: pytest.CaptureFixture[str],
                                          tmp_path: pathlib.Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    earlier_report(elsewhere)
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    argv = [part for c in command for part in (shards(tmp_path) if c == "SHARDS" else [c])]
    assert main([*argv, "--out", str(link), "--force"]) == ExitCode.BAD_INPUT
    assert "symbolic link" in one_error_line(capsys)
    assert [p.name for p in elsewhere.iterdir()] == ["report.json"]


def test_force_replaces_links_inside_the_out_never_what_they_point_to(capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "merged"
    earlier_report(out)
    precious = tmp_path / "bashrc"
    precious.write_text("precious")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root")
    (out / "report.md").symlink_to(precious)
    (out / "report.html").symlink_to(precious)
    (out / "trials").symlink_to(tmp_path / "etc")
    assert main(["merge", *dirs, "--out", str(out), "--force"]) == ExitCode.TRIAL_FAILED
    capsys.readouterr()
    assert precious.read_text() == "precious"
    assert [p.name for p in (tmp_path / "etc").iterdir()] == ["passwd"]
    for name in ("report.md", "report.html", "trials"):
        assert not (out / name).is_symlink()
    assert (out / "trials").is_dir() and any((out / "trials").iterdir())  # the merged evidence, in the out


def test_rerendering_a_run_replaces_a_planted_link_instead_of_writing_through_it(
        capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    run_dir = pathlib.Path(shards(tmp_path)[0])
    precious = tmp_path / "precious"
    precious.write_text("precious")
    (run_dir / "report.md").unlink()
    (run_dir / "report.md").symlink_to(precious)
    assert main(["report", str(run_dir)]) == ExitCode.OK
    assert precious.read_text() == "precious" and not (run_dir / "report.md").is_symlink()


# -- 3. a full --out, an unwritable cache, a crafted report.json: one line, the lab's exit code ---------------


def test_a_full_out_is_one_line_and_exit_3_and_keeps_the_old_reports(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: pathlib.Path) -> None:
    run_dir = pathlib.Path(shards(tmp_path)[0])
    before = (run_dir / "report.md").read_text()
    real_fdopen = os.fdopen

    class Full(io.FileIO):
        def write(self, data: object) -> int:  # type: ignore[override]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd: int, mode: str = "r", *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return Full(fd, "wb") if "w" in mode else real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)  # the disk is full for every file the lab writes
    assert main(["report", str(run_dir)]) == ExitCode.LAB_FAILED
    line = one_error_line(capsys)
    assert line.startswith("repro: lab failed: ") and "No space left on device" in line
    assert (run_dir / "report.md").read_text() == before  # the old report, whole
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_really_full_tmpfs_out_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "small"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (out / "filler").write_bytes(b"x" * 12 * 1024)  # what is left is too small for the reports
        (out / "report.json").write_text('{"format": 1, "run": {}, "trials": []}')
        assert main(["merge", *dirs, "--out", str(out), "--force"]) == ExitCode.LAB_FAILED
        assert "No space left on device" in one_error_line(capsys)
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_a_full_out_during_a_merge_is_one_line_and_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str],
                                                          tmp_path: pathlib.Path) -> None:
    dirs, out = shards(tmp_path), tmp_path / "merged"
    import shutil

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copytree", full)  # copying a shard's evidence
    assert main(["merge", *dirs, "--out", str(out)]) == ExitCode.LAB_FAILED
    assert "No space left on device" in one_error_line(capsys)


def test_a_cache_path_that_is_a_file_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str],
                                                            tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a directory")
    monkeypatch.setenv("HERMES_LAB_CACHE", str(cache))
    assert main(["run", "--fault", "sigkill", "--sqlite", "3.51.2"]) == ExitCode.BAD_INPUT
    line = one_error_line(capsys)
    assert "HERMES_LAB_CACHE" in line and str(cache) in line
    assert cache.read_text() == "not a directory"


@pytest.mark.parametrize(("err", "code", "words"), [
    (errno.EROFS, ExitCode.BAD_INPUT, ("Read-only file system", "HERMES_LAB_CACHE")),
    (errno.EACCES, ExitCode.BAD_INPUT, ("Permission denied", "HERMES_LAB_CACHE")),
    (errno.ENOSPC, ExitCode.LAB_FAILED, ("is full", "repro clean --caches")),
])
def test_a_cache_that_cannot_be_written_is_one_line_and_the_labs_exit_code(
        err: int, code: ExitCode, words: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("HERMES_LAB_CACHE", str(cache))
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path: object, *args: object, real=None, **kwargs: object):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(cache)):  # the OS refuses every write under the cache (root ignores modes)
            raise OSError(err, os.strerror(err), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: refuse(p, *a, real=real_mkdir, **k))
    monkeypatch.setattr(os, "open", lambda p, *a, **k: refuse(p, *a, real=real_open, **k))
    assert main(["run", "--fault", "sigkill", "--sqlite", "3.51.2"]) == code
    line = one_error_line(capsys)
    assert all(word in line for word in words), line


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("command", [["report", "RUN"], ["merge", "RUN", "--out", "merged"], ["replay", "RUN", "t1"],
                                     ["run", "--fault", "sigkill", "--out", "RUN", "--force"]])
@pytest.mark.parametrize("report", [DEEP, '{"format": 1, "run": {}, "trials": [' + DEEP + "]}",
                                    '{"format": 1, "run": {}, "trials": [{"scenario": ' + "[" * 500 + "]" * 500 + "}]}"])
def test_a_deeply_nested_report_json_is_one_line_and_exit_2(command: list[str], report: str,
                                                            capsys: pytest.CaptureFixture[str],
                                                            tmp_path: pathlib.Path) -> None:
    run_dir = tmp_path / "crafted"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(report)
    (run_dir / "notes.txt").write_text("mine")
    assert main([str(run_dir) if part == "RUN" else part for part in command]) == ExitCode.BAD_INPUT
    line = one_error_line(capsys)
    assert "nests deeper" in line or "no lab report" in line, line
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt", "report.json"]


@pytest.mark.parametrize("content", [b"\xff\xfe{", b'{"format": 1, "run": {}, "trials": [{"id": 1}]}'])
def test_an_undecodable_or_incomplete_report_json_is_one_line_and_exit_2(content: bytes,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: pathlib.Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_bytes(content)
    assert main(["report", str(tmp_path / "r")]) == ExitCode.BAD_INPUT
    assert "is not a lab report" in one_error_line(capsys)


def test_replace_file_never_follows_a_link(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.md").symlink_to(target)
    outdir.replace_file(tmp_path / "r" / "report.md", "new")
    assert target.read_text() == "keep" and (tmp_path / "r" / "report.md").read_text() == "new"
