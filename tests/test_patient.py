"""The patient student's parts: the label-free selection halves and figures, the moving average
of the weights (and a run stopped after a checkpoint going on to the same student, only with
the settings it started with), random resized crops, and the patient preset on the command
line."""

import hashlib
import logging
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch

from motivnet_edge.cli import build_parser
from motivnet_edge.compress.commands import distil_config
from motivnet_edge.compress.distil import train as train_module
from motivnet_edge.compress.distil.augment import jitter_face
from motivnet_edge.compress.distil.average import WeightAverage
from motivnet_edge.compress.distil.data import split_index
from motivnet_edge.compress.distil.selection import (
    agreement_figures,
    held_out_halves,
    kept_prefix,
    kept_weights,
    kl_from_teacher,
    rare_classes,
    selection_key,
)
from motivnet_edge.compress.distil.train import train
from motivnet_edge.compress.progress import Progress, clock
from motivnet_edge.compress.settings import PRESETS, TrainConfig, resume_conflicts
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage
from tests.helpers import TinyNet

SPEC = CropSpec(height=32, width=32, margin=0.1)


def hashes(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def test_the_held_out_faces_split_in_two_halves_the_train_split_does_not_read():
    held = split_index(hashes(4000), 0.2)[1]
    select = held_out_halves([hashes(4000)[i] for i in held])
    assert 0.4 < select.mean() < 0.6
    # the same hashes, the same halves; a face's half does not depend on the others
    again = held_out_halves([hashes(4000)[i] for i in held][::-1])
    assert np.array_equal(again[::-1], select)


def test_kl_is_zero_only_for_the_teachers_own_probabilities():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(50, 7))
    assert kl_from_teacher(teacher + 3.0, teacher) == pytest.approx(0.0, abs=1e-9)
    assert kl_from_teacher(teacher * 0.5, teacher) > 0.01


def test_rare_classes_and_agreement_on_them():
    teacher = np.zeros((100, 3))
    teacher[:95, 0] = 5.0  # 95 faces of class 0, 5 of class 2, none of class 1
    teacher[95:, 2] = 5.0
    assert list(rare_classes(teacher)) == [1, 2]
    student = teacher.copy()
    student[95:97] = [0.0, 0.0, -5.0]  # two of the five rare faces missed
    figures = agreement_figures(student, teacher)
    assert figures["agreement"] == pytest.approx(0.98)
    assert figures["rare_agreement"] == pytest.approx(0.6)
    assert figures["rare_n"] == 5


def test_two_rows_compared_face_by_face_and_the_sign_test():
    from motivnet_edge.benchmarks.agreement import paired, sign_test

    assert sign_test(0, 0) == sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(20, 2) < 0.001 < sign_test(7, 3)
    teacher = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    first = np.array([0, 1, 2, 1, 1, 1])  # agrees on faces 0-2 and 4
    other = np.array([0, 1, 0, 0, 2, 2])  # agrees on faces 0, 1, 3 and 5
    groups = {"a": np.array([1, 1, 1, 1, 0, 0], bool), "b": np.array([0, 0, 0, 0, 1, 1], bool)}
    pair = paired({"first": first, "other": other}, {"teacher": teacher, "groups": groups})
    assert pair["other"] == {"a_only_row": 1, "a_only_first": 1, "a_p": 1.0,
                             "b_only_row": 1, "b_only_first": 1, "b_p": 1.0}
    assert paired({"first": first}, {"teacher": teacher, "groups": groups}) == {}


def test_an_ensemble_averages_probabilities_and_margins_split_the_faces():
    from motivnet_edge.benchmarks.agreement import by_margin, ensemble

    teacher = np.log(np.array([[0.9, 0.05, 0.05], [0.5, 0.45, 0.05], [0.1, 0.2, 0.7]]))
    sure_a = np.log(np.array([[0.4, 0.6, 0.0001], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]))
    sure_b = np.log(np.array([[0.95, 0.04, 0.01], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]))
    mixed = ensemble([sure_a, sure_b])
    assert np.allclose(np.exp(mixed).sum(1), 1.0)
    assert list(mixed.argmax(1)) == [0, 0, 2]  # face 0: b's 0.95 outweighs a's 0.6
    assert np.exp(mixed)[1, 0] == pytest.approx(0.55)
    groups = {"all": np.ones(3, bool)}
    data = {"teacher": teacher, "mirrored": None, "groups": groups}
    bands = by_margin({"a": sure_a, "mixed": mixed}, data)
    assert bands["a"]["all"] == {"0-0.1": [1.0, 1], "0.4-1": [0.5, 2]}
    assert bands["mixed"]["all"]["0.4-1"] == [1.0, 2]
    bands = by_margin({"a": sure_a}, {**data, "mirrored": sure_b})
    assert bands["teacher, mirror image"]["all"]["0-0.1"] == [0.0, 1]


