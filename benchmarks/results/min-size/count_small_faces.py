"""How many photos' largest face is 24-31 px (kept at min_size 24, dropped at 32) in the
detector compress and bench use, on faces-dev and faces-unlabelled."""
import sys
from pathlib import Path

import cv2

from motivnet_edge.compress.distil.data import _find_face
from motivnet_edge.edge.detect import FaceDetector

for folder in sys.argv[1:]:
    files = sorted(p for p in Path(folder).rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    det = FaceDetector(min_size=24)
    n = found = small = 0
    for p in files:
        img = cv2.imread(str(p))
        if img is None:
            continue
        n += 1
        face, frame = _find_face(det, img)
        if face is None:
            continue
        found += 1
        side = min(face.box[2], face.box[3])
        if side < 32:
            small += 1
    print(f"{folder}: {n} photos, {found} with a face at min_size 24, {small} of them 24-31 px "
          f"(lost at 32)", flush=True)
