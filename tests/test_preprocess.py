"""The shared crop-and-preprocess function: geometry, both resize modes, colour, layout, dtype."""

import numpy as np
import pytest

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import (
    MOTIVNET_SPEC,
    CropSpec,
    crop_square,
    make_batch,
    make_input,
)


def quadrant_frame():
    """200x300 BGR frame: a 100x100 block at (x=50, y=40) split into four coloured quadrants."""
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[40:90, 50:100] = (255, 0, 0)      # top-left blue
    frame[40:90, 100:150] = (0, 255, 0)     # top-right green
    frame[90:140, 50:100] = (0, 0, 255)     # bottom-left red
    frame[90:140, 100:150] = (255, 255, 255)  # bottom-right white
    return frame


def test_square_resize_of_a_known_box_keeps_the_quadrants():
    spec = CropSpec(height=64, width=64, margin=0.0, color="rgb", mean=(0,), std=(1,),
                    layout="nhwc")
    out = make_input(quadrant_frame(), (50, 40, 100, 100), spec)
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert tuple(out[10, 10]) == (0, 0, 255)   # blue in RGB order
    assert tuple(out[10, 54]) == (0, 255, 0)
    assert tuple(out[54, 10]) == (255, 0, 0)
    assert tuple(out[54, 54]) == (255, 255, 255)


def test_margin_widens_the_crop_and_is_black_outside_the_frame():
    frame = quadrant_frame()
    crop = crop_square(frame, (50, 40, 100, 100), margin=0.25)
    assert crop.shape[:2] == (150, 150)
    assert tuple(crop[25 + 5, 25 + 5]) == (255, 0, 0)
    # a box at the frame's corner: the part outside is black, as an aligned warp gives
    corner = crop_square(frame, (0, 0, 40, 40), margin=0.5)
    assert corner.shape[:2] == (80, 80)
    assert not corner[:20, :20].any() and np.array_equal(corner[20, 20], frame[0, 0])


def test_pad_mode_is_motivnets_white_padding():
    spec = CropSpec(**{**MOTIVNET_SPEC.to_dict(), "height": 128, "width": 96, "margin": 0.0})
    out = make_input(quadrant_frame(), (50, 40, 100, 100), spec)
    assert out.shape == (3, 128, 96)
    white = (255 - np.array(spec.mean)) / np.array(spec.std)
    assert np.allclose(out[:, :16, :], white[:, None, None], atol=1e-5)   # 16 rows on top
    assert np.allclose(out[:, -16:, :], white[:, None, None], atol=1e-5)  # and at the bottom
    blue_rgb = (np.array([0, 0, 255]) - np.array(spec.mean)) / np.array(spec.std)
    assert np.allclose(out[:, 16 + 10, 10], blue_rgb, atol=1e-4)


def test_full_size_motivnet_input_shape():
    frame = np.full((480, 640, 3), 128, np.uint8)
    out = make_input(frame, (200, 100, 200, 240), MOTIVNET_SPEC)
    assert out.shape == (3, 1024, 768)


def test_gray_uint8_and_bgr_outputs():
    frame = quadrant_frame()
    gray = make_input(frame, (50, 40, 100, 100),
                      CropSpec(height=32, width=32, margin=0, color="gray", dtype="uint8",
                               mean=(0,), std=(1,)))
    assert gray.shape == (1, 32, 32) and gray.dtype == np.uint8
    assert gray[0, 28, 28] == 255
    bgr = make_input(frame, (50, 40, 100, 100),
                     CropSpec(height=32, width=32, margin=0, color="bgr", dtype="uint8",
                              layout="nhwc"))
    assert tuple(bgr[4, 4]) == (255, 0, 0)


def test_batch_stacks_all_faces():
    spec = CropSpec(height=48, width=48)
    batch = make_batch(quadrant_frame(), [(50, 40, 100, 100), (0, 0, 30, 30), None], spec)
    assert batch.shape == (3, 3, 48, 48)
    assert make_batch(quadrant_frame(), [], spec).shape == (0, 3, 48, 48)


def test_spec_round_trips_through_plain_data():
    spec = CropSpec(height=112, width=112, color="gray", mean=(127.5,), std=(128.0,))
    assert CropSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("field,value", [("layout", "nchwc"), ("color", "hsv"),
                                         ("resize", "crop"), ("std", (0.0,))])
def test_bad_spec_names_the_field(field, value):
    with pytest.raises(MotivnetError, match=field):
        CropSpec(**{field: value})


def test_unknown_spec_field_is_rejected():
    with pytest.raises(MotivnetError, match="unknown fields"):
        CropSpec.from_dict({"height": 10, "colour": "rgb"})


def test_box_outside_the_frame_is_an_error():
    with pytest.raises(MotivnetError, match="outside"):
        make_input(quadrant_frame(), (1000, 1000, 10, 10), CropSpec())
