"""The console scripts work from any directory, in the editable install and from the wheel."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the wheel is built of
SOURCES = ["pyproject.toml", "README.md", "riskq", "envs", "configs", "hydra_plugins"]
GAME = """# @package _global_
env:
  name: matrix
  label: coin
  args:
    n_agents: 1
    action_names: [safe, gamble]
    event_probs: [0.5, 0.5]
    joint_payoffs: [[1.0, 1.0], [-4.0, 8.0]]
"""


def run(args: list[str], *, cwd: Path, pythonpath: Path | None = None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def user_games(folder: Path) -> Path:
    """A user's own config folder with one matrix game, as the docs describe."""
    (folder / "env").mkdir(parents=True)
    (folder / "env" / "coin.yaml").write_text(GAME)
    return folder


def test_installed_riskq_train_composes_from_another_directory(tmp_path):
    script = Path(sys.executable).parent / "riskq-train"
    if not script.is_file():
        pytest.skip(f"{script} not installed (make install)")
    result = run([str(script), "--cfg", "job", "env=macn", "risk=cvar"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "label: macn" in result.stdout and "name: cvar" in result.stdout
    rigm = run([str(script.with_name("riskq-rigm")), "--cfg", "job", "trials=7"], cwd=tmp_path)
    assert rigm.returncode == 0, rigm.stderr
    assert "trials: 7" in rigm.stdout
    games = user_games(tmp_path / "games")
    result = run(
        [str(script), "--config-dir", str(games), "env=coin", "--cfg", "job"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "label: coin" in result.stdout


@pytest.mark.slow
def test_wheel_ships_every_config_and_its_riskq_train_composes(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the repository
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = ["--no-deps", "--no-index"]  # the venv's own setuptools builds it
    built = run(
        [*pip, "wheel", *offline, "--no-build-isolation", "-w", "dist", "./source"], cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("riskq-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
    assert len(configs) > 20
    missing = [str(p) for p in configs if f"riskq/configs/{p.as_posix()}" not in shipped]
    assert not missing, f"configs missing from the wheel: {missing}"
    assert "riskq/CONVENTIONS.md" in shipped

    site = tmp_path / "site"
    installed = run([*pip, "install", *offline, "--target", str(site), str(wheel)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    where = run(
        [sys.executable, "-c", "import riskq.configs as c; print(c.__file__)"],
        cwd=tmp_path,
        pythonpath=site,
    )
    assert where.stdout.strip() == str(site / "riskq" / "configs" / "__init__.py"), where.stderr

    work = tmp_path / "work"  # no configs/ anywhere near it
    work.mkdir()
    script = str(site / "bin" / "riskq-train")
    result = run([script, "--cfg", "job", "env=macn", "risk=cvar"], cwd=work, pythonpath=site)
    assert result.returncode == 0, result.stderr
    assert "label: macn" in result.stdout and "name: cvar" in result.stdout
    games = user_games(work / "games")
    result = run(
        [script, "--config-dir", str(games), "env=coin", "--cfg", "job"], cwd=work, pythonpath=site
    )
    assert result.returncode == 0, result.stderr
    assert "label: coin" in result.stdout
