"""The ``motivnet-edge`` command: subcommands, each a module with ``add_arguments`` and ``run``.

Subcommands are listed by module name and imported only when called, so the device install
(no torch) runs ``edge`` commands and gets a clear message for commands that need an extra.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from motivnet_edge.targets.errors import MotivnetError

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
    "targets": ("targets.profiles", "list target profiles and whether each runs here", "onnx"),
    "run": ("edge.daemon", "run the headless daemon: cameras in, emotions out over MQTT",
            "onnx"),
}


def _load(target: str):
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
            _load(module).add_arguments(p)
        except ImportError as exc:  # the extra that holds this command is not installed
            p.set_defaults(_missing=exc.name or str(exc))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if getattr(args, "_missing", None):
        print(f"error: '{args.command}' needs {args._missing}: "
              f"pip install 'motivnet-edge[{args._extra}]'", file=sys.stderr)
        return 3
    try:
        return int(_load(args._module).run(args) or 0)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
