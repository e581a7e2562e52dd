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
  key cannot tell from the screen and the person prior must save;
* the dark sequences are the class a key that reads "dark" as "screen" fails on: ``blue-black`` (a
  black helmet with a glossy visor that mirrors the screen, held beside the body, and a black top),
  ``blue-navy`` (a navy top and dark-blue objects, one a mug whose handle shows the screen through
  it), ``green-dark`` (black clothing, near-black hair with many fine strands, a black object);
* the wall sequences (``green-wall``, ``blue-wall``) end the screen short of the frame: beyond its
  edge is a lit studio wall of another colour, which is background (alpha 0) although it is not
  screen-coloured, and the subject moves partly in front of it.

Objects move on their own path on top of the subject's, and their shapes, sizes and places are
drawn from the seed, so each seed is another take of the same class of shot.

Nothing in the worker imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# screen colours in 0..1 RGB: a typical lit chroma-key green and blue fabric
SCREENS = {"green": (0.16, 0.62, 0.27), "blue": (0.09, 0.25, 0.70)}
SEQUENCES = ("green", "green-shirt", "blue", "blue-black", "blue-navy", "green-dark", "green-wall",
             "blue-wall")
# what each sequence adds to the plain subject: (key, top, hair colour, objects, wall side)
_SCENES: dict[str, tuple[str, str | None, tuple[float, float, float] | None, tuple[str, ...], str | None]] = {
    "green": ("green", None, None, (), None),
    "green-shirt": ("green", "green", None, (), None),
    "blue": ("blue", None, None, (), None),
    "blue-black": ("blue", "black", None, ("helmet",), None),
    "blue-navy": ("blue", "navy", None, ("box", "mug"), None),
    "green-dark": ("green", "black", (0.045, 0.038, 0.035), ("helmet",), None),
    "green-wall": ("green", None, None, (), "right"),
    "blue-wall": ("blue", "black", None, (), "left"),
}
_TOPS = {"black": (0.055, 0.055, 0.06), "navy": (0.07, 0.09, 0.22)}

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


