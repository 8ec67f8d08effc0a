"""The device runs without torch: edge and targets import, and the command line answers."""

import subprocess
import sys

from motivnet_edge.benchmarks.no_torch import BLOCK_TORCH
from motivnet_edge.targets.formats import artifact_name


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True,
                          text=True, timeout=120)


def test_edge_and_targets_import_without_torch():
    code = ("import pkgutil, importlib\nfrom motivnet_edge import edge, targets\n"
            "mods = [m.name for p in (edge, targets) for m in pkgutil.walk_packages("
            "p.__path__, p.__name__ + '.')]\n"
            "[importlib.import_module(m) for m in mods]\n"
            "assert 'torch' not in sys.modules\n"
            "print(len(mods))")
    res = run_blocked(code)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) >= 5


def test_block_really_blocks_torch():
    res = run_blocked("import torch")
    assert res.returncode != 0 and "blocked" in res.stderr


def test_cli_help_and_missing_extra_message_without_torch():
    res = run_blocked("from motivnet_edge.cli import main; sys.exit(main(['--help']))")
    assert res.returncode == 0 and "info" in res.stdout
    res = run_blocked("from motivnet_edge.cli import main; sys.exit(main(['info']))")
    assert res.returncode != 0
    assert "motivnet-edge[compress]" in res.stderr


def test_an_explicit_target_loads_only_the_runtime_it_uses(tmp_path):
    """Probing is lazy: the cpu profile's first choice (ONNX Runtime) never imports OpenVINO,
    which would add about 30 MB to the daemon."""
    (tmp_path / artifact_name("student", "int8", "onnx")).touch()  # resolve picks what is there
    code = ("from motivnet_edge.targets.profiles import resolve\n"
            f"path, engine, options, name = resolve('cpu', {str(tmp_path)!r})\n"
            "assert engine == 'onnxruntime' and 'onnxruntime' in sys.modules\n"
            "assert 'openvino' not in sys.modules, 'OpenVINO was imported'\n"
            "print(path.name)")
    res = run_blocked(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == artifact_name("student", "int8", "onnx")


TORCH_COMMANDS = {
    "info": ["--model", "motivnet-tiny"],
    "compress": ["--data", "x", "--out", "y"],
    "distil": ["--out", "y", "--teacher", "t.onnx", "--teacher-spec", "fer-mobilefacenet"],
    "export": ["--out", "y"],
    "quantize": ["--out", "y", "--formats", "onnx"],
    "validate": ["--out", "y", "--labelled-eval", "faces.csv"],
    "detector": ["--out", "y", "--photos", "faces"],
}


def test_every_torch_command_names_its_extra_whatever_its_arguments():
    from motivnet_edge.cli import COMMANDS

    assert {n for n, (_, _, extra) in COMMANDS.items() if extra == "compress"} == \
        set(TORCH_COMMANDS)
    for name, args in TORCH_COMMANDS.items():
        res = run_blocked(f"from motivnet_edge.cli import main; "
                          f"sys.exit(main({[name, *args]!r}))")
        assert res.returncode == 3, (name, res.stderr)
        assert f"'{name}' needs torch: pip install 'motivnet-edge[compress]'" in res.stderr
        assert "unrecognized arguments" not in res.stderr
        helped = run_blocked(f"from motivnet_edge.cli import main; "
                             f"sys.exit(main([{name!r}, '--help']))")
        assert helped.returncode == 0 and "--out" in helped.stdout or name == "info", name


def test_a_missing_engine_names_the_extra_of_that_engine():
    from motivnet_edge.cli import extra_for

    assert extra_for("ai_edge_litert", "onnx") == "tflite"
    assert extra_for("openvino.runtime", "onnx") == "openvino"
    assert extra_for("onnxruntime", "tflite") == "onnx"
    assert extra_for("torch", "onnx") == "compress"


def test_python_dash_m_runs_the_command_line():
    res = subprocess.run([sys.executable, "-m", "motivnet_edge", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "classify" in res.stdout and "bundle" in res.stdout
