"""The ``motivnet-edge`` command root: subcommands, each a module with ``add_arguments`` and
``run``, in whichever layer owns the work.

This is the one module above the layers (targets <- edge <- compress <- benchmarks) allowed to
name all of them; the structure test checks every module string of :data:`COMMANDS`.
Subcommands are imported only when called, so the device install (no torch) runs ``edge``
commands and gets a clear message for commands that need an extra.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from motivnet_edge.targets.engine import ENGINES
from motivnet_edge.targets.errors import MotivnetError

# libraries of the compress extra: a command that imports one of them on a device install
# (no torch) is told to install motivnet-edge[compress]
COMPRESS_MODULES = {"torch", "torchvision", "timm", "nncf", "litert_torch", "onnx",
                    "onnxscript", "safetensors", "torchao", "ai_edge_quantizer"}

# name -> ("module" or "module:OBJECT" under motivnet_edge, holding add_arguments and run;
#          one-line help; the extra that provides its dependencies)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "info": ("compress.info", "describe a MotivNet size or checkpoint", "compress"),
    "compress": ("compress.commands:COMPRESS",
                 "distil, export, quantise and validate in one run", "compress"),
    "distil": ("compress.commands:DISTIL", "distil the teacher into a student", "compress"),
    "export": ("compress.commands:EXPORT", "export the student as FP32 ONNX, IR, TFLite",
               "compress"),
    "quantize": ("compress.commands:QUANTIZE", "INT8 artifacts, gated on agreement",
                 "compress"),
    "validate": ("compress.commands:VALIDATE", "report.json and manifest.json", "compress"),
    "detector": ("compress.commands:DETECTOR", "the face detector (YuNet) as files for every "
                 "engine, each gated against OpenCV's", "compress"),
    "targets": ("edge.target_list", "list target profiles and whether each runs here", "onnx"),
    "run": ("edge.daemon", "run the headless daemon: cameras in, emotions out over MQTT",
            "onnx"),
    "cameras": ("edge.cameras", "the cameras this box can open, each as a config line; "
                "--snapshot grabs one frame", "onnx"),
    "service": ("edge.packaging.service", "print or write the systemd unit for this install",
                "onnx"),
    "classify": ("edge.classify", "what emotion each face in photos, a folder, a video or a "
                 "camera shows (the shipped model by default)", "onnx"),
    "bundle": ("edge.packaging.bundle", "one .tar.gz that installs a device of a target "
               "offline", "onnx"),
    "image": ("edge.packaging.image", "a container image of a bundle, written as an archive "
              "docker load and podman load take", "onnx"),
    "verify": ("edge.packaging.verify", "check a bundle's files and model before installing it",
               "onnx"),
    "bench": ("benchmarks.bench", "every target against the full model: accuracy, latency, "
              "size, memory in one table (bench collect: every device's)", "onnx"),
}


def load(target: str):
    """The module (or ``module:OBJECT``) a :data:`COMMANDS` entry names."""
    module, _, obj = target.partition(":")
    mod = importlib.import_module(f"motivnet_edge.{module}")
    return getattr(mod, obj) if obj else mod


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Only the invoked subcommand's module is imported (the daemon never loads torch)."""
    parser = argparse.ArgumentParser(
        prog="motivnet-edge", allow_abbrev=False,
        description="Facial-emotion recognition (MotivNet) compressed for edge devices.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    invoked = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text, extra) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        p.set_defaults(_module=module, _extra=extra)
        if name != invoked:
            continue
        try:
            load(module).add_arguments(p)
        except ImportError as exc:  # the extra that holds this command is not installed:
            # take any arguments, so the message below is what the user sees
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(_missing=exc.name or str(exc))
    return parser


def extra_for(module: str | None, default: str) -> str:
    """The extra that installs ``module``: an engine's runtime, or torch and the converters."""
    top = (module or "").split(".")[0]
    for entry in ENGINES.values():
        if top in entry.runtimes:
            return entry.extra
    return "compress" if top in COMPRESS_MODULES else default


def _missing(command: str, module: str, default: str) -> int:
    print(f"error: '{command}' needs {module}: pip install "
          f"'motivnet-edge[{extra_for(module, default)}]'", file=sys.stderr)
    return 3


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; its exit status (2: a MotivnetError, printed as one line; 3: an
    extra to install)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    # our own INFO; other libraries' warnings and errors only
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("motivnet_edge").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if getattr(args, "_missing", None):
        return _missing(args.command, args._missing, args._extra)
    try:
        return int(load(args._module).run(args) or 0)
    except ImportError as exc:  # an optional library the command needs is not installed
        if exc.name is None:
            raise
        return _missing(args.command, exc.name, args._extra)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
