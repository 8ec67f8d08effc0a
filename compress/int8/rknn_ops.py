"""RKNN (Rockchip NPU) in the compress chain, through rknn-toolkit2 in an environment of its own.

rknn-toolkit2 2.5.0 pins numpy<=1.26.4, onnx<=1.18 and protobuf<=4.25.4, which the compress
environment cannot share; it is installed into its own venv (:func:`install`, ``make
rknn-toolkit``) and driven as a subprocess (``rknn_worker.py``). It imports torch when it loads,
though converting ONNX never calls it, and its pin (torch<=2.4.0) has no CPU build on PyPI for
this Python: each request names the folder holding the compress environment's torch, which the
worker appends after the venv's own packages, so its own numpy and onnx come first. (Named per
call, not written into the venv: a cached venv outlives the checkout that installed it.)

The toolkit's simulator runs only a model built in the same session, so every RKNN file is
built and simulated on the held-out crops in one call; the rows are kept under
``work/simulated/`` by the file's content digest with what built it (its ONNX source, its
calibration inputs and settings), and the gate reads them there. Other faces (the labelled
evaluation, the bench's SIMULATED row) are run by building the file again from that record
(:func:`rebuild`): the toolkit does not write the same bytes twice (it stores stray memory in
the file), so the rebuilt model is checked by its outputs instead: it must give exactly the
rows kept for the first held-out crops. Two ways in, tried in order: the quantization-aware
fine-tuned QDQ graph with ``do_quantization=False`` (the toolkit takes its scales; its int32
biases stored as float first, which the toolkit quantises again at the same scale), then the
FP32 ONNX calibrated by the toolkit on the same calibration crops as every format.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from motivnet_edge.compress.int8.recipes import Calibration, Recipe
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import cache_dir

log = logging.getLogger(__name__)

TOOLKIT = "rknn-toolkit2==2.5.0"
# the toolkit's own requirements but torch (the compress environment's: torch_site)
TOOLKIT_DEPS = ("numpy<=1.26.4", "onnx>=1.16.1,<=1.18.0", "protobuf>=4.21.6,<=4.25.4",
                "onnxruntime>=1.17.0", "opencv-python-headless>=4.5.5.64", "psutil>=5.9.0",
                "ruamel.yaml>=0.17.21", "scipy>=1.9.3", "tqdm>=4.64.1", "fast-histogram>=0.11")
PLATFORMS = ("rk3588", "rk3566", "rk3568", "rk3576", "rk3562")
WORKER = Path(__file__).with_name("rknn_worker.py")
TIMEOUT_S = 1800


def toolkit_venv() -> Path:
    """Where the toolkit's venv lives: $MOTIVNET_RKNN_VENV, else under the project cache."""
    return Path(os.environ.get("MOTIVNET_RKNN_VENV") or cache_dir() / "rknn-toolkit2-2.5.0")


def toolkit_python() -> Path | None:
    """The toolkit venv's python, None when it is not installed."""
    python = toolkit_venv() / "bin" / "python"
    return python if python.is_file() else None


def missing_reason() -> str | None:
    """Why RKNN files cannot be made here, or None."""
    if toolkit_python() is None:
        return (f"rknn-toolkit2 is not installed in {toolkit_venv()}: run 'make rknn-toolkit' "
                f"(or python -m motivnet_edge.compress.int8.rknn_ops --install)")
    return None


