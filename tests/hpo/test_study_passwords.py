"""No database password in any output or file of a study: ``hpo run`` and ``hpo report`` against a
real PostgreSQL server with a password-protected role (stdout, stderr and logs, the study and
report directories), the URL given on the command line, in an environment variable or a file; a wrong password and a server that is down are one-line errors without it."""

import os
import socket
import subprocess

import pytest

from jetlab.cli.main import main

pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")


#: the warm interpreter (tests/warm_start.py) the commands start from, set for every test
WARM = None


@pytest.fixture(autouse=True)
def _warm_commands(warm_jetlab):
    global WARM
    WARM = warm_jetlab


def _jetlab(*args, env=None, cwd=None):
    env = {**os.environ, "JETLAB_NO_PROGRESS": "1", **WARM.environment(), **(env or {})}
    return subprocess.run([*WARM.jetlab(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _files_holding(root, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_no_password_in_any_output_or_file_of_a_study_run(tmp_path, postgres_password_url, trial_flags):
    password = postgres_password_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    masked = postgres_password_url.replace(password, "***")
    study = ["--study", "pw", "--dir", str(tmp_path / "study")]
    runs = [_jetlab("hpo", "run", *study, *trial_flags, "--epochs", "1", "--trials", "1",
                    "--storage", postgres_password_url, cwd=tmp_path),
            _jetlab("hpo", "report", *study, "--out", str(tmp_path / "report"), "--storage-env", "JETLAB_DB",
                    env={"JETLAB_DB": postgres_password_url}, cwd=tmp_path)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert password not in run.stdout + run.stderr
    first, report = runs
    assert f"study pw ({masked}): 1 complete" in first.stdout
    assert f"created study 'pw' in postgresql+psycopg://{masked.split('://')[1]}" in first.stderr
    assert f"--storage {masked} --out" in first.stderr and "is visible to every user" in first.stderr
    assert (tmp_path / "study" / "trial-0" / "config.yaml").is_file()
    assert masked in (tmp_path / "report" / "best_trials.json").read_text()
    assert not _files_holding(tmp_path, password)


def test_a_wrong_password_is_a_one_line_error_without_it(tmp_path, postgres_password_url, capsys):
    password = postgres_password_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    wrong = postgres_password_url.replace(password, "not-" + password)
    url_file = tmp_path / "db.url"
    url_file.write_text("\n" + wrong + "\n")
    code = main(["hpo", "report", "--study", "pw", "--out", str(tmp_path / "r"), "--storage-file", str(url_file)])
    err = capsys.readouterr().err
    if code != 2 and "password authentication failed" not in err:
        pytest.skip("the test server does not check passwords (pg_hba.conf trusts this role; see .ci/run)")
    assert code == 2 and err.startswith("jetlab: error: --storage postgresql://") and len(err.splitlines()) == 1
    assert "password authentication failed" in err and password not in err


def test_a_server_that_is_down_is_a_one_line_error_without_the_password(tmp_path, capsys):
    pytest.importorskip("psycopg", reason="pip install 'jetlab[hpo]' (psycopg)")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://jetlab:Very%2FSecret@127.0.0.1:{port}/hpo"
    assert main(["hpo", "report", "--study", "s", "--out", str(tmp_path / "r"), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert f"jetlab: error: --storage postgresql://jetlab:***@127.0.0.1:{port}/hpo: " in err
    assert "Connection refused" in err and "Secret" not in err