def test_the_selection_rule_prefers_agreement_then_lower_kl():
    a = {"select_agreement": 0.9, "select_kl": 0.2}
    b = {"select_agreement": 0.9, "select_kl": 0.1}
    c = {"select_agreement": 0.91, "select_kl": 0.5}
    assert max([a, b, c], key=selection_key) is c
    assert max([a, b], key=selection_key) is b


def test_the_kept_weights_are_the_recorded_ones_else_those_the_rule_would_keep():
    running = {"select_agreement": 0.9, "select_kl": 0.1}
    better = {**running, "ema_select_agreement": 0.91, "ema_select_kl": 0.2}
    worse = {**running, "ema_select_agreement": 0.89, "ema_select_kl": 0.0}
    assert [kept_weights(e) for e in (running, better, worse)] == ["running", "average", "running"]
    assert kept_prefix(better) == "ema_" and kept_prefix(worse) == kept_prefix(running) == ""
    recorded = {**better, "weights": "running"}  # a finished run's record beats the figures
    assert kept_weights(recorded) == "running" and kept_prefix(recorded) == ""
    assert kept_prefix({**worse, "weights": "average"}) == "ema_"


def test_the_average_follows_the_weights_with_its_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    expected = 0.0
    for n, value in enumerate((4.0, 8.0, 2.0, 6.0), start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert float(average.model.weight[0, 0]) == pytest.approx(expected)
    assert not average.model.weight.requires_grad


def faces(n: int, seed: int) -> list[FaceImage]:
    rng = np.random.default_rng(seed)
    return [FaceImage(rng.integers(0, 255, (48, 48, 3), np.uint8), Face((8.0, 8.0, 32.0, 32.0)))
            for _ in range(n)]


def tiny_run(tmp_path, name: str, stop_after: int | None = None, monkeypatch=None):
    """Three epochs of distillation with an average, from cached teacher rows; with
    ``stop_after``, the run dies right after that epoch's checkpoint and is resumed."""
    crops, val = faces(48, 0), faces(16, 1)
    rng = np.random.default_rng(2)
    teacher, val_teacher = rng.normal(size=(48, 7)) * 3, rng.normal(size=(16, 7)) * 3
    cfg = TrainConfig(epochs=3, batch=16, lr=5e-3, augment=0.5, ema=0.9, zoom=0.2)
    ckpt = tmp_path / f"{name}.ckpt"
    args = (SPEC, crops, teacher.astype(np.float32), np.full(48, -1), val,
            val_teacher.astype(np.float32), np.full(16, -1), cfg)
    select = np.arange(16) % 2 == 0
    torch.manual_seed(0)
    model = TinyNet()
    if stop_after is not None:
        real = train_module.save_checkpoint

        def save_then_die(state, path):
            real(state, path)
            if state["epoch"] == stop_after:
                raise KeyboardInterrupt
        monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train(model, *args, checkpoint=ckpt, progress=False, val_select=select)
        monkeypatch.setattr(train_module, "save_checkpoint", real)
        torch.manual_seed(0)
        model = TinyNet()
    history = train(model, *args, checkpoint=ckpt, resume=True, progress=False,
                    val_select=select)
    return model, history


def test_a_stopped_run_goes_on_to_the_same_student_and_average(tmp_path, monkeypatch):
    whole, history = tiny_run(tmp_path, "whole")
    resumed, resumed_history = tiny_run(tmp_path, "stopped", stop_after=2,
                                        monkeypatch=monkeypatch)
    assert [h["epoch"] for h in resumed_history] == [1, 2, 3]
    for key in ("select_agreement", "untouched_kl", "ema_select_agreement", "ema_untouched_kl",
                "select_rare_n"):
        assert key in history[-1], key
    assert history[-1]["weights"] in ("average", "running")
    assert resumed_history[-1]["weights"] == history[-1]["weights"]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_zoom_cuts_a_square_inside_the_face():
    face = Face((10.0, 20.0, 40.0, 40.0), 1.0, np.array([[20, 30], [40, 30], [30, 40],
                                                        [22, 50], [38, 50]], np.float32))
    rng = np.random.default_rng(0)
    sides = []
    for _ in range(200):
        x, y, w, h = jitter_face(face, rng, strength=0.0, zoom=0.3).box
        assert 0.7 * 40 - 1e-4 <= w <= 40 + 1e-4 and w == pytest.approx(h)
        assert x >= 10 - 1e-4 and y >= 20 - 1e-4
        assert x + w <= 50 + 1e-4 and y + h <= 60 + 1e-4
        sides.append(w)
    assert min(sides) < 30 and max(sides) > 38  # the whole range is drawn
    assert jitter_face(face, np.random.default_rng(0), 0.0).box == face.box


def test_the_patient_preset_fills_what_the_command_line_leaves_out():
    def parse(*args):
        argv = ["compress", "--out", "/tmp/never-made", *args]
        return distil_config(build_parser(argv).parse_args(argv)).train

    patient = parse("--preset", "patient")
    assert (patient.epochs, patient.ema, patient.zoom) == (PRESETS["patient"]["epochs"],
                                                          PRESETS["patient"]["ema"],
                                                          PRESETS["patient"]["zoom"])
    assert patient.consistent and patient.ema > 0
    assert parse("--preset", "patient", "--epochs", "3").epochs == 3
    assert parse("--preset", "patient").weight_decay == 0.05
    assert parse("--preset", "patient", "--weight-decay", "0.1").weight_decay == 0.1
    assert parse().decay_norms and not parse("--no-decay-norms").decay_norms
    assert not patient.decay_norms and parse("--preset", "patient", "--decay-norms").decay_norms
    assert parse().ema == 0.0  # the demo keeps no average


@pytest.mark.parametrize("decay_norms", [True, False])
def test_without_decay_norms_batchnorm_and_biases_keep_their_values_under_weight_decay(
        decay_norms):
    torch.manual_seed(0)
    model = TinyNet()
    cfg = TrainConfig(lr=0.1, weight_decay=0.5, decay_norms=decay_norms)
    _, opt, _ = train_module._optimizer(model, cfg, total=10, warm=1)
    for p in model.parameters():
        p.data.add_(0.5)  # BatchNorm's shifts start at 0, which no decay moves
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves a value
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt.step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    matrices = {name for name, p in model.named_parameters() if p.ndim > 1}
    assert matrices < set(before)  # TinyNet has BatchNorm and biases
    assert moved == (set(before) if decay_norms else matrices)


def test_a_checkpoint_resumed_with_the_other_decay_norms_names_the_setting(tmp_path):
    def parts(decay_norms):
        model = TinyNet()
        _, opt, sched = train_module._optimizer(
            model, TrainConfig(decay_norms=decay_norms), total=10, warm=1)
        return model, opt, sched

    model, opt, sched = parts(True)
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": 1, "history": [],
                "config": asdict(TrainConfig(decay_norms=True))}, checkpoint)
    assert train_module._resume(checkpoint, TrainConfig(decay_norms=True), *parts(True), "cpu",
                                None) == (1, [])
    with pytest.raises(MotivnetError, match="decay-norms"):
        train_module._resume(checkpoint, TrainConfig(decay_norms=False), *parts(False), "cpu",
                             None)


