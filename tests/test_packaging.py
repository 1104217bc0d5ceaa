"""The install and image files agree with the code: what they copy, install and run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["wsd_engine", "server", "benchmarks", "evaluation", "wsd_cli.py"]


def dockerfile_targets() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^FROM .* AS (\w+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_images_copy_every_source_the_wsd_command_needs(target):
    copied = " ".join(
        line for line in dockerfile_targets()[target].splitlines() if line.startswith("COPY ")
    )
    for source in SOURCES:
        assert re.search(rf"\b{re.escape(source)}\b", copied), (target, source)


def test_cpu_image_installs_torch_from_pytorchs_cpu_index():
    cpu = dockerfile_targets()["cpu"]
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in cpu
    assert '--extra-index-url "$TORCH_INDEX"' in cpu


def test_the_console_script_and_packages_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["wsd"] == "wsd_cli:main"
    assert project["tool"]["setuptools"]["py-modules"] == ["wsd_cli"]
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {"wsd_engine*", "server*", "benchmarks*", "evaluation*"} <= set(packages)


def test_server_does_not_import_the_benchmarks_or_the_cli():
    for path in (ROOT / "server").rglob("*.py"):
        text = path.read_text()
        assert "benchmarks" not in text and "wsd_cli" not in text, path
    for path in (ROOT / "wsd_engine").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (fastapi|server|benchmarks)\b", text, re.M), path


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test    # install (first time)" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_no_two_modules_share_a_name():
    """One name, one module: `protocol.py` in two packages had two meanings."""
    names: dict[str, Path] = {}
    for package in ("wsd_engine", "server", "benchmarks", "evaluation"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__init__.py":
                continue
            assert path.name not in names, (path, names.get(path.name))
            names[path.name] = path


def test_vllm_is_imported_by_the_in_process_adapter_alone():
    """What the project knows about vLLM lives in engines/vllm_common.py, which imports no
    vLLM (the remote adapter runs without it); the in-process adapter imports it, and the
    plugin vLLM loads into its own processes."""
    importers = {
        path.relative_to(ROOT).as_posix()
        for package in ("wsd_engine", "server")
        for path in (ROOT / package).rglob("*.py")
        if re.search(r"^\s*(from|import) vllm\b", path.read_text(), re.M)
    }
    assert importers == {
        "wsd_engine/engines/vllm_local.py",
        "wsd_engine/engines/vllm_session.py",
        "wsd_engine/engines/vllm_session_plugin.py",
    }


def test_the_session_plugin_is_registered_with_vllm():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    plugins = project["project"]["entry-points"]["vllm.general_plugins"]
    assert plugins == {"wsd_scoring_sessions": "wsd_engine.engines.vllm_session_plugin:register"}


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_configs_and_the_page(tmp_path):
    """A non-editable install (the images use one) has the shipped configs by name."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "wsd_cli.py"):
        shutil.copy(ROOT / name, source / name)
    for name in ("wsd_engine", "server", "benchmarks", "evaluation", "configs"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
    built = subprocess.run(
        # with build isolation, as a user's build (pip brings setuptools and wheel)
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w",
         str(tmp_path)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("wsd_server-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (ROOT / "configs").glob("*.yaml"):
        assert f"server/configs/{config.name}" in names
    assert "server/playground/index.html" in names and "wsd_cli.py" in names
    assert "evaluation/builtin_prompts.jsonl" in names
