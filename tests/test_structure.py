"""The package's shape: one import name when installed, and dependencies in one direction."""

import ast
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lower layers never import higher ones: targets <- edge <- compress <- benchmarks <- experiments
LAYERS = {"targets": 0, "edge": 1, "compress": 2, "benchmarks": 3, "experiments": 4}
OLD_NAMES = set(LAYERS)


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


def test_no_package_imports_a_higher_layer():
    assert upward_imports() == []


def test_the_graph_check_catches_an_upward_import(tmp_path):
    """The check above could not pass by reading nothing: a planted upward import is found."""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "targets" / "bad.py").write_text("from motivnet_edge.edge import daemon\n")
    (tmp_path / "edge" / "old.py").write_text("def f():\n    from targets import engine\n")
    (tmp_path / "edge" / "fine.py").write_text("from motivnet_edge.targets import engine\n")
    bad = upward_imports(tmp_path)
    assert len(bad) == 2 and "upward" in bad[0] and "not under motivnet_edge" in bad[1]


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
    for sub in ("edge", "targets", "targets/engines", "targets/formats", "compress",
                "benchmarks"):
        assert (Path(site) / "motivnet_edge" / sub / "__init__.py").is_file(), sub
    assert (Path(site) / "motivnet_edge" / "edge" / "motivnet-edge.service").is_file()