def test_a_run_goes_on_only_with_the_settings_it_started_with(tmp_path):
    """A run carried to another machine is resumed by the same command: another --epochs would
    bend its schedule, another --seed change its order, so they are refused by name; the device
    may change."""
    tiny_run(tmp_path, "made")
    checkpoint = tmp_path / "made.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["config"]
    assert resume_conflicts(saved, TrainConfig(**{**saved, "device": "cuda"})) == []
    crops, val = faces(48, 0), faces(16, 1)
    rows = np.zeros((48, 7), np.float32)
    for changed, named in (({"epochs": 5}, "--epochs: 3 in the checkpoint, 5 now"),
                           ({"seed": 1, "lr": 1e-3}, "--lr: 0.005 in the checkpoint, 0.001 now; "
                                                     "--seed: 0 in the checkpoint, 1 now")):
        cfg = TrainConfig(**{**saved, **changed})
        with pytest.raises(MotivnetError, match=re.escape(named)):
            train(TinyNet(), SPEC, crops, rows, np.full(48, -1), val, rows[:16],
                  np.full(16, -1), cfg, checkpoint=checkpoint, resume=True, progress=False)


def test_progress_lines_in_a_log_say_how_long_is_left(caplog):
    caplog.set_level(logging.INFO, "motivnet_edge.progress")
    bar = Progress(10, "distil", "step", every_s=0)
    for _ in range(10):
        bar.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and all(" left)" in line for line in lines)
    assert lines[-1].endswith("0 s left)")
    assert (clock(3725), clock(185), clock(12)) == ("1 h 02 min", "3 min 05 s", "12 s")