def _sprite(size: int, rng: np.random.Generator, top: str | None = None,
            hair_colour: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour (size, size, 3) and alpha (size, size) of the subject, unmoved.

    ``top`` dresses the torso (green, black or navy fabric keeping the photo's folds); a
    ``hair_colour`` replaces the brown strands and adds as many again, finer (dark, flyaway hair).
    """
    # everything is drawn once at _SUPER times the output size, in the photo's 512-pixel coordinates
    big = size * _SUPER
    k = big / 512.0
    mask = np.zeros((big, big), np.uint8)
    (cx, cy), (rx, ry) = _HEAD
    cv2.ellipse(mask, (int(cx * k), int(cy * k)), (int(rx * k), int(ry * k)), 0, 0, 360, 255, -1,
                cv2.LINE_AA)
    cv2.fillPoly(mask, [(_BODY * k).astype(np.int32)], 255, cv2.LINE_AA)
    cap = None
    if hair_colour is not None:  # a mass of dark hair over the crown, a little wider than the head
        cap = np.zeros_like(mask)
        cv2.ellipse(cap, (int(cx * k), int((cy - 0.1 * ry) * k)), (int(1.06 * rx * k), int(0.98 * ry * k)), 0, 0,
                    360, 255, -1, cv2.LINE_AA)
        crown = np.clip(((cy - 0.2 * ry) * k - np.arange(big, dtype=np.float32)[:, None]) / (0.15 * ry * k), 0, 1)
        cap = (cap * crown).astype(np.uint8)
        mask = np.maximum(mask, cap)
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
    if hair_colour is not None:
        fine = np.random.default_rng(int(rng.integers(1 << 30)) + 17)
        for _ in range(70):
            angle = fine.uniform(np.pi * 0.95, np.pi * 2.05)
            root = np.array([cx + 0.95 * rx * np.cos(angle), cy + 0.95 * ry * np.sin(angle)])
            direction = np.array([np.cos(angle), np.sin(angle)]) + fine.normal(0.0, 0.45, 2)
            t = np.linspace(0.0, 1.0, 24)[:, None]
            pts = root + direction * fine.uniform(10.0, 36.0) * t + fine.normal(0.0, 12.0, 2) * t * t
            layer = np.zeros_like(mask)
            cv2.polylines(layer, [(pts * k).astype(np.int32)], False, 255, max(1, round(2 * k / _SUPER)),
                          cv2.LINE_AA)
            hair = 1.0 - (1.0 - hair) * (1.0 - fine.uniform(0.3, 0.8) * layer / 255.0)

    photo = cv2.resize(_astronaut(), (big, big), interpolation=cv2.INTER_LINEAR)
    if top is not None:
        lum = photo @ np.array([0.3, 0.55, 0.15], np.float32)
        if top == "green":
            cloth = np.stack([0.52 * lum + 0.06, 0.80 * lum + 0.14, 0.55 * lum + 0.06], axis=-1)
        else:  # dark fabric: its folds follow the photo's shading, a little sheen on the highlights
            cloth = np.array(_TOPS[top], np.float32) * (0.55 + 0.9 * lum[..., None]) + 0.04 * lum[..., None] ** 2
        torso = (yy > 0.52) & (np.linspace(0, 1, big)[None, :] < 0.75)
        photo = np.where(torso[..., None], cloth, photo)
    if cap is not None:
        mass = (cap / 255.0)[..., None]
        sheen = 1.0 + 0.5 * _texture(big, big, 48, np.random.default_rng(5))[..., None]
        photo = photo * (1.0 - mass) + mass * np.array(hair_colour, np.float32) * sheen
    strands = np.array(hair_colour or (0.42, 0.29, 0.16), np.float32)
    premult = body_alpha[..., None] * photo + (hair * (1.0 - body_alpha))[..., None] * strands
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


def _with_spill(premult: np.ndarray, alpha: np.ndarray, key: str, height: int) -> np.ndarray:
    """(h, w, 7): premultiplied truth, premultiplied as the camera sees it (with spill), alpha."""
    # spill: screen light wrapping onto the subject, strongest within a few pixels of the outline
    inside = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    spill = (0.05 + 0.30 * np.exp(-inside / (0.02 * height)))[..., None] * np.array(SCREENS[key])
    return np.dstack([premult, premult + alpha[..., None] * spill.astype(np.float32), alpha])


def _texture(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random relief in -1..1 (H, W): fabric, plaster, a lumpy lit surface."""
    grid = rng.uniform(-1.0, 1.0, (cells, max(2, round(cells * width / height)))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def _object(kind: str, size: int, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour and alpha (size, size) of a dark prop: ``helmet`` (black shell, glossy
    visor that mirrors the screen), ``box`` (navy fabric with a label), ``mug`` (dark blue, with a
    handle the screen shows through)."""
    big = size * _SUPER
    yy, xx = (np.mgrid[0:big, 0:big].astype(np.float32) + 0.5) / big
    mask = np.zeros((big, big), np.uint8)
    shade = 0.8 + 0.35 * (0.6 - yy) + 0.15 * _texture(big, big, 6, rng)
    screen = np.array(SCREENS[key], np.float32)
    if kind == "helmet":
        rx, ry = rng.uniform(0.36, 0.45), rng.uniform(0.33, 0.40)
        cv2.ellipse(mask, (big // 2, int(0.48 * big)), (int(rx * big), int(ry * big)), 0, 0, 360, 255, -1,
                    cv2.LINE_AA)
        mask[int((0.48 + 0.8 * ry) * big):] = 0  # the open chin
        colour = np.array([0.035, 0.035, 0.04], np.float32) * shade[..., None]
        visor = ((xx - 0.5) / (0.85 * rx)) ** 2 + ((yy - 0.5) / (0.45 * ry)) ** 2 < 1.0
        mirror = (0.025 + rng.uniform(0.12, 0.25) * screen * (1.2 - yy[..., None])) * shade[..., None]
        colour = np.where(visor[..., None], mirror, colour)
        glint = np.exp(-(((xx - 0.33) / 0.06) ** 2 + ((yy - 0.3) / 0.03) ** 2))[..., None]
        colour = colour + 0.55 * glint
    elif kind == "box":
        w, h = rng.uniform(0.55, 0.8), rng.uniform(0.4, 0.6)
        box = cv2.boxPoints(((big / 2, big / 2), (w * big, h * big), float(rng.uniform(-25, 25))))
        cv2.fillPoly(mask, [box.astype(np.int32)], 255, cv2.LINE_AA)
        colour = np.array([0.07, 0.09, 0.22], np.float32) * (shade + 0.1 * _texture(big, big, 40, rng))[..., None]
        label = np.abs(yy - 0.5) < 0.06
        colour = np.where(label[..., None], np.float32([0.10, 0.13, 0.34]) * shade[..., None], colour)
    else:  # mug
        w, h = rng.uniform(0.36, 0.46), rng.uniform(0.5, 0.62)
        x0, y0 = 0.32 - w / 2, 0.5 - h / 2
        cv2.rectangle(mask, (int(x0 * big), int(y0 * big)), (int((x0 + w) * big), int((y0 + h) * big)), 255, -1)
        # the handle: a thick ring, open in the middle
        cv2.ellipse(mask, (int((x0 + w) * big), int(0.5 * big)), (int(0.16 * big), int(0.17 * h * big)), 0, -90,
                    90, 255, max(1, int(0.06 * big)), cv2.LINE_AA)
        cylinder = 0.7 + 0.6 * np.exp(-(((xx - x0 - 0.35 * w) / (0.3 * w)) ** 2))
        colour = np.array([0.05, 0.08, 0.30], np.float32) * (cylinder * shade)[..., None]
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.5 * _SUPER) / 255.0
    premult = cv2.resize(np.clip(colour, 0, 1) * alpha[..., None], (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return premult.astype(np.float32), alpha


def _wall(height: int, width: int, side: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A lit studio wall beyond the screen's edge: (colour (H, W, 3), coverage (H, W) 0..1).

    ``right``: the screen ends on a slightly slanted line in the right fifth; ``left``: it ends in
    the left sixth and a strip of ceiling shows above it. A dark frame runs along the screen's edge.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = rng.uniform(-0.06, 0.06)
    if side == "right":
        edge = width * rng.uniform(0.80, 0.86) + slope * (y - height / 2)
        dist = x - edge
    else:
        edge = width * rng.uniform(0.12, 0.17) + slope * (y - height / 2)
        top = height * rng.uniform(0.05, 0.08)
        dist = np.maximum(edge - x, top - y)
    coverage = np.clip(dist + 0.5, 0.0, 1.0)
    base = np.array([(0.74, 0.68, 0.58), (0.52, 0.50, 0.49), (0.46, 0.32, 0.22)][int(rng.integers(3))], np.float32)
    light = 0.9 + 0.12 * (y / height - 0.5) + 0.06 * _texture(height, width, 30, rng) - 0.04 * x / width
    colour = base * light[..., None]
    frame = np.clip(1.0 - np.abs(dist - 0.008 * width) / (0.008 * width), 0.0, 1.0)
    colour = colour * (1.0 - frame[..., None]) + 0.10 * frame[..., None]
    return np.clip(colour, 0.0, 1.0), coverage


def make_sequence(name: str = "green", frames: int = 8, height: int = 360, width: int = 640,
                  seed: int = 0) -> Sequence:
    """One benchmark sequence, by name (``SEQUENCES``; see the module docstring)."""
    if name not in SEQUENCES:
        raise ValueError(f"unknown sequence {name!r}; choose from {', '.join(SEQUENCES)}")
    key, top, hair_colour, objects, wall_side = _SCENES[name]
    rng = np.random.default_rng(seed)
    size = round(height * 0.92)
    premult, alpha = _sprite(size, rng, top, hair_colour)
    sprite = _with_spill(premult, alpha, key, height)
    screen = _screen(height, width, key, rng)
    # props and walls draw from their own generator, so the original three sequences stay as they were
    extra = np.random.default_rng([seed, 1])
    props = []
    for i, kind in enumerate(objects):
        osize = round(height * extra.uniform(0.22, 0.34))
        o_premult, o_alpha = _object(kind, osize, key, extra)
        side = 1.0 if (i % 2 == 0) == (extra.uniform() < 0.5) else -1.0
        # held beside the body: over its outline, shoulder to hip, up to half outside it
        anchor = (size * (0.37 + side * extra.uniform(0.25, 0.42)) - osize / 2,
                  size * extra.uniform(0.45, 0.7) - osize / 2)
        path = (extra.uniform(0.04, 0.1) * height, extra.uniform(0.03, 0.07) * height, extra.uniform(0, 6.3),
                extra.uniform(4.0, 12.0))
        props.append((_with_spill(o_premult, o_alpha, key, height), osize, anchor, path))
    if wall_side is not None:
        wall_colour, coverage = _wall(height, width, wall_side, extra)
        # the screen darkens towards its own edge, where its lights do not reach
        falloff = 0.75 + 0.25 * np.clip(cv2.distanceTransform((coverage < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
                                        / (0.06 * width), 0.0, 1.0)
        screen = screen * falloff[..., None] * (1.0 - coverage[..., None]) + wall_colour * coverage[..., None]
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
            layer = cv2.warpAffine(sprite, shift, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            for prop, osize, (ax, ay), (sx, sy, phase, spin) in props:
                tt = t + 0.5 * k / (taps - 1)
                px = shift[0, 2] + ax + sx * np.sin(0.8 * tt + phase)
                py = y0 + ay + sy * np.sin(0.55 * tt + 2.0 * phase)
                move = cv2.getRotationMatrix2D((osize / 2, osize / 2), spin * np.sin(0.6 * tt + phase), 1.0)
                move[:, 2] += (px, py)
                over = cv2.warpAffine(prop, move, (width, height), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                layer = over + (1.0 - over[..., 6:7]) * layer  # the prop is held in front
            acc += layer
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
