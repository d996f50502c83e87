"""The repository's own promises: pins agree everywhere, the Snakemake layer is formatted and lint-free."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = Path(sys.executable).parent


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_every_requirement_is_pinned_exactly():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.+]+", line), f"{name}: {line!r} is not an exact pin"


def test_conda_env_matches_the_pins():
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs" / "wavefold.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pins(pip_section) == requirements


def test_lock_agrees_with_the_pins_and_the_environment():
    lock = pins((REPO / "requirements.lock").read_text().splitlines())
    for name, version in pins((REPO / "requirements-dev.txt").read_text().splitlines()).items():
        assert lock.get(name) == version, name
    for name, version in pins((REPO / "requirements.txt").read_text().splitlines()).items():
        assert lock.get(name) == version, name
    from importlib.metadata import version as installed

    for name in ("torch", "torchaudio", "snakemake", "kaggle", "py7zr"):
        assert installed(name).split("+")[0] == lock[name], f"{name}: installed {installed(name)}, locked {lock[name]}"


def test_snakemake_layer_is_formatted():
    result = subprocess.run([str(BIN / "snakefmt"), "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.dag
def test_snakemake_lint_is_clean(tmp_path):
    result = subprocess.run(
        [str(BIN / "snakemake"), "--lint", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(REPO / "config" / "config.yaml")],
        capture_output=True, text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr, result.stdout


@pytest.mark.dag
def test_config_schema_fills_defaults_and_rejects_typos(tmp_path):
    base = ["-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--dry-run"]
    (tmp_path / "c.yaml").write_text("folds: {n_fold: 3}\n")
    result = subprocess.run([str(BIN / "snakemake"), *base, "--configfile", str(tmp_path / "c.yaml")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "n_fold" in result.stdout + result.stderr
    (tmp_path / "c.yaml").write_text("demo: {size: tiny}\n")
    result = subprocess.run([str(BIN / "snakemake"), *base, "--configfile", str(tmp_path / "c.yaml")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.dag
def test_a_model_named_like_an_earlier_rounds_member_is_refused(tmp_path):
    """blend.across_rounds names round 1's lenet 'lenet_round1' in round 2's blend: a model of that
    name would be confused with it, and the dry run refuses it, naming the setting."""
    (tmp_path / "c.yaml").write_text("demo: {size: tiny}\ntraining: {run: [lenet_round1], models: {lenet_round1: "
                                     "{architecture: lenet}}}\ntune: {model: lenet_round1}\n")  # fmt: skip
    base = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--dry-run"]
    result = subprocess.run([*base, "--configfile", str(tmp_path / "c.yaml")], capture_output=True, text=True)
    assert result.returncode != 0 and "training.run / blend.external: ['lenet_round1']" in result.stdout + result.stderr
    (tmp_path / "c.yaml").write_text((tmp_path / "c.yaml").read_text() + "blend: {across_rounds: false}\n")
    result = subprocess.run([*base, "--configfile", str(tmp_path / "c.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


#: Where the repository's own files live: a path that starts here names a file of the repository.
TOP_LEVEL = ("docs", "scripts", "config", "bench", "tests", "rules", "profiles", "report", "envs", ".ci")
REFERENCE = re.compile(r"(?<![\w./-])((?:\.\./)*(?:%s)/[\w./-]*\w|[\w-]+\.md)\b" % "|".join(re.escape(t) for t in TOP_LEVEL))


def named_paths(text: str) -> set[str]:
    """The repository paths a text names: ``docs/figures.md``, ``scripts/wavefold/blend.py``, ``README.md``."""
    names = set()
    for match in REFERENCE.finditer(text):
        name = match[1].rstrip(".")
        if "<" in name or "*" in name or name.startswith(("tests/data/hard_shift_run/", "results/")):
            continue
        names.add(name)
    return names


def test_the_sources_name_only_files_the_repository_has():
    """Every path a docstring, comment, error message or document names exists in the repository, and
    nothing points outside it: the repository stands alone, no folder beside it is named."""
    files = [p for p in REPO.rglob("*") if p.is_file() and p.suffix in (".py", ".smk", ".md", ".yaml", ".rst", "")
             and not {".git", ".venv", ".snakemake", "__pycache__", "results", "resources", "logs"} & set(p.parts)]
    files = [p for p in files if (p.suffix or p.name in ("Snakefile", "wavefold", "run")) and p != Path(__file__)]
    missing = []
    for path in files:
        text = path.read_text(errors="replace")
        outside = ".." + "/shared"  # spelled so, so that this file does not name it
        assert outside not in text, f"{path.relative_to(REPO)} points outside the repository ({outside})"
        for name in named_paths(text):
            candidates = [REPO / name, path.parent / name]
            if not any(c.exists() for c in candidates):
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert not missing, "names of files the repository lacks:\n" + "\n".join(sorted(missing))


def test_the_reference_check_finds_what_it_looks_for():
    text = "see DESIGN.md, Contracts; docs/tuning.md says so; scripts/wavefold/blend.py and results/x.csv"
    assert named_paths(text) == {"DESIGN.md", "docs/tuning.md", "scripts/wavefold/blend.py"}