def torch_site() -> str:
    """The folder that holds this environment's torch: the toolkit imports torch when it loads,
    and its venv reaches it there (appended after its own packages, so its pins win). Found on
    every call, not written into the venv, which outlives the environment that installed it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise MotivnetError("rknn-toolkit2 imports torch, which this environment lacks: "
                            "install the package's compress extras (make install)")
    return str(Path(spec.origin).parents[1])


def install(venv: Path | None = None) -> Path:
    """Create the toolkit's venv (its requirements but torch, then the toolkit without its
    dependencies) and check that it imports with this environment's torch. Returns its
    python."""
    venv = Path(venv or toolkit_venv())
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    subprocess.run([*pip, *TOOLKIT_DEPS], check=True)
    subprocess.run([*pip, "--no-deps", TOOLKIT], check=True)
    python = venv / "bin" / "python"
    problem = broken_reason(python)
    if problem is not None:
        raise MotivnetError(problem)
    return python


def build(source: Path, out: Path, platform: str, held_out: np.ndarray,
          calibration: np.ndarray | None = None, algorithm: str = "normal",
          optimization_level: int = 3, keep: Path | None = None) -> np.ndarray:
    """Build ``out`` from the ONNX ``source`` (quantised by the toolkit on ``calibration``
    when given, else with the graph's own Q/DQ scales) and return the simulator's output
    rows for ``held_out``. With ``keep``, what built it is copied into that folder
    (:func:`rebuild` reads it)."""
    python = toolkit_python()
    if python is None:
        raise MotivnetError(missing_reason())
    if platform not in PLATFORMS:
        raise MotivnetError(f"RKNN platform {platform!r} is not one of {', '.join(PLATFORMS)}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        req = {"source": str(source), "out": str(out), "platform": platform,
               "quantize": calibration is not None, "algorithm": algorithm,
               "optimization_level": optimization_level,
               "inputs": str(d / "held_out.npy"), "rows": str(d / "rows.npy"),
               "torch_site": torch_site()}
        np.save(req["inputs"], held_out.astype(np.float32))
        if calibration is not None:
            req["calibration"] = str(d / "calibration.npy")
            np.save(req["calibration"], calibration.astype(np.float32))
        (d / "request.json").write_text(json.dumps(req))
        res = subprocess.run([str(python), str(WORKER), str(d / "request.json")],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        result = _result(res)
        if not result.get("ok"):
            raise MotivnetError(f"RKNN build of {source.name} for {platform} failed: "
                                f"{result.get('error', res.stderr[-500:])}")
        log.info("rknn %s: built for %s, %d crops simulated in %.1f s (toolkit %s)",
                 out.name, platform, result["inputs"], result["simulate_s"],
                 result.get("toolkit", "?"))
        if keep is not None:
            _keep(keep, source, calibration, {k: req[k] for k in BUILD_KEYS})
        return np.load(req["rows"])


BUILD_KEYS = ("platform", "quantize", "algorithm", "optimization_level")


def _keep(folder: Path, source: Path, calibration: np.ndarray | None, settings: dict) -> None:
    """The build's record: its ONNX source, calibration inputs and settings."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / "source.onnx")
    if calibration is not None:
        np.savez_compressed(folder / "calibration.npz", inputs=calibration.astype(np.float32))
    (folder / "build.json").write_text(json.dumps({**settings, "toolkit": TOOLKIT}))


def rebuild(record: Path, inputs: np.ndarray) -> np.ndarray:
    """The simulator's rows for ``inputs`` from a model built again as the record in
    ``record`` (:func:`build`'s ``keep``) says."""
    settings = json.loads((record / "build.json").read_text())
    if settings.get("toolkit") != TOOLKIT:
        raise MotivnetError(f"{record} was built with {settings.get('toolkit')}, this is "
                            f"{TOOLKIT}: run quantize again")
    calibration = None
    if settings["quantize"]:
        with np.load(record / "calibration.npz") as data:
            calibration = data["inputs"]
    with tempfile.TemporaryDirectory() as d:
        return build(record / "source.onnx", Path(d) / "rebuilt.rknn", settings["platform"],
                     inputs, calibration, settings["algorithm"],
                     settings["optimization_level"])


def _result(res: subprocess.CompletedProcess) -> dict:
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}


def quantize(cal: Calibration, recipe: Recipe, tmp: Path) -> np.ndarray:
    """The FP32 ONNX file (``cal.fp32``: the format has no FP32 file of its own) calibrated by
    the toolkit (``recipe.calibrate``: its algorithm)."""
    return build(Path(cal.fp32), tmp, cal.platform, cal.held_out, cal.inputs, recipe.calibrate,
                 keep=cal.keep)


def from_qat(folder: Path, tmp: Path, cal: Calibration | None = None) -> np.ndarray:
    """The quantization-aware fine-tuned QDQ graph, its biases stored as float first."""
    import onnx

    from motivnet_edge.compress.inference import QAT_GRAPH
    from motivnet_edge.compress.int8.graph import float_biases

    model = onnx.load(str(folder / QAT_GRAPH))
    float_biases(model)
    graph = folder / "student-int8-rknn-source.onnx"
    onnx.save(model, str(graph))
    return build(graph, tmp, cal.platform, cal.held_out, keep=cal.keep)


def weights_only(fp32: Path, tmp: Path) -> None:
    raise MotivnetError("RKNN has no weights-only INT8: the NPU runs w8a8 or float16")


def broken_reason(python: Path) -> str | None:
    """Why the toolkit venv at ``python`` cannot import the toolkit (with this environment's
    torch), or None: a venv left by another checkout or Python can be there and not work."""
    check = f"import sys; sys.path.append({torch_site()!r}); from rknn.api import RKNN"
    res = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if res.returncode == 0:
        return None
    last = [line for line in res.stderr.splitlines() if line.strip()][-1:] or [""]
    return f"rknn-toolkit2 in {python.parents[1]} does not import: {last[0].strip()}"


def main(argv: list[str] | None = None) -> int:
    """Install rknn-toolkit2 into its own venv (``--install``: again when the one there does
    not import) or say where it is."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args(argv)
    python = toolkit_python()
    problem = missing_reason() if python is None else broken_reason(python)
    if args.install and problem is not None:
        if python is not None:
            print(f"{problem}: installing it again", flush=True)
            shutil.rmtree(toolkit_venv())
        print(f"installing {TOOLKIT} into {toolkit_venv()}", flush=True)
        try:
            python, problem = install(), None
        except subprocess.CalledProcessError as exc:
            problem = f"installing {TOOLKIT} into {toolkit_venv()} failed: {exc}"
        except MotivnetError as exc:
            problem = str(exc)
    print(problem or f"rknn-toolkit2: {python}")
    return 0 if problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
