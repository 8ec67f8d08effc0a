"""YuNet, the shipped face detector, on the engines the classifier runs on.

OpenCV's DNN module (``cv2.FaceDetectorYN``) is the reference and the fallback; ONNX Runtime
and OpenVINO run the same network faster on the same CPU. Each runner takes a BGR frame, pads
it to a multiple of 32 at the bottom and right as OpenCV does, runs the raw network and decodes
its twelve outputs (class, objectness, box and five landmarks at strides 8, 16 and 32) in numpy
into OpenCV's rows: x, y, w, h, ten landmark coordinates, score. NMS is OpenCV's own
(``cv2.dnn.NMSBoxes``), so the faces are the ones OpenCV would give.

The shipped file's input is fixed at 640x640 and ONNX Runtime's shape inference refuses to run
it at another size. The files the other engines run are made from it by ``motivnet-edge
detector`` (:mod:`motivnet_edge.compress.detector_stage`) into a detector folder with a
``manifest.json``, as a compress output folder holds the classifier: the network with its input
size left open (role ``detector-onnx``: ONNX Runtime, OpenVINO) and one TFLite file per input
size (role ``detector-tflite``: LiteRT), each entry with its sha256 (checked when the file is
opened) and its gate figures against OpenCV's YuNet. The package ships one (``models/detector``);
``detector.model`` may name another.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.targets.engine import ENGINES, runtime_installed
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.manifest import Manifest
from motivnet_edge.targets.metadata import check_manifest

log = logging.getLogger(__name__)
MODELS = Path(__file__).resolve().parent / "models"
# YuNet 2023mar from the OpenCV Zoo (MIT; notice and sha256 beside it in edge/models/)
SHIPPED_YUNET = MODELS / "face_detection_yunet_2023mar.onnx"
SHIPPED_YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
# the files made from it for the other engines, with their manifest
DETECTOR_FOLDER = MODELS / "detector"
ONNX_ROLE, TFLITE_ROLE = "detector-onnx", "detector-tflite"
STRIDES = (8, 16, 32)
DIVISOR = 32
# where the network runs: OpenCV's DNN module (the reference), or the classifier's engines
YUNET_ENGINES = ("opencv", "onnxruntime", "openvino", "litert")


def padded(w: int, h: int) -> tuple[int, int]:
    """The network's input size for a ``w`` x ``h`` frame: each side up to a multiple of 32."""
    return (w - 1) // DIVISOR * DIVISOR + DIVISOR, (h - 1) // DIVISOR * DIVISOR + DIVISOR


def decode(outputs: dict[str, np.ndarray], pad_w: int, pad_h: int, score_threshold: float,
           nms_threshold: float, top_k: int) -> np.ndarray:
    """OpenCV's rows (N, 15) from YuNet's raw outputs for an input of ``pad_w`` x ``pad_h``:
    per stride, each grid cell's score is sqrt(class x objectness) (each clipped to 0..1), its
    box centre and landmarks are offsets from the cell in strides, its size exp() strides.
    Only cells scoring above the threshold are decoded (NMS would drop the others)."""
    boxes, marks, scores = [], [], []
    for s in STRIDES:
        cols, rows = pad_w // s, pad_h // s
        cls = np.clip(outputs[f"cls_{s}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{s}"].reshape(-1), 0.0, 1.0)
        if len(cls) != rows * cols:
            raise MotivnetError(f"YuNet gave {len(cls)} cells at stride {s} for a {pad_w}x"
                                f"{pad_h} input, not {rows * cols}")
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score > score_threshold)
        box = outputs[f"bbox_{s}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{s}"].reshape(-1, 5, 2)[keep]
        r, c = np.divmod(keep, cols)
        cell = np.stack([c, r], 1).astype(np.float32)
        size = np.exp(box[:, 2:4]) * s
        boxes.append(np.concatenate([(cell + box[:, :2]) * s - size / 2, size], 1))
        marks.append(((kps + cell[:, None, :]) * s).reshape(-1, 10))
        scores.append(score[keep])
    box, mark, score = (np.concatenate(v).astype(np.float32) for v in (boxes, marks, scores))
    if not len(score):
        return np.zeros((0, 15), np.float32)
    keep = np.asarray(cv2.dnn.NMSBoxes(box.tolist(), score.tolist(), score_threshold,
                                       nms_threshold, top_k=top_k), np.int64).reshape(-1)
    return np.concatenate([box[keep], mark[keep], score[keep, None]], 1)


