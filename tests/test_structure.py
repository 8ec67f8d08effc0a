"""The package's shape: one import name when installed, and dependencies in one direction."""

import ast
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lower layers never import higher ones: targets <- edge <- compress <- benchmarks <- experiments
LAYERS = {"targets": 0, "edge": 1, "compress": 2, "benchmarks": 3, "experiments": 4}
OLD_NAMES = set(LAYERS)
MODULE_STRING = re.compile(r"motivnet_edge(\.\w+)+(:\w+)?")


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    package = ["motivnet_edge", *path.relative_to(root).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and MODULE_STRING.fullmatch(node.value):
            # a module named as a string (python -m ..., importlib) is a dependency too
            found.append((node.lineno, node.value.partition(":")[0]))
    return found


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for layer, rank in LAYERS.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, name in imports_of(path, root):
                parts = name.split(".")
                where = f"{path.relative_to(root)}:{line} imports {name}"
                if parts[0] in OLD_NAMES:
                    bad.append(f"{where} (not under motivnet_edge)")
                elif parts[0] == "motivnet_edge" and len(parts) > 1 and parts[1] in LAYERS \
                        and LAYERS[parts[1]] > rank:
                    bad.append(f"{where} (upward: {layer} may not use {parts[1]})")
    return bad


# inside compress/: the run folder, settings and helpers; the model zoo and shared inference;
# then each stage above the one whose output it takes; the commands on top
COMPRESS_LAYERS = {"registry": 0, "progress": 0, "quiet": 0, "runfolder": 0, "settings": 0,
                   "options": 0, "detector_files": 1,
                   "artifacts": 0, "models": 1, "inference": 1, "fidelity": 1, "distil": 2,
                   "int8": 3, "gate": 4, "detector_stage": 4, "checks": 5, "info": 5, "commands": 5}


def compress_back_edges(root: Path = ROOT) -> list[str]:
    """Every import inside compress/ from a lower stage to a higher one (or to a module the
    table does not rank, so a new one must be placed)."""
    bad = []
    for path in sorted((root / "compress").rglob("*.py")):
        rel = path.relative_to(root / "compress")
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        own = rel.parts[0].removesuffix(".py")
        if own not in COMPRESS_LAYERS:
            bad.append(f"compress/{rel}: not placed in COMPRESS_LAYERS")
            continue
        for line, name in imports_of(path, root):
            parts = name.split(".")
            if parts[:2] != ["motivnet_edge", "compress"] or len(parts) < 3:
                continue
            other = parts[2]
            if COMPRESS_LAYERS.get(other, 99) > COMPRESS_LAYERS[own]:
                bad.append(f"compress/{rel}:{line} imports {name} ({own} is below {other})")
    return bad


def test_no_package_imports_a_higher_layer():
    assert upward_imports() == []


def test_the_command_table_names_real_commands_and_only_it_names_every_layer():
    """cli.py is the command root: each of its module strings is a module with add_arguments
    and run, and only it (beside __main__.py) may name a command in any layer."""
    from motivnet_edge import cli

    for name, (target, _, extra) in cli.COMMANDS.items():
        module, _, obj = target.partition(":")
        assert module.split(".")[0] in LAYERS, f"{name}: {module} is not in a layer"
        folder = ROOT.joinpath(*module.split("."))
        assert folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file(), name
        command = cli.load(target)
        assert callable(command.add_arguments) and callable(command.run), name
        assert extra in ("onnx", "compress"), name
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            assert "COMMANDS" not in path.read_text() or "cli.COMMANDS" in path.read_text() \
                or path.name.startswith("test"), f"{path}: a command table outside cli.py"


def prints_in(folder: Path) -> list[str]:
    """Every call of print() under ``folder``: the contract layer says nothing itself."""
    return [f"{path.relative_to(folder.parent)}:{node.lineno}"
            for path in sorted(folder.rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]


def test_nothing_in_targets_prints(tmp_path):
    assert prints_in(ROOT / "targets") == []
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "talks.py").write_text("def f():\n    print('hi')\n")
    assert prints_in(tmp_path / "targets") == ["targets/talks.py:2"]


def test_compress_stages_are_layers():
    assert compress_back_edges() == []


def test_the_stage_check_catches_a_back_edge(tmp_path):
    for folder in ("compress/int8", "compress/gate", "compress/models"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "compress" / "int8" / "stage.py").write_text(
        "from motivnet_edge.compress.gate.stage import x\n")
    (tmp_path / "compress" / "models" / "zoo.py").write_text(
        "def f():\n    from ..distil import train\n")
    (tmp_path / "compress" / "gate" / "fine.py").write_text(
        "from motivnet_edge.compress.int8 import stage\n")
    (tmp_path / "compress" / "newthing.py").write_text("")
    bad = compress_back_edges(tmp_path)
    assert len(bad) == 3, bad
    assert "int8 is below gate" in bad[0] and "models is below distil" in bad[1] \
        and "not placed" in bad[2]


def test_the_graph_check_catches_an_upward_import(tmp_path):
    """The check above could not pass by reading nothing: a planted upward import is found."""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "targets" / "bad.py").write_text("from motivnet_edge.edge import daemon\n")
    (tmp_path / "edge" / "old.py").write_text("def f():\n    from targets import engine\n")
    (tmp_path / "edge" / "fine.py").write_text("from motivnet_edge.targets import engine\n")
    (tmp_path / "edge" / "runs.py").write_text("CMD = 'motivnet_edge.compress.commands:X'\n")
    bad = upward_imports(tmp_path)
    assert len(bad) == 3 and "upward" in bad[0] and "not under motivnet_edge" in bad[1], bad
    assert "runs.py:1 imports motivnet_edge.compress.commands (upward" in bad[2]


@pytest.mark.slow
def test_wheel_installs_under_one_name_beside_a_package_that_owns_edge(tmp_path):
    """PyPI has packages called ``edge`` and ``compress``: installed beside one, ours must
    neither overwrite nor shadow it."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, capture_output=True,
                   timeout=600)
    other = tmp_path / "other"
    (other / "edge").mkdir(parents=True)
    (other / "edge" / "__init__.py").write_text("WHO = 'another project'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "edge-clash"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["edge"]\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(other)], check=True, capture_output=True,
                   timeout=300)
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True
                          ).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site,
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True,
                   timeout=300)
    top = sorted(p.name for p in Path(site).iterdir()
                 if not p.name.endswith(".dist-info") and p.name != "bin")  # bin: the command
    assert top == ["edge", "motivnet_edge"], top
    res = subprocess.run([str(python), "-c",
                          "import edge; from motivnet_edge.targets import labels, errors\n"
                          "print(edge.WHO, labels.AFFECTNET7[1])"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["another", "project", "Happiness"]
    for sub in ("edge", "edge/packaging", "edge/data", "targets", "targets/engines",
                "targets/formats", "compress",
                "benchmarks"):
        assert (Path(site) / "motivnet_edge" / sub / "__init__.py").is_file(), sub
    assert (Path(site) / "motivnet_edge" / "edge" / "packaging" / "motivnet-edge.service").is_file()
