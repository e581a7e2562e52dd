"""Synthetic green- and blue-screen footage with alpha known by construction.

The subject is the astronaut photograph scikit-image ships (real skin, hair and fabric texture), taken
from the pinned wheel by ``demo/photos.py`` (scikit-image itself is not needed),
cut along a hand-drawn person silhouette. Each frame is composited exactly as a camera would see
it: I = alpha·F_spill + (1 - alpha)·screen + noise, where

* alpha has anti-aliased and softly defocused edges, thin hair strands of fractional opacity, and
  motion blur (the premultiplied colour and alpha are averaged over the shutter interval);
* the screen has a lighting gradient, vignetting, a hot spot and fabric creases, and every frame
  gets fresh sensor noise;
* F_spill is the true foreground F plus green (or blue) light bounced from the screen, strongest
  near the outline; F without spill is the truth a despiller should recover;
* the ``green-shirt`` sequence dresses the subject in a desaturated green top, which a pure chroma
  key cannot tell from the screen and the person prior must save.

Nothing in the worker imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# screen colours in 0..1 RGB: a typical lit chroma-key green and blue fabric
SCREENS = {"green": (0.16, 0.62, 0.27), "blue": (0.09, 0.25, 0.70)}
SEQUENCES = ("green", "green-shirt", "blue")

# silhouette of the astronaut photo (512x512 coordinates): head ellipse and body polygon
_HEAD = ((226.0, 98.0), (70.0, 84.0))
_BODY = np.array([(112, 205), (124, 172), (160, 150), (290, 150), (303, 176), (307, 216), (300, 250),
                  (340, 280), (356, 310), (362, 360), (364, 512), (22, 512), (24, 330), (40, 275),
                  (90, 245), (112, 240)], dtype=np.float32)
_SUPER = 4  # supersampling of the silhouette and hair strands


@dataclass
class Sequence:
    """Frames (uint8 RGB), true alpha (float32 0..1) and true foreground colour (float32 0..1)."""

    name: str
    key: str
    frames: list[np.ndarray] = field(default_factory=list)
    alpha: list[np.ndarray] = field(default_factory=list)
    foreground: list[np.ndarray] = field(default_factory=list)


def _astronaut() -> np.ndarray:
    from facefusion_obs.demo.photos import astronaut

    return astronaut().astype(np.float32) / 255.0


def _sprite(size: int, rng: np.random.Generator, shirt: bool) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour (size, size, 3) and alpha (size, size) of the subject, unmoved."""
    # everything is drawn once at _SUPER times the output size, in the photo's 512-pixel coordinates
    big = size * _SUPER
    k = big / 512.0
    mask = np.zeros((big, big), np.uint8)
    (cx, cy), (rx, ry) = _HEAD
    cv2.ellipse(mask, (int(cx * k), int(cy * k)), (int(rx * k), int(ry * k)), 0, 0, 360, 255, -1,
                cv2.LINE_AA)
    cv2.fillPoly(mask, [(_BODY * k).astype(np.int32)], 255, cv2.LINE_AA)
    # defocus: the shoulders and arms sit behind the focal plane, so their edge is softer
    soft = cv2.GaussianBlur(mask, (0, 0), 1.2 * k)
    yy = np.linspace(0.0, 1.0, big, dtype=np.float32)[:, None]
    body_alpha = np.where(yy > 0.45, soft, cv2.GaussianBlur(mask, (0, 0), 0.4 * k)) / 255.0

    hair = np.zeros((big, big), np.float32)
    for _ in range(70):
        angle = rng.uniform(np.pi * 1.05, np.pi * 1.95)
        root = np.array([cx + 0.93 * rx * np.cos(angle), cy + 0.93 * ry * np.sin(angle)])
        direction = np.array([np.cos(angle), np.sin(angle)]) + rng.normal(0.0, 0.35, 2)
        length = rng.uniform(14.0, 42.0)
        bend = rng.normal(0.0, 10.0, 2)
        t = np.linspace(0.0, 1.0, 24)[:, None]
        pts = root + direction * length * t + bend * t * t
        layer = np.zeros_like(mask)
        thickness = int(rng.integers(2, 6))  # 0.5..1.25 px at 512, thinner still once scaled
        cv2.polylines(layer, [(pts * k).astype(np.int32)], False, 255, max(1, round(thickness * k / _SUPER)),
                      cv2.LINE_AA)
        opacity = rng.uniform(0.35, 0.85)
        hair = 1.0 - (1.0 - hair) * (1.0 - opacity * layer / 255.0)

    photo = cv2.resize(_astronaut(), (big, big), interpolation=cv2.INTER_LINEAR)
    if shirt:
        lum = photo @ np.array([0.3, 0.55, 0.15], np.float32)
        green = np.stack([0.52 * lum + 0.06, 0.80 * lum + 0.14, 0.55 * lum + 0.06], axis=-1)
        torso = (yy > 0.52) & (np.linspace(0, 1, big)[None, :] < 0.75)
        photo = np.where(torso[..., None], green, photo)
    hair_colour = np.array([0.42, 0.29, 0.16], np.float32)
    premult = body_alpha[..., None] * photo + (hair * (1.0 - body_alpha))[..., None] * hair_colour
    alpha = body_alpha + hair * (1.0 - body_alpha)
    premult = cv2.resize(premult, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return premult, alpha


def _screen(height: int, width: int, key: str, rng: np.random.Generator) -> np.ndarray:
    """The bare screen: key colour under uneven light, vignetting, a hot spot and creases."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width - 0.5, y / height - 0.5
    light = 0.95 + 0.25 * u - 0.12 * v - 0.55 * (u * u + v * v)
    light += 0.18 * np.exp(-((u - 0.28) ** 2 + (v + 0.22) ** 2) / 0.02)
    for _ in range(5):
        theta = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.4, 0.4)
        dist = (u * np.cos(theta) + v * np.sin(theta) - offset) * width / 9.0
        light -= 0.09 * np.exp(-dist * dist) * rng.uniform(0.5, 1.0)
    screen = light[..., None] * np.array(SCREENS[key], np.float32)
    return np.clip(screen, 0.0, 1.0)


def make_sequence(name: str = "green", frames: int = 8, height: int = 360, width: int = 640,
                  seed: int = 0) -> Sequence:
    """One benchmark sequence: ``green``, ``green-shirt`` or ``blue``."""
    if name not in SEQUENCES:
        raise ValueError(f"unknown sequence {name!r}; choose from {', '.join(SEQUENCES)}")
    key = "blue" if name == "blue" else "green"
    rng = np.random.default_rng(seed)
    size = round(height * 0.92)
    premult, alpha = _sprite(size, rng, shirt=name == "green-shirt")
    # spill: screen light wrapping onto the subject, strongest within a few pixels of the outline
    inside = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    spill = (0.05 + 0.30 * np.exp(-inside / (0.02 * height)))[..., None] * np.array(SCREENS[key])
    sprite = np.dstack([premult, premult + alpha[..., None] * spill.astype(np.float32), alpha])
    screen = _screen(height, width, key, rng)
    seq = Sequence(name, key)
    for t in range(frames):
        # slow drift first, then a faster move (motion blur), with a little vertical bob
        calm = t < max(1, frames // 2)
        x0 = width * 0.5 - size * 0.5 + 4.0 * t + (0.0 if calm else 14.0 * (t - frames // 2))
        speed = 4.0 if calm else 18.0
        y0 = height - size + 2.0 * np.sin(t * 0.9)
        acc = np.zeros((height, width, 7), np.float32)
        taps = 6
        for k in range(taps):  # shutter open for half the frame interval
            shift = np.float32([[1, 0, x0 + speed * 0.5 * k / (taps - 1)], [0, 1, y0]])
            acc += cv2.warpAffine(sprite, shift, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        acc /= taps
        a = np.clip(acc[..., 6], 0.0, 1.0)
        truth_fg = np.where(a[..., None] > 1e-4, acc[..., 0:3] / np.maximum(a, 1e-4)[..., None], 0.0)
        image = acc[..., 3:6] + (1.0 - a[..., None]) * screen * rng.uniform(0.985, 1.015)
        image += rng.normal(0.0, 2.2 / 255.0, image.shape).astype(np.float32)
        seq.frames.append((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        seq.alpha.append(a.astype(np.float32))
        seq.foreground.append(np.clip(truth_fg, 0.0, 1.0).astype(np.float32))
    return seq


def greenscreen_image(height: int = 360, width: int = 640, key: str = "green",
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One test frame and its true alpha: (RGB uint8 (H, W, 3), alpha float32 (H, W)).

    For end-to-end checks (e.g. an OBS image source keyed by the filter): the corners are screen,
    the subject's middle is opaque.
    """
    seq = make_sequence("blue" if key == "blue" else "green", frames=1, height=height, width=width,
                        seed=seed)
    return seq.frames[0], seq.alpha[0]
