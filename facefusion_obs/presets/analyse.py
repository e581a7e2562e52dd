"""From a photo to a preset's face data: find the face, its 468 landmarks, a texture and a thumbnail."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facefusion_obs.faces.detector import FULL_RANGE, SHORT_RANGE, FaceDetector
from facefusion_obs.faces.landmarker import FaceLandmarker, roi_from_detection, roi_from_landmarks
from facefusion_obs.presets import files
from facefusion_obs.presets.names import PresetError

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool

TEXTURE_SIZE = 384
THUMB_SIZE = 128
MAX_SOURCE_SIDE = 2048
NOSE_TIP, RIGHT_CHEEK, LEFT_CHEEK = 1, 234, 454


@dataclass
class SourcePhoto:
    """One analysed photo: the image (RGB) and its chosen face's landmarks in image pixels."""

    rgb: np.ndarray
    landmarks: np.ndarray  # (468, 3)
    faces_found: int

    @property
    def frontality(self) -> float:
        """1 for a frontal face, towards 0 as it turns (nose-to-cheek distance balance)."""
        p = self.landmarks[:, :2]
        a = np.linalg.norm(p[NOSE_TIP] - p[RIGHT_CHEEK])
        b = np.linalg.norm(p[NOSE_TIP] - p[LEFT_CHEEK])
        return float(1.0 - abs(a - b) / max(a + b, 1e-6))


def read_rgb(path: Path) -> np.ndarray:
    """Decode a photo to RGB uint8 (downscaled to at most 2048 px); its size is checked from its header
    before decoding, and every problem (missing, empty, not an image, too large) is a BadFile naming it."""
    path = Path(path)
    files.check_photo_size(path)
    rgb = files.decode_rgb(path, files.read_bytes(path, files.MAX_PHOTO_BYTES, follow_links=True))
    scale = MAX_SOURCE_SIDE / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return rgb


def analyse_photo(rgb: np.ndarray, label: str, face_index: int | None = None,
                  pool: ModelPool | None = None) -> SourcePhoto:
    """Landmarks of one face in ``rgb``. Several faces need ``face_index`` (0 = largest).

    The face models come from ``pool``; without one (``presets add`` on the command line) a pool is
    opened for this call and closed after it.
    """
    if pool is None:
        from facefusion_obs.runtime.pool import ModelPool

        with ModelPool() as own:
            return analyse_photo(rgb, label, face_index, own)
    found = (pool.load(FaceDetector, SHORT_RANGE.model).get(rgb)
             or pool.load(FaceDetector, FULL_RANGE.model).get(rgb))
    if not found:
        raise PresetError(f"no face found in {label}")
    found.sort(key=lambda d: -float(np.prod(d.box[2:] - d.box[:2])))
    if face_index is None and len(found) > 1:
        raise PresetError(f"{label} shows {len(found)} faces; choose one with --face INDEX "
                          f"(0 = largest ... {len(found) - 1} = smallest)")
    index = face_index or 0
    if not 0 <= index < len(found):
        raise PresetError(f"{label}: --face {index} is out of range (found {len(found)} faces)")
    marker = pool.load(FaceLandmarker)
    points, presence = marker.get(rgb, roi_from_detection(found[index]))
    for _ in range(2):  # re-frame on the landmarks, as tracking does, for the steadiest fit
        points, presence = marker.get(rgb, roi_from_landmarks(points))
    if presence < 0.5:
        raise PresetError(f"{label}: the face is too unclear for landmarks (presence {presence:.2f})")
    return SourcePhoto(rgb, points, len(found))


def face_texture(photo: SourcePhoto, size: int = TEXTURE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A square crop around the face (with margin for feathering) and the landmarks in its pixels."""
    xy = photo.landmarks[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    centre, side = (lo + hi) / 2, float(max(hi - lo)) * 1.25
    scale = size / side
    m = np.array([[scale, 0, size / 2 - centre[0] * scale], [0, scale, size / 2 - centre[1] * scale]])
    texture = cv2.warpAffine(photo.rgb, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    points = photo.landmarks.copy()
    points[:, :2] = xy * scale + m[:, 2]
    points[:, 2] *= scale
    return texture, points


def thumbnail(texture: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    return cv2.resize(texture, (size, size), interpolation=cv2.INTER_AREA)
