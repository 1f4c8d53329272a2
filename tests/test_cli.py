"""Tests for ganref/pipeline/cli.py: every error is one line naming the option, variable or file at fault.

Issue 11, item 6: OS errors surfaced as tracebacks, `ganref results` did not say which file it could
not read, `--root ''` meant the current folder, and `ganref book` outside the repository asked for a
`book_dir` that the command line cannot set. No test here starts a kernel or touches the network.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ganref import datasets
from ganref.pipeline import cli, runner


def _error(capsys) -> str:
    """The command's stderr, checked to be one line."""
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"not one line:\n{err}"
    return err


@pytest.fixture
def no_kernel(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(runner.cluster, "connect", fail)  # no Dask cluster, so no task, so no kernel
    monkeypatch.setattr(runner, "execute", fail)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_cli_errors_are_clear(capsys, no_kernel):
    assert cli.main(["run", "99", "--profile", "smoke"]) == 2
    assert "chapter '99' not found" in _error(capsys)
    assert cli.main(["run", "--jobs", "0", "--profile", "smoke"]) == 2
    assert "jobs must be an integer >= 1" in _error(capsys)
    proc = subprocess.run([sys.executable, "-m", "ganref.pipeline.cli", "run", "--profile", "huge"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'huge'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ganref.pipeline.cli", "run", "--seed", "1", "--seeds", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "argument --seeds: not allowed with argument --seed" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ganref.pipeline.cli", "results", "--format", "xml"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "argument --format: invalid choice: 'xml'" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "ganref run: error: device must be one of 'auto', 'cpu', 'cuda[:N]', 'mps', got 'tpu'"),
    (["--seed", "-1"], "ganref run: error: seed must be an integer in [0, 4294967295]"),
    (["--seed", str(2**32)], "ganref run: error: seed must be an integer in [0, 4294967295]"),
    (["--seeds", "0", str(2**32)], "ganref run: error: seed must be an integer in [0, 4294967295]"),
    (["--seeds", "2", "0", "2"], "ganref run: error: seeds must be distinct, got 2 more than once in [2, 0, 2]"),
    (["--out", ""], "ganref run: error: --out must name a folder, got ''"),
    (["--scheduler", ""], "ganref run: error: --scheduler must be a Dask scheduler address such as tcp://host:8786"),
])
def test_run_checks_options_before_any_kernel(tmp_path, capsys, no_kernel, argv, message):
    assert cli.main(["run", "--profile", "smoke", "--out", str(tmp_path / "runs"), *argv]) == 2
    assert message in _error(capsys)


def test_run_refuses_cuda_without_a_gpu_and_a_bad_thread_count(tmp_path, capsys, monkeypatch, no_kernel):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert cli.main(["run", "--profile", "smoke", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "device 'cuda' was asked for but CUDA is not available on this machine" in _error(capsys)
    monkeypatch.setenv("OMP_NUM_THREADS", "-2")
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "$OMP_NUM_THREADS must be a positive integer (threads per kernel), got '-2'" in _error(capsys)


def test_run_names_an_unusable_output_folder(tmp_path, capsys, monkeypatch, no_kernel):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the output folder should be")
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--out", str(blocker)]) == 2
    err = _error(capsys)
    assert f"cannot write the output folder {blocker}/smoke (--out '{blocker}'): {blocker} is a file, not a folder" in err

    def read_only(*args, **kwargs):  # as root, chmod cannot make a folder read-only: simulate it
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(runner.tempfile, "TemporaryFile", read_only)
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path / "ro")]) == 2
    assert f"cannot write the output folder {tmp_path}/ro/smoke (--out '{tmp_path}/ro'): Permission denied" in _error(capsys)


def test_results_without_runs(tmp_path, capsys):
    assert cli.main(["results", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "run `ganref run --profile smoke` first" in _error(capsys)
    assert cli.main(["results", "--profile", "smoke", "--out", ""]) == 2
    assert "--out must name a folder, got ''" in _error(capsys)
    (tmp_path / "file").write_text("")
    assert cli.main(["results", "--profile", "smoke", "--out", str(tmp_path / "file")]) == 2
    assert f"--out '{tmp_path}/file' is a file, not the folder" in _error(capsys)


def test_results_names_the_file_it_cannot_read(tmp_path, capsys):
    run = tmp_path / "smoke"
    run.mkdir()
    bad = run / "01_x.json"
    bad.write_text('{"chapter": "01_x", "resu')
    assert cli.main(["results", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert f"ganref results: error: cannot read results file {bad}: not valid JSON" in _error(capsys)
    bad.unlink()
    bad.mkdir()  # a folder where the file should be: an OSError
    assert cli.main(["results", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert f"Is a directory: {bad} (from --out '{tmp_path}')" in _error(capsys)


def test_data_root_errors_name_the_path_and_where_it_came_from(tmp_path, capsys, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets, "_download", no_download)
    assert cli.main(["data", "fetch", "mnist", "--root", ""]) == 2
    assert "ganref data: error: --root must name a folder, got ''" in _error(capsys)
    blocker = tmp_path / "data-file"
    blocker.write_text("")
    monkeypatch.setenv(datasets.DATA_ENV, str(blocker))
    assert cli.main(["data", "fetch", "mnist"]) == 2
    err = _error(capsys)
    assert f"{blocker}/mnist" in err and f"from ${datasets.DATA_ENV}='{blocker}'" in err and "a file is where" in err
    assert cli.main(["data", "fetch", "mnist", "--root", str(blocker)]) == 2
    assert f"(from --root '{blocker}')" in _error(capsys)

    def read_only(self, *args, **kwargs):  # as root, chmod cannot make a folder read-only: simulate it
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "ro"))
    monkeypatch.setattr(datasets.Path, "mkdir", read_only)
    assert cli.main(["data", "fetch", "mnist"]) == 2
    assert f"Permission denied: {tmp_path}/ro/mnist (from ${datasets.DATA_ENV}='{tmp_path}/ro')" in _error(capsys)


def test_book_outside_the_repository_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GANREF_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["book", "--profile", "smoke"]) == 2
    err = _error(capsys)
    assert f"no book/_config.yml in {tmp_path} or its parents" in err
    assert "run it from the repository (the folder holding book/ and notebooks/), or set $GANREF_ROOT" in err
    monkeypatch.setenv("GANREF_ROOT", str(tmp_path))
    assert cli.main(["book", "--profile", "smoke"]) == 2
    assert f"no book/_config.yml in $GANREF_ROOT='{tmp_path}'" in _error(capsys)


def test_list_command(capsys):
    assert cli.main(["list"]) == 0
    assert "01_vanilla_gan" in capsys.readouterr().out
