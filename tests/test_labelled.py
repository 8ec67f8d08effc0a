"""Labelled image sets: class folders and CSV, label synonyms, classes outside the model."""

import cv2
import numpy as np
import pytest

from motivnet_edge.edge.data.labelled import load_labelled
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, FER2013, canonical, reorder_index


def write_img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_class_folders_with_synonyms(tmp_path):
    for folder, n in [("happy", 2), ("Angry", 1), ("contempt", 3)]:
        for i in range(n):
            write_img(tmp_path / folder / f"{i}.png")
    data = load_labelled(tmp_path)
    labels = sorted(AFFECTNET7[k] for k in data.labels)
    assert labels == ["Anger", "Happiness", "Happiness"]
    assert data.skipped["Contempt"] == 3


def test_csv_layout_resolves_images_folder(tmp_path):
    write_img(tmp_path / "images" / "a.jpg")
    write_img(tmp_path / "images" / "b.jpg")
    (tmp_path / "labels.csv").write_text("image,emotion\na.jpg,SADNESS\nb.jpg,surprised\n")
    data = load_labelled(tmp_path)
    assert [AFFECTNET7[k] for k in data.labels] == ["Sadness", "Surprise"]
    assert all(p.is_file() for p in data.paths)


def test_unknown_label_names_file_and_line(tmp_path):
    (tmp_path / "labels.csv").write_text("image,emotion\na.jpg,happy\nb.jpg,bored\n")
    with pytest.raises(MotivnetError, match=r"labels.csv line 3.*'bored'"):
        load_labelled(tmp_path / "labels.csv")


def test_empty_set_is_an_error(tmp_path):
    with pytest.raises(MotivnetError, match="no images"):
        load_labelled(tmp_path)


def test_reorder_fer2013_into_affectnet():
    probs_fer = np.arange(7.0)  # value = FER2013 index
    idx = reorder_index(FER2013, AFFECTNET7)
    reordered = probs_fer[idx]
    assert [FER2013[int(v)] for v in reordered] == list(AFFECTNET7)
    assert canonical("happy") == "Happiness"
