"""The compress chain under torchrun on the CPU (gloo, two processes): faces found and taught in
shares, one student trained with DistributedDataParallel, the INT8 artifacts from rank 0
passing the gate; a rank killed mid-training and the run resumed from its checkpoint."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from motivnet_edge.cli import build_parser, main
from motivnet_edge.compress.distil.data import CropSet, collect, split_index
from motivnet_edge.compress.distil.world import World
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.compress.settings import DataConfig
from motivnet_edge.targets.errors import MotivnetError

pytestmark = pytest.mark.slow
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2"]
FACES = 600  # synthetic faces for the two-process compress: half the default, to keep CI short


def _torchrun(args: list[str], log: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen([*TORCHRUN, *extra, "-m", "motivnet_edge", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _shares(text: str, desc: str) -> dict[int, tuple[int, int]]:
    """rank -> (faces it computed, faces there were to compute) from the teacher's log lines."""
    found = re.findall(rf"{desc}, rank (\d) of 2: computed (\d+) faces .* its share of the (\d+)",
                       text)
    return {int(r): (int(n), int(total)) for r, n, total in found}


def test_two_processes_compress_to_gated_full_int8_with_the_teacher_pass_split(tmp_path):
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "torchrun.log"
    proc = _torchrun(["compress", "--out", str(out), "--cache-dir", str(cache), "--quiet",
                      "--synthetic", str(FACES)], log)
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    text = log.read_text()
    for desc in ("teacher", "teacher, mirrored"):  # each rank taught its own share
        shares = _shares(text, desc)
        assert set(shares) == {0, 1}, text[-3000:]
        total = shares[0][1]
        assert all(n > 0 for n, _ in shares.values())
        assert sum(n for n, _ in shares.values()) == total == FACES
    shards = {p.name.split("-")[1] for p in cache.rglob("shard-*.npz")}
    assert shards == {"r0", "r1"}
    assert len(re.findall(r"finding faces, rank \d of 2: \d+ face crops", text)) == 2
    assert re.search(r"rank 1 of 2: \d+ steps in", text)  # both trained

    report = json.loads(RunFolder(out).report.read_text())
    assert report["passed"]
    int8 = {a["format"]: a for a in report["artifacts"].values() if a["precision"] != "fp32"}
    assert set(int8) == {"onnx", "openvino", "tflite"}
    assert all(a["precision"] == "int8" and a["status"] == "ok" for a in int8.values()), int8

    # the same faces, in the same order, and so the same held-out faces as one process finds
    one = collect(synthetic=FACES, seed=0, progress=False)
    two = CropSet.load(RunFolder(out).faces(calibrated=False)[0])
    assert two.hashes == one.hashes
    held_out = split_index(one.hashes, DataConfig.val_fraction)[1]
    assert report["heldout_crops"] == len(held_out) > 0
    assert not list((out / "work").glob("faces.part-*"))  # the ranks' parts are cleaned up


def _rank_pid(launcher: psutil.Process, rank: str) -> int | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == rank and "motivnet_edge" in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    return None


def test_a_killed_rank_is_restarted_and_training_resumes_from_the_checkpoint(tmp_path):
    out, log = tmp_path / "out", tmp_path / "torchrun.log"
    proc = _torchrun(["distil", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                      "--epochs", "4", "--resume", "--quiet"], log, ("--max-restarts", "1"))
    launcher, deadline = psutil.Process(proc.pid), time.monotonic() + 600
    while not RunFolder(out).checkpoint.is_file():  # epoch 1 done and saved
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    pid = _rank_pid(launcher, "1")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    text = log.read_text()
    resumed = re.findall(r"resumed \S+student\.ckpt at epoch (\d+)", text)
    assert len(resumed) == 2 and int(resumed[0]) >= 1, text[-3000:]  # both ranks, same epoch
    history = json.loads(RunFolder(out).history.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert RunFolder(out).student_weights.is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_meet_through_the_c10d_rendezvous(tmp_path):
    """Two torchrun launchers, one process each, as two nodes would be started (on one host
    here; --out and --cache-dir shared as they would be on a cluster)."""
    endpoint = f"127.0.0.1:{_free_port()}"
    args = ["distil", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            "--synthetic", "300", "--epochs", "1", "--quiet"]
    rdzv = ("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes")
    logs = [tmp_path / f"node{n}.log" for n in (0, 1)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on this host's cores
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *rdzv, "-m",
                               "motivnet_edge", *args], stdout=open(log, "w"),
                              stderr=subprocess.STDOUT, env=env) for log in logs]
    assert [p.wait(timeout=600) for p in procs] == [0, 0], logs[0].read_text()[-3000:]
    text = logs[0].read_text() + logs[1].read_text()
    assert sorted(re.findall(r"rank (\d) of 2 \(local rank 0\) joined", text)) == ["0", "1"]
    assert sum(n for n, _ in _shares(text, "teacher").values()) == 300
    # every random draw is fixed by the seed and the number of processes: two processes started
    # by one launcher train the same student, to the last bit
    again = _torchrun([*args[:2], str(tmp_path / "again"), *args[3:]], tmp_path / "again.log")
    assert again.wait(timeout=600) == 0, (tmp_path / "again.log").read_text()[-3000:]
    one, two = (torch.load(tmp_path / d / "student.pth", weights_only=True)
                for d in ("out", "again"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


def test_a_batch_that_does_not_split_over_the_processes_is_named():
    with pytest.raises(MotivnetError, match="--batch 33 must split evenly over the 2"):
        World(0, 2).split_batch(33)
    assert World(1, 2).split_batch(32) == 16
    assert list(World(1, 3).share(8)) == [1, 4, 7]
    assert World(1, 2, 1).device("cuda") == "cuda:1" and World().device("cuda") == "cuda"


def test_an_unknown_device_is_refused_before_any_work(tmp_path, capsys):
    assert main(["distil", "--out", str(tmp_path / "o"), "--device", "gpu"]) == 2
    assert "--device 'gpu' is not cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


ROOT = Path(__file__).resolve().parents[1]


def _torchrun_commands(text: str) -> list[list[str]]:
    """The motivnet-edge arguments of every torchrun command in a shell text."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        if "torchrun" in line and "-m motivnet_edge" in line:
            rest = line.split("-m motivnet_edge", 1)[1]
            out.append(shlex.split(os.path.expandvars(rest.split("#")[0])))
    return out


def test_the_documented_torchrun_commands_parse_and_the_slurm_file_is_valid_bash():
    sbatch = ROOT / "examples" / "slurm-compress.sbatch"
    assert subprocess.run(["bash", "-n", str(sbatch)]).returncode == 0
    texts = [(ROOT / "docs" / "distributed.md").read_text(), sbatch.read_text()]
    commands = [c for t in texts for c in _torchrun_commands(t)]
    assert len(commands) >= 4
    for argv in commands:
        args = build_parser(argv).parse_args(argv)  # exits (fails the test) on a bad argument
        assert args.command == "compress" and args.out
    assert "--rdzv-endpoint" in sbatch.read_text() and "srun torchrun" in sbatch.read_text()
