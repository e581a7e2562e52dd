"""The demo's footage: a real person on an unevenly lit green screen, and a virtual background.

The person is the man in the middle of insightface's ``t1.jpg`` (a real photo that reaches every
machine through the package index, like the models), cut along a hand-drawn head-and-shoulders
silhouette that the project's own person segmentation tightens. He sways and bobs gently, so the
demo shows tracking and a moving matte rather than a still. Alpha is known by construction, which
lets the tests check where the background must show through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facefusion_obs.demo.photos import sample_image
from facefusion_obs.presets.analyse import read_rgb

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool

SUBJECT_PHOTO = "t1.jpg"
FPS = 30
SIZE = (960, 540)  # width, height: light enough for a CPU, big enough to see the face
SCREEN_RGB = (0.17, 0.63, 0.28)  # a lit chroma-key green
CODEC = "mp4v"  # MPEG-4 Part 2: what opencv-python's bundled FFmpeg writes; OBS's ffmpeg_source plays it

# in t1.jpg (1280x886): the crop around the man in the middle, and his silhouette inside that crop
_CROP = (190, 566, 320, 700)  # y0, y1, x0, x1
_HEAD = ((214, 116), (72, 96))  # centre, half-axes
_BODY = np.array([(176, 186), (262, 196), (300, 232), (328, 256), (338, 300), (332, 400), (28, 400),
                  (26, 300), (40, 214), (104, 180)], np.float32)


class DemoClipError(RuntimeError):
    """The clip could not be written (codec or folder); the message names the file."""


@dataclass
class Subject:
    """The person, premultiplied colour (float32 0..1) and alpha, on the crop's grid."""

    premult: np.ndarray
    alpha: np.ndarray


