"""Removing a device root never deletes through a mount inside it: a half-built root that a
stopped mmdebstrap left with the host's folders still mounted is unmounted, then deleted, and
the host's files stay. Two builders of one root never run at once."""

import os
import subprocess
import threading
import time

import pytest

from motivnet_edge.edge.packaging import roots


@pytest.fixture
def host_folder(tmp_path):
    folder = tmp_path / "host shm"  # a space: /proc/self/mounts writes it as \040
    folder.mkdir()
    (folder / "keep.txt").write_text("the host's own file\n")
    return folder


def test_a_stale_root_with_mounts_inside_is_unmounted_before_it_is_deleted(tmp_path, host_folder):
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    stale = tmp_path / "trixie-arm64-0123.tmp"
    inside = [stale / "dev" / "shm", stale / "dev" / "shm" / "deeper", stale / "run"]
    for point in inside[:1] + inside[2:]:
        point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "--bind", str(host_folder), str(inside[0])],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.strip()}")
    inside[1].mkdir()  # made through the bind mount: it is the host's folder too
    subprocess.run(["mount", "--bind", str(host_folder), str(inside[1])], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inside[2])], check=True)
    found = roots.mounts_under(stale)
    assert set(found) == set(inside) and found[0] == inside[1]  # deepest first

    roots.remove_root(stale)

    assert not stale.exists()
    assert roots.mounts_under(tmp_path) == []
    assert (host_folder / "keep.txt").read_text() == "the host's own file\n"


def test_removing_a_root_that_is_not_there_is_nothing(tmp_path):
    roots.remove_root(tmp_path / "never-built")
    assert list(tmp_path.iterdir()) == []


def test_a_second_builder_of_one_root_waits_for_the_first(tmp_path):
    """The lock cached_root builds under: a second holder (another thread here; another
    process alike) gets in only after the first has left."""
    lock, order, inside = tmp_path / "trixie-arm64-0123.lock", [], threading.Event()

    def first():
        with roots.exclusive(lock):
            order.append("first in")
            inside.set()
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    with roots.exclusive(lock):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
