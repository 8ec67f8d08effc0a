"""Expression warps (``--warp``): parts of an aligned face moved smoothly, by fractions of its
side, the same in the student's and the teacher's cut."""

import numpy as np
import pytest

from motivnet_edge.compress.distil.augment import augmented_views, expression_moves, warp_expression
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import FIVE_POINT_112, CropSpec, Face, FaceImage, cut
from tests.helpers import bench_module, output


def aligned(side: int) -> CropSpec:
    scale = side / 112
    return CropSpec(height=side, width=side, margin=0.0, color="rgb", region="aligned",
                    template=tuple((x * scale, y * scale) for x, y in FIVE_POINT_112))


def dotted(side: int, points: list[tuple[float, float]]) -> np.ndarray:
    """A black face of ``side`` px with a white 3x3 dot at each point."""
    image = np.zeros((side, side, 3), np.uint8)
    for x, y in points:
        image[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2] = 255
    return image


def centre(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The brightness-weighted centre (x, y) of ``image`` inside ``box`` (x0, y0, x1, y1)."""
    x0, y0 = max(box[0], 0), max(box[1], 0)
    x1, y1 = min(box[2], image.shape[1]), min(box[3], image.shape[0])
    part = image[y0:y1, x0:x1, 0].astype(float)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return np.array([(xs * part).sum(), (ys * part).sum()]) / part.sum()


@pytest.mark.parametrize("side", [112, 64])
def test_mouth_corners_move_by_their_fraction_of_the_side_and_far_pixels_stay(side):
    spec = aligned(side)
    corner = spec.points()[3]
    far = (3.0, 3.0)
    image = dotted(side, [tuple(corner), far])
    moves = np.zeros((7, 2), np.float32)
    moves[0, 1] = 0.05  # the right mouth corner down by 5 % of the side
    out = warp_expression(image, spec, moves)
    r = side // 6
    window = (int(corner[0]) - r, int(corner[1]) - r, int(corner[0]) + r, int(corner[1]) + 2 * r)
    moved = centre(out, window) - centre(image, window)
    assert abs(moved[0]) < 0.5
    assert moved[1] == pytest.approx(0.05 * side, abs=0.12 * 0.05 * side + 0.3)
    assert np.array_equal(out[:8, :8], image[:8, :8])  # the corner of the frame: untouched


def test_no_moves_leave_the_face_as_it_was():
    spec = aligned(112)
    image = np.random.default_rng(0).integers(0, 255, (112, 112, 3), np.uint8)
    assert np.array_equal(warp_expression(image, spec, np.zeros((7, 2), np.float32)), image)


def test_random_moves_are_small_and_vary():
    rng = np.random.default_rng(0)
    moves = np.stack([expression_moves(rng) for _ in range(200)])
    assert moves.shape == (200, 7, 2)
    assert np.abs(moves).max() <= 0.07
    assert moves[:, 0, 1].std() > 0.01 and moves[:, 2, 1].min() >= 0  # corners vary; lip drops


def test_the_same_change_of_expression_in_every_cut():
    """A face aligned on the template with a dot on each mouth corner, cut at two sides: with
    ``warp`` 1 every face's dots move by the same fraction of the side in both cuts."""
    image = dotted(112, [FIVE_POINT_112[3], FIVE_POINT_112[4]])
    face = Face((0.0, 0.0, 112.0, 112.0), 1.0, np.asarray(FIVE_POINT_112, np.float32))
    crops = [FaceImage(image, face)] * 6
    specs = (aligned(112), aligned(56))
    plain = [cut(image, face, s) for s in specs]
    views = augmented_views(crops, specs, np.random.default_rng(4), strength=0.0, warp=1.0)
    shifts = []
    for spec, stack, before in zip(specs, views, plain, strict=True):
        side = spec.width
        x, y = spec.points()[3]
        window = (int(x - side / 8), int(y - side / 8), int(x + side / 8), int(y + side / 5))
        shifts.append([(centre(v, window) - centre(before, window)) / side for v in stack])
    shifts = np.array(shifts)
    assert np.abs(shifts[0]).max() > 0.01  # the corners did move
    assert np.allclose(shifts[0], shifts[1], atol=1.5 / 56)
    unwarped = augmented_views(crops, specs, np.random.default_rng(4), strength=0.0)
    assert all(np.array_equal(u, np.stack([p] * 6)) for u, p in zip(unwarped, plain,
                                                                    strict=True))


def test_a_face_not_aligned_on_landmarks_is_refused_by_name():
    square = CropSpec(height=64, width=64, margin=0.1)
    with pytest.raises(MotivnetError, match="--warp.*region 'square'"):
        warp_expression(np.zeros((64, 64, 3), np.uint8), square, np.zeros((7, 2)))


@pytest.mark.slow
def test_the_teacher_shift_experiment_refuses_a_teacher_of_unaligned_faces(compressed, tmp_path):
    out, res = compressed  # the demo teacher takes box crops
    assert res.returncode == 0, output(res)
    run = bench_module("expression_warp", "--run", out, "--faces", "8", layer="experiments")
    assert run.returncode == 2 and "--warp needs faces aligned" in run.stderr
    missing = bench_module("expression_warp", "--run", tmp_path / "none", layer="experiments")
    assert missing.returncode == 2 and "run.json is missing" in missing.stderr
    assert "Traceback" not in run.stderr + missing.stderr
