"""Teachers exported elsewhere, the teacher cache, and face-crop collection."""

import numpy as np
import pytest
import torch

from motivnet_edge.compress.distil.data import collect
from motivnet_edge.compress.distil.teacher_cache import TeacherCache
from motivnet_edge.compress.models.teachers import load_teacher
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, FER2013
from motivnet_edge.targets.preprocess import CropSpec, FaceImage
from tests.helpers import FixedLogits, TinyNet, blank_image, write_faces


def spec(labels, **crop) -> ClassifierSpec:
    return ClassifierSpec(tuple(labels), CropSpec(**crop))


def blank(side: int) -> FaceImage:
    return FaceImage(np.zeros((side, side, 3), np.uint8))


def test_onnx_teacher_with_fer2013_order_ends_up_in_affectnet_order(tmp_path):
    path = tmp_path / "fer_teacher.onnx"
    fer_logits = [float(i) for i in range(7)]  # logit value = FER2013 index
    torch.onnx.export(FixedLogits(fer_logits).eval(), (torch.zeros(1, 1, 48, 48),), str(path),
                      input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    teacher = load_teacher(path, spec(FER2013, mean=(0, 0, 0), std=(1, 1, 1)))
    # size, layout and gray channel are read from the file's input
    assert (teacher.crop.height, teacher.crop.width, teacher.crop.color) == (48, 48, "gray")
    crops = [blank(60)] * 2
    out = teacher.predict(crops)
    assert out.shape == (2, 7)
    assert [FER2013[int(v)] for v in out[0]] == list(AFFECTNET7)
    assert AFFECTNET7[int(out[0].argmax())] == "Neutral"  # FER2013's last class


def test_exported_teacher_without_labels_is_refused(tmp_path):
    path = tmp_path / "t.onnx"
    torch.onnx.export(FixedLogits([0.0] * 7).eval(), (torch.zeros(1, 3, 8, 8),), str(path),
                      dynamo=False)
    with pytest.raises(MotivnetError, match="class order"):
        load_teacher(path)


def test_teacher_cache_resumes_after_interruption(tmp_path):
    crops = [FaceImage(np.full((8, 8, 3), i, np.uint8)) for i in range(10)]
    hashes = [f"h{i}" for i in range(10)]
    calls = []

    def predict(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while filling the third shard
        return np.stack([np.full(7, float(c.image[0, 0, 0])) for c in batch])

    with pytest.raises(KeyboardInterrupt):
        TeacherCache(tmp_path, "key", shard_size=3).logits(hashes, crops, predict,
                                                           progress=False, batch=3)
    assert sum(calls[:2]) == 6
    calls.clear()
    out = TeacherCache(tmp_path, "key", shard_size=3).logits(
        hashes, crops, lambda b: np.stack([np.full(7, float(c.image[0, 0, 0])) for c in b]) if
        not calls.append(len(b)) else None, progress=False, batch=3)
    assert sum(calls) == 4  # only the four not yet stored
    assert np.array_equal(out[:, 0], np.arange(10, dtype=np.float32))
    calls.clear()
    TeacherCache(tmp_path, "key", shard_size=3).logits(hashes, crops, lambda b: calls.append(1),
                                                       progress=False)
    assert calls == []
    assert not list(tmp_path.glob("key/.*"))  # no half-written shard left behind


def test_unreadable_and_faceless_images_are_skipped_and_counted(tmp_path):
    write_faces(tmp_path / "imgs", 6, seed=2)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    blank_image(tmp_path / "imgs" / "wall.png")
    data = collect([tmp_path / "imgs"], progress=False)
    assert data.skipped["unreadable"] == 1
    assert data.skipped["no face"] >= 1
    assert len(data) + data.skipped["no face"] == 7
    assert all(c.image.shape[0] == c.image.shape[1] for c in data.crops)
    assert all(c.face.landmarks is not None for c in data.crops)  # YuNet, the default
    assert not data.labelled


def test_empty_data_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotivnetError, match="no face crops found in .*empty"):
        collect([tmp_path / "empty"], progress=False)


def test_labelled_folder_gives_labelled_crops(tmp_path):
    import cv2

    from motivnet_edge.edge.data.synthetic import synth_faces

    for i, face in enumerate(synth_faces(14, seed=4)):
        folder = tmp_path / AFFECTNET7[face.label].lower()
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), face.image)
    data = collect(labelled=tmp_path, progress=False)
    assert data.labelled and len(data) >= 10


