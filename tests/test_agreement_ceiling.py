"""The agreement-ceiling experiment: noisy copies of a teacher, the KL they need for a target
agreement, KL against schedule length, and a run's history read as the weights it kept."""

import json

import numpy as np
import pytest

from motivnet_edge.experiments.agreement_ceiling import (
    epochs_for,
    kl_at,
    noisy_copies,
    on_half,
    power_fit,
    read_history,
)
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import artifact_name
from tests.helpers import bench_module, output, write_faces


def _entry(epoch, select, untouched, kept="running"):
    """A history entry with the fields a distil run writes: the running weights' figures and
    the average's (``ema_``), here set apart by 0.5 so a test sees which were read."""
    e = {"epoch": epoch, "seconds": 10.0 * epoch, "n": 20}
    for prefix, shift in (("", 0.0), ("ema_", 0.5)):
        for half, (agreement, kl) in (("select", select), ("untouched", untouched)):
            e[f"{prefix}{half}_agreement"] = agreement - shift
            e[f"{prefix}{half}_kl"] = kl + shift
    e["weights"] = kept
    return e


def _history(path, entries):
    path.write_text(json.dumps({"history": entries}))
    return path


def test_copies_drift_from_the_teacher_as_the_noise_grows():
    teacher = np.random.default_rng(3).normal(0, 2, (300, 7))
    curve = noisy_copies(teacher, sigmas=[0.0, 0.3, 1.0, 3.0], draws=5)
    assert curve["agreement"][0] == 1.0 and curve["kl"][0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(curve["kl"]) > 0)
    assert np.all(np.diff(curve["agreement"]) < 0)
    # one class named on a few faces only: the rare class, its faces counted apart
    rare = teacher.copy()
    rare[:, 3] -= 20
    rare[:10, 3] += 40
    curve = noisy_copies(rare, sigmas=[0.0, 1.0], draws=5)
    assert curve["rare_agreement"][0] == 1.0 and 0 < curve["rare_agreement"][1] <= 1
    assert kl_at(0.5, curve, "rare_agreement") is None  # 10 faces sure of their class
    assert noisy_copies(teacher * 0 + np.arange(7), sigmas=[0.0])["rare_agreement"] == [None]
    # a teacher sure of every face (one class far ahead) keeps its answers under the same noise
    sure = teacher + 30 * np.eye(7)[np.arange(300) % 7]
    assert noisy_copies(sure, sigmas=[1.0], draws=5)["agreement"][0] == 1.0


def test_the_kl_for_a_target_lies_where_the_copies_cross_it():
    curve = {"agreement": [1.0, 0.95, 0.9, 0.8], "kl": [0.0, 0.05, 0.1, 0.3]}
    assert kl_at(0.92, curve) == pytest.approx(0.08)
    assert kl_at(0.95, curve) == pytest.approx(0.05)  # met exactly at a measured level
    assert kl_at(0.5, curve) is None  # never reached by the copies measured


def test_the_length_fit_finds_the_power_law_it_was_given():
    lengths = [5, 10, 30, 45]
    c, alpha = power_fit(lengths, [0.4 * n ** -0.3 for n in lengths])
    assert c == pytest.approx(0.4) and alpha == pytest.approx(0.3)
    assert epochs_for(0.4 * 100 ** -0.3, c, alpha) == pytest.approx(100)
    assert epochs_for(0.1, 0.4, -0.1) is None  # KL rising with length never gets there
    with pytest.raises(MotivnetError, match=r"at least two lengths \(given: \[30\]\)"):
        power_fit([30, 30], [0.1, 0.09])


def test_a_history_is_read_as_the_weights_it_kept(tmp_path):
    entries = [_entry(1, (0.8, 0.2), (0.7, 0.4)), _entry(2, (0.9, 0.1), (0.8, 0.3))]
    running = on_half(read_history(_history(tmp_path / "r.json", entries)), "select", 0.5)
    assert running["points"] == [[1, 0.8, 0.2], [2, 0.9, 0.1]] and running["kept"] == "running"
    assert running["epochs"] == 2 and running["seconds_per_epoch"] == 15.0
    entries[-1]["weights"] = "average"
    average = on_half(read_history(_history(tmp_path / "a.json", entries)), "both", 0.25)
    assert average["kept"] == "average"
    assert average["points"][-1] == pytest.approx([2, 0.25 * 0.4 + 0.75 * 0.3,
                                                   0.25 * 0.6 + 0.75 * 0.8])
    del entries[0]["select_kl"]  # the running weights' figure: not read, the average was kept
    assert on_half(read_history(_history(tmp_path / "b.json", entries)), "select",
                   0.5)["points"]
    del entries[0]["ema_select_kl"]
    with pytest.raises(MotivnetError, match=r"bad\.json: not a distil run's history "
                                            r"\(no field 'ema_select_kl'\)"):
        read_history(_history(tmp_path / "bad.json", entries))


