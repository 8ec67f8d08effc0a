"""The benchmark's Pareto plot shows every row: each point inside the axes, no two labels
drawn over each other (their drawn extents), and a row whose label found no free place listed
in the legend instead."""

import itertools

from motivnet_edge.benchmarks.pareto import draw

HOST = {"cpu": "test CPU", "flags": [], "arch": "x86_64", "cores": 2, "os": "test"}


def row(name, engine, p50, top1, kind="artifact", device="cpu"):
    return {"name": name, "engine": engine, "device": device, "kind": kind, "p50_ms": p50,
            "top1": top1}


def crowded_results(n_close: int) -> dict:
    rows = [row("teacher", "onnxruntime", 2.4, 0.54, kind="teacher"),
            row("baseline-haar", "opencv", 13.0, 0.35, kind="baseline"),
            row("baseline-small", "onnxruntime", 0.9, 0.41, kind="baseline")]
    for i in range(n_close):  # INT8 rows a hair apart in latency and accuracy
        rows.append(row(f"student-int8-{i}.onnx", ["onnxruntime", "openvino", "litert"][i % 3],
                        1.00 + 0.01 * i, 0.520 + 0.001 * i))
    rows.append({**row("student-int8.xml", "openvino", 1.5, None), "top1": None})  # speed only
    return {"rows": rows, "host": HOST, "faces": 577, "faces_source": "test faces"}


def check_every_row_shown(results):
    import matplotlib.pyplot as plt

    fig = draw(results)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for r in results["rows"]:
        assert x0 < r["p50_ms"] < x1, r
        if r["top1"] is not None:
            assert y0 < r["top1"] < y1, r
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    drawn = [t.get_text() for t in ax.texts]
    legend = ax.get_legend()
    listed = [t.get_text() for t in legend.get_texts()] if legend else []
    for r in results["rows"]:
        short = r["name"].replace("student-", "")
        assert any(short in text for text in drawn + listed), r["name"]
    plt.close(fig)
    return drawn, listed


def test_close_rows_and_a_far_outlier_are_all_shown_apart():
    drawn, listed = check_every_row_shown(crowded_results(3))
    assert "Pareto front" in listed
    assert any("baseline-haar" in t for t in drawn)  # the outlier keeps its label and point


def test_rows_too_many_to_label_in_place_go_to_the_legend():
    drawn, listed = check_every_row_shown(crowded_results(40))
    assert len(listed) > 1  # some found no free place beside their point


def test_a_figure_is_saved_whole_or_not_at_all_and_closed_either_way(tmp_path):
    import matplotlib.pyplot as plt
    import pytest

    from motivnet_edge.benchmarks.figures import save

    path = tmp_path / "plots" / "ok.png"
    fig = draw(crowded_results(3))
    save(fig, path, bbox_inches="tight")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)

    fig = draw(crowded_results(3))
    with pytest.raises(ValueError):  # matplotlib refuses the size: nothing may be left behind
        save(fig, tmp_path / "plots" / "bad.png", dpi=-1)
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ok.png"]
