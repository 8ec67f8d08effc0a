"""Each compress setting is declared once (compress/settings.py): its option, its default and
its check come from that declaration. Looping over every declared range, a value outside it is
refused naming the flag, and the defaults reach the stages' configs unchanged."""

import dataclasses

import pytest

from motivnet_edge.cli import build_parser
from motivnet_edge.compress.checks import check_distil_args, check_quant_args
from motivnet_edge.compress.commands import _gate, distil_config, qat_config
from motivnet_edge.compress.options import flag_of, given, options
from motivnet_edge.compress.settings import (
    DataConfig,
    Gate,
    QatConfig,
    QuantizeConfig,
    TrainConfig,
)
from motivnet_edge.targets.errors import MotivnetError

SETTINGS = (DataConfig, TrainConfig, QatConfig, QuantizeConfig, Gate)


def parse(*args: str):
    argv = ["compress", "--out", "/tmp/never-made", *args]
    return build_parser(argv).parse_args(argv)


def out_of_range(opt) -> float | None:
    """A value the declaration refuses (None: it declares no range)."""
    for bound, step in ((opt.low, -1), (opt.above, 0), (opt.below, 0), (opt.high, 1)):
        if bound is not None:
            return bound + step
    return None


CASES = [(cls, f, opt) for cls in SETTINGS for f, opt in options(cls)
         if out_of_range(opt) is not None]


@pytest.mark.parametrize("cls,f,opt", CASES, ids=[f"{c.__name__}.{f.name}" for c, f, _ in CASES])
def test_a_value_outside_a_declared_range_is_refused_by_its_flag(cls, f, opt):
    value = out_of_range(opt)
    text = str(int(value)) if f.type in ("int", int) else str(value)
    args = parse(flag_of(f, opt), text)
    check = check_quant_args if cls in (QatConfig, QuantizeConfig, Gate) else check_distil_args
    with pytest.raises(MotivnetError, match=f"^{flag_of(f, opt)} "):
        check(args)


def test_the_declared_ranges_cover_what_the_stages_need():
    assert len(CASES) >= 14  # every number a stage could be given nonsense for
    check_distil_args(parse())  # the defaults pass their own checks
    check_quant_args(parse())


def test_the_defaults_reach_the_stage_configs_unchanged():
    args = parse()
    data = distil_config(args).data
    assert dataclasses.replace(data, cache=None) == DataConfig()
    assert _gate(args) == Gate()
    qat = qat_config(parse("--qat-steps", "5"))
    assert qat == QatConfig(steps=5)
    # the demo preset fills what the command line leaves out, the command line wins
    assert distil_config(args).train == TrainConfig()
    assert distil_config(parse("--epochs", "9", "--mixup", "0.25")).train == \
        TrainConfig(epochs=9, mixup=0.25)
    assert given(parse("--calibration", "12"), QuantizeConfig) == {"calibration": 12}


def test_every_declared_option_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        build_parser(["compress", "--help"]).parse_args(["compress", "--help"])
    shown = capsys.readouterr().out
    for cls in SETTINGS:
        for f, opt in options(cls):
            assert flag_of(f, opt) in shown, flag_of(f, opt)
