"""Every cross-reference in a docstring (``:func:``, ``:mod:``, ``:class:``, ``:data:``,
``:meth:``, ``:attr:``) names something that exists, so moved code cannot leave its readers
pointing at an old path."""

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("targets", "edge", "compress", "benchmarks", "experiments")
ROLE = re.compile(r":(?:func|mod|class|data|meth|attr|exc):`~?([\w.]+)`")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = ["motivnet_edge", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str, module: str, package: str, owner: str = "") -> bool:
    """True when ``name`` (absolute, relative with leading dots, or local to ``module`` or to
    its class ``owner``) is a module or an attribute reachable from one."""
    if name.startswith("."):
        level = len(name) - len(name.lstrip("."))
        base = package.split(".")[:len(package.split(".")) - level + 1]
        name = ".".join([*base, name.lstrip(".")])
    candidates = [name] if "." in name and name.split(".")[0] != name else []
    candidates += [f"{module}.{owner}.{name}"] if owner else []
    candidates += [f"{module}.{name}", f"{package}.{name}", name]
    return any(_lookup(c) for c in candidates)


def _lookup(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def references(path: Path) -> list[tuple[int, str, str]]:
    """(line, name, class) of every reference; class: the class whose docstring or method's
    docstring holds it (a ``:meth:`` there may name a sibling method), else ''."""
    found = []

    def visit(node: ast.AST, owner: str) -> None:
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if isinstance(node, ast.ClassDef):
                owner = f"{owner}.{node.name}".lstrip(".")
            doc = ast.get_docstring(node, clean=False) or ""
            found.extend((getattr(node, "lineno", 1), m, owner) for m in ROLE.findall(doc))
        for child in ast.iter_child_nodes(node):
            visit(child, owner)

    visit(ast.parse(path.read_text()), "")
    return found


def broken_references(root: Path = ROOT) -> list[str]:
    bad = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            module = module_name(path, root)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for line, name, owner in references(path):
                if not resolve(name, module, package, owner):
                    bad.append(f"{path.relative_to(root)}:{line} :`{name}`")
    return bad


def test_every_docstring_reference_resolves():
    assert broken_references() == []


def test_a_reference_to_a_moved_function_is_found(tmp_path):
    """The check reads what it claims to: a planted stale reference is reported, a good one
    is not."""
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "stale.py").write_text(
        '"""Uses :func:`motivnet_edge.targets.preprocess.make_inputs` and\n'
        ':func:`motivnet_edge.edge.preprocess.make_inputs` (moved)."""\n')
    bad = broken_references(tmp_path)
    assert len(bad) == 1 and "motivnet_edge.edge.preprocess.make_inputs" in bad[0], bad


def entry_points_without_docstrings(root: Path = ROOT) -> list[str]:
    """Every command entry point (``add_arguments``, ``run``, ``run_*``, ``main``) and stage
    (``stage_*``) defined at a module's top level that says nothing of what it does."""
    bad = []
    for layer in (*LAYERS, "cli.py"):
        paths = [root / layer] if layer.endswith(".py") else sorted((root / layer).rglob("*.py"))
        for path in paths:
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and (
                        node.name in ("add_arguments", "run", "main")
                        or node.name.startswith(("run_", "stage_"))) \
                        and not ast.get_docstring(node):
                    bad.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return bad


def test_every_command_and_stage_entry_point_says_what_it_does():
    assert entry_points_without_docstrings() == []


def test_the_entry_point_check_finds_a_silent_one(tmp_path):
    (tmp_path / "edge").mkdir()
    (tmp_path / "cli.py").write_text('def main():\n    """Runs."""\n')
    (tmp_path / "edge" / "cmd.py").write_text("def run(args):\n    return 0\n\n"
                                              "def helper():\n    pass\n")
    for layer in LAYERS[2:] + ("targets",):
        (tmp_path / layer).mkdir(exist_ok=True)
    assert entry_points_without_docstrings(tmp_path) == ["edge/cmd.py:1 run"]
