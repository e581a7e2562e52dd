"""BlazeFace face detection (MediaPipe short- and full-range models) with SSD anchor decoding.

The anchor layouts follow MediaPipe's ``SsdAnchorsCalculator`` options for these two graphs: layers
that share a stride share a grid, every anchor is centred in its cell and has a fixed unit size, and
the short-range model adds an interpolated anchor per layer (2 per layer, 6 per 16-stride cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class DetectorConfig:
    model: str
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated_scale_aspect_ratio=1.0, 1 without
    min_score: float


SHORT_RANGE = DetectorConfig("face_detection_short_range", 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = DetectorConfig("face_detection_full_range_sparse", 192, (4,), 1, 0.5)
CONFIGS = {c.model: c for c in (SHORT_RANGE, FULL_RANGE)}


def ssd_anchors(size: int, strides: tuple[int, ...], anchors_per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2) in 0..1, in the order the model emits its boxes."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = int(np.ceil(size / strides[i]))
        per_cell = (j - i) * anchors_per_layer
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


@dataclass
class Detection:
    """One face: box (x0, y0, x1, y1) and six keypoints (right eye, left eye, nose tip, mouth centre,
    right ear, left ear — the subject's right, i.e. the image's left) in frame pixels."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou_threshold: float = 0.3,
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged (by score), which steadies the box
    far more than keeping the single best candidate."""
    order = np.argsort(-scores)
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):  # loops over *candidates above threshold* (a handful), not pixels
        if not alive[i]:
            continue
        lt = np.maximum(boxes[i, :2], boxes[:, :2])
        rb = np.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(area[i] + area - inter, 1e-9)
        group = alive & (iou > iou_threshold)
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), (kps[group] * w[:, :, None]).sum(0) / w.sum(),
                    float(scores[i])))
        alive &= ~group
    return out


class FaceDetector:
    """``get(rgb) -> list[Detection]`` on the whole frame, letterboxed to the model's square input.

    Loaded by the model pool under either detector's manifest name, e.g.
    ``pool.load(FaceDetector, SHORT_RANGE.model)``; the name picks the anchor layout.
    """

    model_name: str | None = None  # two models share this class: the pool is told which

    def __init__(self, file: Any, session: Any) -> None:
        if file.name not in CONFIGS:
            raise ValueError(f"{file.name!r} is not a face detection model (known: {', '.join(CONFIGS)})")
        self.config = CONFIGS[file.name]
        self.path = file.path
        self.model = session
        self.anchors = ssd_anchors(self.config.size, self.config.strides, self.config.anchors_per_layer)

    def prepare(self) -> FaceDetector:
        n = self.model.outputs[0]["shape"][1]
        if n != len(self.anchors):
            raise RuntimeError(f"{self.config.model}: model emits {n} boxes but {len(self.anchors)} "
                               "anchors were generated")
        return self

    def get(self, rgb: np.ndarray, min_score: float | None = None) -> list[Detection]:
        size = self.config.size
        h, w = rgb.shape[:2]
        scale = size / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        px, py = (size - nw) // 2, (size - nh) // 2
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        x = canvas.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        outputs = self.model.run(x)
        regressors, logits = (outputs if outputs[0].shape[-1] == 16 else outputs[::-1])
        reg, logit = regressors[0], logits[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logit, -80.0, 80.0)))
        keep = scores >= (self.config.min_score if min_score is None else min_score)
        if not keep.any():
            return []
        reg, scores, anchors = reg[keep] / size, scores[keep], self.anchors[keep]
        centre = reg[:, :2] + anchors
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        # back from letterboxed unit coordinates to frame pixels
        offset = np.array([px, py], np.float32)
        to_px = lambda p: (p * size - offset) / scale  # noqa: E731
        result = []
        for box, kp, score in weighted_nms(boxes, scores, kps):
            result.append(Detection(np.concatenate([to_px(box[:2]), to_px(box[2:])]), to_px(kp), score))
        return result