class OpenCvYuNet:
    """The reference: ``cv2.FaceDetectorYN`` in OpenCV's DNN module."""

    engine = "opencv"

    def __init__(self, path: Path, score_threshold: float, nms_threshold: float, top_k: int,
                 threads: int | None = None) -> None:
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                  nms_threshold, top_k)
        except cv2.error as exc:
            raise MotivnetError(f"face detector model {path} is not a YuNet model: {exc}") \
                from exc
        self._size: tuple[int, int] | None = None
        self.path = Path(path)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """OpenCV's rows (N, 15) for a BGR frame."""
        h, w = frame.shape[:2]
        if self._size != (w, h):
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, rows = self._net.detect(frame)
        return np.zeros((0, 15), np.float32) if rows is None else rows


class _RawYuNet:
    """A runner of the raw network: the frame padded, run, decoded."""

    engine = "raw"

    def __init__(self, path: Path, score_threshold: float, nms_threshold: float, top_k: int,
                 threads: int | None = None) -> None:
        self.thresholds = (score_threshold, nms_threshold, top_k)
        self.path, self.threads = Path(path), threads
        self._open()

    def _open(self) -> None:  # pragma: no cover - each runner implements it
        raise NotImplementedError

    def _infer(self, blob: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """OpenCV's rows (N, 15) for a BGR frame."""
        h, w = frame.shape[:2]
        pw, ph = padded(w, h)
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = frame.transpose(2, 0, 1)
        return decode(self._infer(blob), pw, ph, *self.thresholds)


class OrtYuNet(_RawYuNet):
    """YuNet in ONNX Runtime on the CPU (idle threads do not spin, as for the classifier)."""

    engine = "onnxruntime"

    def _open(self) -> None:
        from motivnet_edge.targets.engines.onnxruntime import cpu_session, session_options

        self._session = cpu_session(self.path, session_options(self.threads))
        self._input = self._session.get_inputs()[0].name
        shape = self._session.get_inputs()[0].shape
        if all(isinstance(d, int) for d in shape[2:]):
            raise MotivnetError(f"face detector model {self.path} takes only {shape[3]}x"
                                f"{shape[2]} input: ONNX Runtime needs YuNet with its input "
                                f"size left open (detector.engine: opencv runs this file)")
        self._names = [o.name for o in self._session.get_outputs()]

    def _infer(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._session.run(None, {self._input: blob}), strict=True))


