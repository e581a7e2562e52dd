"""468 face landmarks (MediaPipe face_landmark) on rotation-aligned square crops.

The model expects an upright face filling the crop the way MediaPipe's graphs frame it: a square of
1.5x the face box, rotated so the eyes are level. The same framing is rebuilt from the last frame's
landmarks when tracking, so the crop follows head roll instead of losing the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facefusion_obs.faces.detector import Detection

INPUT_SIZE = 192
ROI_SCALE = 1.5
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # subject's right/left eye outer corners


@dataclass(frozen=True)
class Roi:
    """A rotated square in frame pixels: centre, side length, rotation (radians, counter-clockwise
    of the image x axis that the face's eye line makes)."""

    cx: float
    cy: float
    size: float
    angle: float

    def crop_to_frame(self, out_size: int = INPUT_SIZE) -> np.ndarray:
        """2x3 affine mapping crop pixels to frame pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = self.size / out_size
        rot = np.array([[c, -s], [s, c]]) * k
        t = np.array([self.cx, self.cy]) - rot @ np.array([out_size / 2, out_size / 2])
        return np.hstack([rot, t[:, None]]).astype(np.float64)

    def box(self) -> np.ndarray:
        h = self.size / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h])


def _eye_angle(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    d = left_eye - right_eye
    return float(np.arctan2(d[1], d[0]))


def roi_from_detection(det: Detection) -> Roi:
    angle = _eye_angle(det.keypoints[0], det.keypoints[1])
    cx, cy = (det.box[:2] + det.box[2:]) / 2
    size = float(max(det.box[2:] - det.box[:2])) * ROI_SCALE
    return Roi(float(cx), float(cy), size, angle)


def roi_from_landmarks(points: np.ndarray) -> Roi:
    """The crop for the next frame: the landmarks' box measured in the face's own (rolled) frame."""
    xy = points[:, :2]
    angle = _eye_angle(xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER])
    c, s = np.cos(angle), np.sin(angle)
    local = xy @ np.array([[c, -s], [s, c]])  # rotate by -angle
    lo, hi = local.min(0), local.max(0)
    centre_local = (lo + hi) / 2
    centre = np.array([[c, -s], [s, c]]) @ centre_local
    return Roi(float(centre[0]), float(centre[1]), float(max(hi - lo)) * ROI_SCALE, angle)


class FaceLandmarker:
    """``get(rgb, roi) -> (landmarks (468, 3) in frame pixels, presence 0..1)``; ``pool.load(FaceLandmarker)``."""

    model_name = "face_landmark"

    def __init__(self, file: Any, session: Any) -> None:
        self.path = file.path
        self.model = session

    def prepare(self) -> FaceLandmarker:
        if self.model.input_shapes[0] != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"{self.path}: not a face landmark model (input {self.model.input_shapes[0]}, "
                             f"expected (1, {INPUT_SIZE}, {INPUT_SIZE}, 3))")
        return self

    def get(self, rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        a = roi.crop_to_frame()
        crop = cv2.warpAffine(rgb, a, (INPUT_SIZE, INPUT_SIZE),
                              flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        x = crop.astype(np.float32)[None] * (1.0 / 255.0)
        outs = self.model.run(x)
        raw, flag = (outs if outs[0].size == 1404 else outs[::-1])
        pts = raw.reshape(468, 3).astype(np.float64)
        out = np.empty_like(pts)
        out[:, :2] = pts[:, :2] @ a[:, :2].T + a[:, 2]
        out[:, 2] = pts[:, 2] * (roi.size / INPUT_SIZE)
        presence = float(1.0 / (1.0 + np.exp(-np.clip(flag.ravel()[0], -80.0, 80.0))))
        return out, presence