def load_subject(pool: ModelPool) -> Subject:
    """Cut the person out of the photo: the silhouette sets where he may be, segmentation how far."""
    from facefusion_obs.matting.segmentation import SelfieSegmenter

    y0, y1, x0, x1 = _CROP
    crop = np.ascontiguousarray(read_rgb(sample_image(SUBJECT_PHOTO))[y0:y1, x0:x1])
    h, w = crop.shape[:2]
    shape = np.zeros((h * 4, w * 4), np.uint8)  # drawn 4x larger for anti-aliased edges
    (cx, cy), (rx, ry) = _HEAD
    cv2.ellipse(shape, (cx * 4, cy * 4), (rx * 4, ry * 4), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.fillPoly(shape, [(_BODY * 4).astype(np.int32)], 255, cv2.LINE_AA)
    shape = cv2.resize(shape, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    person = cv2.resize(pool.load(SelfieSegmenter).get(crop), (w, h), interpolation=cv2.INTER_LINEAR)
    person = np.clip((person - 0.25) / 0.5, 0.0, 1.0)
    alpha = cv2.GaussianBlur(shape * person, (0, 0), 0.8)
    alpha[-6:] = 1.0 * shape[-6:]  # the cut at the bottom leaves the frame; keep it solid
    rgb = crop.astype(np.float32) / 255.0
    return Subject(rgb * alpha[..., None], alpha.astype(np.float32))


def green_screen(width: int, height: int) -> np.ndarray:
    """The bare screen (float32 RGB 0..1): brighter on one side, darker corners, a hot spot."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width - 0.5, y / height - 0.5
    light = 0.96 + 0.22 * u - 0.10 * v - 0.5 * (u * u + v * v)
    light += 0.14 * np.exp(-((u + 0.25) ** 2 + (v + 0.2) ** 2) / 0.03)
    light -= 0.06 * np.exp(-(((u - 0.1) * np.cos(0.4) + v * np.sin(0.4)) * width / 12.0) ** 2)  # a crease
    return np.clip(light[..., None] * np.array(SCREEN_RGB, np.float32), 0.0, 1.0)


class ClipRenderer:
    """Frame ``t`` of the clip as RGB uint8, with its true alpha (float32 0..1)."""

    def __init__(self, pool: ModelPool, width: int = SIZE[0], height: int = SIZE[1],
                 subject: Subject | None = None) -> None:
        self.width, self.height = width, height
        subject = subject or load_subject(pool)
        scale = 0.9 * height / subject.alpha.shape[0]
        size = (round(subject.alpha.shape[1] * scale), round(subject.alpha.shape[0] * scale))
        spill_near_edge = np.exp(-cv2.distanceTransform(
            (subject.alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3) / 10.0)
        spill = (0.04 + 0.18 * spill_near_edge)[..., None] * np.array(SCREEN_RGB, np.float32)
        sprite = np.dstack([subject.premult + subject.alpha[..., None] * spill, subject.alpha])
        self.sprite = cv2.resize(sprite, size, interpolation=cv2.INTER_AREA)
        self.screen = green_screen(width, height)

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        sw, sh = self.sprite.shape[1], self.sprite.shape[0]
        phase = 2.0 * np.pi * t / (4.0 * FPS)  # one slow sway every four seconds
        x0 = (self.width - sw) / 2 + 0.06 * self.width * np.sin(phase)
        y0 = self.height - sh + 6.0 + 4.0 * np.sin(2.0 * phase)
        tilt = 2.0 * np.sin(phase + 0.6)  # degrees, around the bottom centre
        m = cv2.getRotationMatrix2D((sw / 2, sh), tilt, 1.0)
        m[:, 2] += (x0, y0)
        layer = cv2.warpAffine(self.sprite, m, (self.width, self.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = np.clip(layer[..., 3], 0.0, 1.0)
        noise = np.random.default_rng(t).normal(0.0, 1.5 / 255.0, layer[..., :3].shape).astype(np.float32)
        image = layer[..., :3] + (1.0 - alpha[..., None]) * self.screen + noise
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), alpha


def write_clip(path: Path, frames: int, renderer: ClipRenderer) -> Path:
    """Write ``frames`` frames as an mp4 that loops seamlessly (the sway period divides the length
    when ``frames`` is a multiple of four seconds; otherwise the loop jumps a little)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*CODEC), FPS, (renderer.width, renderer.height))
    if not writer.isOpened():
        raise DemoClipError(f"OpenCV cannot write {CODEC!r} video to {tmp} (is opencv-python installed "
                            "with its bundled FFmpeg?)")
    try:
        for t in range(frames):
            writer.write(np.ascontiguousarray(renderer.frame(t)[0][..., ::-1]))
    finally:
        writer.release()
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise DemoClipError(f"OpenCV wrote nothing to {tmp}")
    tmp.replace(path)
    return path


def virtual_background(width: int = SIZE[0], height: int = SIZE[1]) -> np.ndarray:
    """A calm studio backdrop (RGB uint8): a warm-to-cool gradient, soft bokeh lights, a floor line."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    top, bottom = np.array([38, 52, 96], np.float32), np.array([196, 112, 70], np.float32)
    image = top + (bottom - top) * (v**1.4)[..., None]
    image *= (1.0 - 0.35 * ((u - 0.5) ** 2 + (v - 0.45) ** 2))[..., None]
    rng = np.random.default_rng(7)
    glow = np.zeros((height, width), np.float32)
    for _ in range(26):
        cx, cy = rng.uniform(0, width), rng.uniform(0, 0.65 * height)
        r = rng.uniform(0.02, 0.07) * width
        glow += rng.uniform(0.25, 0.6) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    image += np.clip(glow, 0, 1.5)[..., None] * np.array([120, 110, 80], np.float32)
    floor = v > 0.78
    image[floor] *= 0.7
    return np.clip(image, 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    """RGB or RGBA uint8 to a PNG, atomically (OBS may be reading the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    order = [2, 1, 0, 3] if image.shape[2] == 4 else [2, 1, 0]
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[..., order])):
        raise DemoClipError(f"could not write {path}")
    tmp.replace(path)
    return path
