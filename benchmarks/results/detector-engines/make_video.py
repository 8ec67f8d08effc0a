"""A 640x480 MJPG video of real faces for `bench --e2e --video`: faces-dev photos set into
camera frames one to three at a time (edge/data/scenes.py: camera_frames), each frame held
for 10 frames while it drifts 2 px a frame, as people in front of a camera do.

python benchmarks/results/detector-engines/make_video.py ../shared/data/faces-dev/images OUT.avi
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.data.scenes import camera_frames

folder, out = Path(sys.argv[1]), sys.argv[2]
photos = [cv2.imread(str(p)) for p in sorted(folder.iterdir())[:90]]
writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
frames = 0
for frame in camera_frames([p for p in photos if p is not None], seed=1):
    for i in range(10):
        writer.write(np.roll(frame, 2 * i, axis=1))
        frames += 1
writer.release()
print(f"wrote {out}: {frames} frames")