def test_torchscript_teacher_with_label_map(tmp_path):
    path = tmp_path / "teacher.pt"
    torch.jit.script(FixedLogits([float(i) for i in range(7)]).eval()).save(str(path))
    teacher = load_teacher(path, spec(FER2013, height=32, width=32, mean=(0, 0, 0),
                                      std=(1, 1, 1)))
    out = teacher.predict([blank(40)])
    assert [FER2013[int(v)] for v in out[0]] == list(AFFECTNET7)
    assert teacher.identity["kind"] == "torchscript"


def test_a_teacher_exported_with_its_softmax_gives_log_probabilities(tmp_path):
    logits = [0.5, 2.0, -1.0, 0.0, 1.5, -0.5, 0.2]
    path = tmp_path / "softmax_teacher.onnx"
    model = torch.nn.Sequential(FixedLogits(logits), torch.nn.Softmax(dim=1)).eval()
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    teacher = load_teacher(path, spec(AFFECTNET7, mean=(0, 0, 0), std=(1, 1, 1)))
    out = teacher.predict([blank(20)])
    # log-softmax of the logits: the same decision and the same logit differences, so the
    # temperature softens them as it would the logits
    expected = torch.log_softmax(torch.tensor([logits]), 1).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # logits that merely look small are left alone
    plain = tmp_path / "logit_teacher.onnx"
    torch.onnx.export(FixedLogits([0.1] * 6 + [0.3]).eval(), (torch.zeros(1, 3, 16, 16),),
                      str(plain), input_names=["x"], dynamo=False)
    same = load_teacher(plain, spec(AFFECTNET7, mean=(0, 0, 0), std=(1, 1, 1)))
    np.testing.assert_allclose(same.predict([blank(20)]),
                               [[0.1] * 6 + [0.3]], atol=1e-6)


def test_tflite_teacher_with_softmax_reads_its_input_and_orders_its_classes(tmp_path):
    import litert_torch

    fer_logits = [float(i) / 2 for i in range(7)]  # the higher the FER2013 index, the likelier
    path = tmp_path / "fer_teacher.tflite"
    model = torch.nn.Sequential(FixedLogits(fer_logits), torch.nn.Softmax(dim=1)).eval()
    litert_torch.convert(model, (torch.zeros(1, 24, 24, 1),)).export(str(path))
    teacher = load_teacher(path, spec(FER2013, mean=(127.5,) * 3, std=(127.5,) * 3))
    crop = teacher.crop
    assert (crop.height, crop.width, crop.color, crop.layout) == (24, 24, "gray", "nhwc")
    assert len(teacher.key) == 20  # the cache key serialises the spec read from the file
    out = teacher.predict([blank(30)])
    expected = torch.log_softmax(torch.tensor([fer_logits]), 1)[0].numpy()
    np.testing.assert_allclose(out[0], [expected[FER2013.index(c)] for c in AFFECTNET7],
                               atol=1e-4)


def test_an_onnx_teacher_runs_in_the_engine_asked_for_and_is_cached_apart(tmp_path):
    path = tmp_path / "teacher.onnx"
    torch.onnx.export(TinyNet().eval(), (torch.zeros(1, 3, 24, 24),), str(path),
                      input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    given = spec(AFFECTNET7, mean=(127.5,) * 3, std=(127.5,) * 3)
    default = load_teacher(path, given)
    openvino = load_teacher(path, given, engine="openvino")
    assert default.engine.name == "onnxruntime" and openvino.engine.name == "openvino"
    assert openvino.identity["engine"] == "openvino" and "engine" not in default.identity
    assert openvino.key != default.key  # its outputs are cached apart
    assert load_teacher(path, given, engine="onnxruntime").key == default.key
    crops = [FaceImage(np.random.default_rng(i).integers(0, 255, (30, 30, 3), np.uint8))
             for i in range(4)]
    np.testing.assert_allclose(openvino.predict(crops), default.predict(crops), atol=1e-3)
    with pytest.raises(MotivnetError, match="engine litert cannot run a onnx file"):
        load_teacher(path, given, engine="litert")