def test_a_run_folder_is_read_finished_or_stopped(tmp_path):
    import torch

    from motivnet_edge.compress.runfolder import RunFolder

    entries = [_entry(1, (0.8, 0.2), (0.7, 0.4)), _entry(2, (0.9, 0.1), (0.8, 0.3))]
    from_file = read_history(_history(tmp_path / "h.json", entries))
    folder = RunFolder(tmp_path / "run")
    folder.work.mkdir(parents=True)
    going = [{k: v for k, v in entries[0].items() if k != "weights"}]  # nothing kept yet
    torch.save({"history": going, "epoch": 1}, folder.checkpoint)
    stopped = read_history(folder.out)  # the rule's pick on its last epoch: the running weights
    assert stopped["epochs"] == 1 and stopped["halves"]["select"] == [[1, 0.8, 0.2]]
    assert stopped["kept"] == "running"
    going[0]["ema_select_agreement"] = 0.85  # the average now ahead on the select half
    torch.save({"history": going, "epoch": 1}, folder.checkpoint)
    stopped = read_history(folder.out)
    assert stopped["kept"] == "average" and stopped["halves"]["select"] == [[1, 0.85, 0.7]]
    folder.checkpoint.write_bytes(b"cut short")
    with pytest.raises(MotivnetError, match=r"student\.ckpt: not a readable distil checkpoint"):
        read_history(folder.out)
    _history(folder.history, entries)  # finished: its history.json, not the checkpoint
    finished = read_history(folder.out)
    assert finished["halves"] == from_file["halves"] and finished["epochs"] == 2


def test_bad_runs_are_named_before_any_faces_load(tmp_path):
    good = _history(tmp_path / "h.json", [_entry(1, (0.8, 0.2), (0.7, 0.4))])
    (tmp_path / "text.json").write_text("not json")
    for args, said in ((["p30"], "p30: a run is given as LABEL=PATH"),
                       ([f"a={tmp_path / 'none'}"], "none: no history.json and no checkpoint"),
                       ([f"a={tmp_path / 'text.json'}"], "text.json: not a history file"),
                       ([f"a={good}", f"a={good}"], "a: two runs under one label"),
                       ([f"a={good}", "--target", "1.5"], "--target 1.5"),
                       ([f"a={good}", "--fit", "a,b"], "--fit b: no run has that label"),
                       ([f"a={good}", "--rare-target", "0"], "--rare-target 0.0: an agreement"),
                       ([f"a={good}", "--labelled-rows", str(good)],
                        "--labelled-rows: the rows are placed on --labelled CSV's faces"),
                       ([f"a={good}", "--labelled", "x.csv", "--labelled-rows", str(good)],
                        "h.json: not an agreement file of labelled faces (no field 'rows')")):
        res = bench_module("agreement_ceiling", "--run", tmp_path / "no-run", *args,
                           layer="experiments")
        assert res.returncode == 2 and said in res.stderr, output(res)
        assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_a_run_is_placed_against_the_copies_of_its_own_teacher(compressed, tmp_path):
    from motivnet_edge.benchmarks.agreement import held_out

    out, res = compressed
    assert res.returncode == 0, output(res)
    entries = json.loads((out / "work" / "history.json").read_text())["history"]
    # the same run carried twice as long with a lower KL: a second length for the fit
    longer = [dict(e, epoch=e["epoch"] + len(entries)) for e in entries]
    for key in [k for k in longer[-1] if k.endswith("_kl")]:
        longer[-1][key] *= 0.5
    res = bench_module("agreement_ceiling", "--run", out, f"short={out / 'work/history.json'}",
                       f"long={_history(tmp_path / 'long.json', entries + longer)}",
                       "--draws", "3", "--json", tmp_path / "c.json", "--plot",
                       tmp_path / "c.png", layer="experiments")
    assert res.returncode == 0, output(res)
    result = json.loads((tmp_path / "c.json").read_text())
    groups = held_out(out)["groups"]
    assert result["faces"] == groups["select"].sum() + groups["untouched"].sum() > 0
    assert result["copies"]["agreement"][0] == 1.0 and result["fit"]["alpha"] > 0
    assert set(result["runs"]) == {"short", "long"} and result["runs"]["long"]["epochs"] == \
        2 * result["runs"]["short"]["epochs"]
    assert (tmp_path / "c.png").stat().st_size > 10_000
    assert "noisy copies of the teacher" in res.stdout
    # labelled photos' faces: the copies on them, the artifact's measured row against them
    paths = write_faces(tmp_path / "photos", 6, seed=9)
    labels = tmp_path / "photos" / "labels.csv"
    labels.write_text("image,emotion\n" + "".join(f"{p.name},happy\n" for p in paths))
    onnx = out / artifact_name("student", "int8", "onnx")
    measured = bench_module("agreement", "--run", out, onnx, "--labelled", labels, "--json",
                            tmp_path / "dev.json")
    assert measured.returncode == 0, output(measured)
    res = bench_module("agreement_ceiling", "--run", out, f"short={out / 'work/history.json'}",
                       f"long={tmp_path / 'long.json'}", "--draws", "3", "--labelled", labels,
                       "--labelled-rows", tmp_path / "dev.json", "--json", tmp_path / "d.json",
                       layer="experiments")
    assert res.returncode == 0, output(res)
    tagged = json.loads((tmp_path / "d.json").read_text())["labelled"]
    row = json.loads((tmp_path / "dev.json").read_text())["rows"][str(onnx)]
    assert tagged["faces"] >= 5 and tagged["copies"]["agreement"][0] == 1.0
    assert tagged["rows"][f"dev.json: {onnx}"]["agreement"] == row["labelled_agreement"]
    assert "labelled faces (" in res.stdout
    bad = bench_module("agreement_ceiling", "--run", tmp_path / "none",
                       f"short={out / 'work/history.json'}", layer="experiments")
    assert bad.returncode == 2 and "run.json is missing" in bad.stderr, output(bad)