class OpenVinoYuNet(_RawYuNet):
    """YuNet in OpenVINO on the CPU, compiled once per input size (f32, LATENCY)."""

    engine = "openvino"

    def _open(self) -> None:
        import openvino as ov

        from motivnet_edge.targets.engines.openvino import default_precision

        self._precision = default_precision("CPU")
        self._core = ov.Core()
        self._model = self._core.read_model(str(self.path))
        self._compiled: dict[tuple[int, int], object] = {}

    def _request(self, ph: int, pw: int):
        if (ph, pw) not in self._compiled:
            model = self._model.clone()
            model.reshape({model.input(0).any_name: [1, 3, ph, pw]})
            config = {"PERFORMANCE_HINT": "LATENCY",
                      "INFERENCE_PRECISION_HINT": self._precision}
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = self.threads
            compiled = self._core.compile_model(model, "CPU", config)
            self._compiled[(ph, pw)] = (compiled, compiled.create_infer_request())
        return self._compiled[(ph, pw)]

    def _infer(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        compiled, request = self._request(*blob.shape[2:])
        result = request.infer({0: blob})
        return {_output_name(out.get_names()): result[out] for out in compiled.outputs}


OUTPUTS = {f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES}


def _output_name(names: set[str]) -> str:
    """YuNet's name for an output among the names OpenVINO gives its tensor."""
    return next((n for n in names if n in OUTPUTS), min(names))


def folder_files(folder: Path, role: str) -> dict[tuple[int, int] | None, Path]:
    """The files of a detector folder's manifest with ``role``, by input size (width,
    height; None for the any-size file)."""
    files = Manifest.read(folder).files
    return {tuple(e["input"]) if e.get("input") else None: Path(folder) / e["path"]
            for e in files if e.get("role") == role}


def checked(path: Path) -> Path:
    """``path``, its sha256 checked against its folder's manifest (which must list it)."""
    if check_manifest(path) is None:
        raise MotivnetError(f"face detector file {path} is not listed in its folder's manifest")
    return path


def detector_file(folder: Path) -> Path:
    """The any-size YuNet of a detector folder (ONNX Runtime, OpenVINO), checked."""
    found = folder_files(folder, ONNX_ROLE).get(None)
    if found is None:
        raise MotivnetError(f"face detector folder {folder} lists no {ONNX_ROLE} file")
    return checked(found)


class LiteRtYuNet(_RawYuNet):
    """YuNet in LiteRT (XNNPACK), whose inputs cannot be resized: from a detector folder, the
    file made for the frame's padded size (a frame of a size none was made for runs in OpenCV,
    said once in the log); from a file of the user's own, the frame placed at its top left."""

    engine = "litert"

    def _open(self) -> None:
        self._nets: dict[tuple[int, int], tuple] = {}
        self._fallback: OpenCvYuNet | None = None
        if self.path.is_dir():  # a detector folder's files, opened when a frame of their size
            self.files = folder_files(self.path, TFLITE_ROLE)
        else:
            self.files = {}
            net = self._interpreter(self.path)
            self._nets[net[0]] = net

    def _interpreter(self, path: Path) -> tuple:
        from motivnet_edge.targets.engines.litert import interpreter_class

        net = interpreter_class()(model_path=str(path), num_threads=self.threads or None)
        net.allocate_tensors()
        spec = net.get_input_details()[0]
        n, h, w, c = (int(v) for v in spec["shape"])
        if (n, c) != (1, 3) or w % DIVISOR or h % DIVISOR:
            raise MotivnetError(f"face detector model {path}: input {spec['shape']} is not an "
                                f"NHWC YuNet input")
        return (w, h), net, spec["index"], net.get_output_details()[0]["index"]

    def _net(self, pw: int, ph: int):
        if (pw, ph) not in self._nets and (pw, ph) in self.files:
            self._nets[(pw, ph)] = self._interpreter(checked(self.files[(pw, ph)]))
        if (pw, ph) in self._nets or self.files:
            return self._nets.get((pw, ph))
        return next(iter(self._nets.values()))  # the user's one file

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """OpenCV's rows (N, 15) for a BGR frame."""
        h, w = frame.shape[:2]
        net = self._net(*padded(w, h))
        if net is None:
            if self._fallback is None:
                log.info("LiteRT face detector: no file for %dx%d frames; they run in OpenCV",
                         w, h)
                self._fallback = OpenCvYuNet(SHIPPED_YUNET, *self.thresholds)
            return self._fallback.detect(frame)
        (iw, ih), interpreter, inp, out = net
        if w > iw or h > ih:
            raise MotivnetError(f"a {w}x{h} frame does not fit the LiteRT face detector's "
                                f"{iw}x{ih} input: set detector.max_side to fit")
        blob = np.zeros((1, ih, iw, 3), np.float32)
        blob[0, :h, :w] = frame
        interpreter.set_tensor(inp, blob)
        interpreter.invoke()
        rows = interpreter.get_tensor(out)[0]
        outputs, start = {}, 0
        for s in STRIDES:
            cells = (iw // s) * (ih // s)
            part, start = rows[start:start + cells], start + cells
            for name, a, b in (("cls", 0, 1), ("obj", 1, 2), ("bbox", 2, 6), ("kps", 6, 16)):
                outputs[f"{name}_{s}"] = part[:, a:b]
        return decode(outputs, iw, ih, *self.thresholds)


RUNNERS = {"opencv": OpenCvYuNet, "onnxruntime": OrtYuNet, "openvino": OpenVinoYuNet,
           "litert": LiteRtYuNet}


def shipped(engine: str) -> Path:
    """The shipped YuNet file ``engine`` runs (OpenCV: the published one, checked against its
    sha256; LiteRT: the detector folder, each file checked when first used; the others: the
    folder's network with its input size left open, checked)."""
    if engine == "litert":
        return DETECTOR_FOLDER
    if engine != "opencv":
        return detector_file(DETECTOR_FOLDER)
    if not SHIPPED_YUNET.is_file() or sha256_file(SHIPPED_YUNET) != SHIPPED_YUNET_SHA256:
        raise MotivnetError(f"the shipped YuNet file {SHIPPED_YUNET} is missing or changed "
                            f"(reinstall motivnet-edge, or set detector.model)")
    return SHIPPED_YUNET


def yunet_engine(wanted: str, preferred: str | None = None) -> str:
    """The engine YuNet runs in: ``wanted``, or for ``auto`` the classifier's engine
    (``preferred``) where it can run YuNet and its runtime is installed, else OpenCV."""
    if wanted != "auto":
        if wanted not in YUNET_ENGINES:
            raise MotivnetError(f"detector engine {wanted!r} is not one of auto, "
                                f"{', '.join(YUNET_ENGINES)}")
        return wanted
    if preferred in RUNNERS and preferred != "opencv" and runtime_installed(preferred):
        return preferred
    return "opencv"


def open_yunet(engine: str, model: str | os.PathLike | None, score_threshold: float,
               nms_threshold: float, top_k: int, threads: int | None = None):
    """A YuNet runner in ``engine`` on ``model`` (None: the shipped file for that engine)."""
    if engine not in RUNNERS:
        raise MotivnetError(f"detector engine {engine!r} is not one of {', '.join(RUNNERS)}")
    if engine != "opencv" and not runtime_installed(engine):
        raise MotivnetError(f"detector engine {engine} is not installed here: pip install "
                            f"'motivnet-edge[{ENGINES[engine].extra}]' or set "
                            f"detector.engine: opencv")
    path = Path(model) if model is not None else shipped(engine)
    if not path.exists():
        raise MotivnetError(f"face detector model {path} does not exist")
    if path.is_dir() and engine in ("onnxruntime", "openvino"):
        path = detector_file(path)  # a folder made by motivnet-edge detector
    elif path.is_dir() and engine == "opencv":
        raise MotivnetError(f"face detector model {path} is a folder: OpenCV's DNN runs one "
                            f"YuNet .onnx file")
    try:
        return RUNNERS[engine](path, score_threshold, nms_threshold, top_k, threads)
    except (MotivnetError, ImportError):
        raise
    except Exception as exc:  # the runtime refused the file
        raise MotivnetError(f"{engine} cannot load face detector model {path}: "
                            f"{(str(exc).splitlines() or [''])[0][:160]}") from exc


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4: x, y, w, h) with every box of ``b`` (M, 4)."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def agreement(reference: list[np.ndarray], candidate: list[np.ndarray],
              iou: float = 0.9) -> dict:
    """How a detector's rows (one array per frame) agree with the reference's: the share of
    reference faces matched at ``iou`` or more, the worst and mean landmark error of a matched
    face as a share of its size (the mean of its box sides), the share of the candidate's
    faces that match none, and the share of frames with the same number of faces."""
    faces = matched = extra = found = same = 0
    errors: list[float] = []
    for ref, got in zip(reference, candidate, strict=True):
        faces, found, same = faces + len(ref), found + len(got), same + (len(ref) == len(got))
        if not len(ref) or not len(got):
            extra += len(got)
            continue
        overlap = _iou(ref[:, :4], got[:, :4])
        best = overlap.argmax(1)
        hit = overlap[np.arange(len(ref)), best] >= iou
        matched += int(hit.sum())
        extra += len(got) - len(set(best[hit].tolist()))
        for i in np.flatnonzero(hit):
            size = (ref[i, 2] + ref[i, 3]) / 2
            dist = np.linalg.norm((ref[i, 4:14] - got[best[i], 4:14]).reshape(5, 2), axis=1)
            errors.append(float(dist.max() / max(size, 1e-9)))
    return {"frames": len(reference), "faces": faces, "matched": matched / faces if faces else 1.0,
            "landmark_error_max": max(errors, default=0.0),
            "landmark_error_mean": float(np.mean(errors)) if errors else 0.0,
            "extra": extra / found if found else 0.0,
            "same_count": same / len(reference) if reference else 1.0}


# a detector file passes when it finds what OpenCV's YuNet finds (issue 30's gate)
GATE = {"matched": 0.99, "landmark_error_max": 0.015, "extra": 0.01}


def passes(scores: dict) -> bool:
    """The gate: matched faces >= 99 % at IoU 0.9, no landmark off by more than 1.5 % of its
    face's size, at most 1 % of the candidate's faces matching none."""
    return scores["matched"] >= GATE["matched"] and \
        scores["landmark_error_max"] <= GATE["landmark_error_max"] and \
        scores["extra"] <= GATE["extra"]
