"""OBS Studio's built-in "Chroma Key" filter (v2), re-implemented in NumPy as the benchmark baseline.

The maths is reproduced from obs-studio, OBS 28+/29:

* ``plugins/obs-filters/data/chroma_key_filter_v2.effect`` (commit 6845f73516bba50d43b7d5ac96474629c1c8dad3):
  the frame is sampled as *linear* light (``gs_set_linear_srgb(true)``), converted back to sRGB
  (``GetNonlinearColor``) for the chroma distance, which is the Euclidean distance in (Cb, Cr) of
  BT.709 limited-range YCbCr (``cb_v4``, ``cr_v4``) to the key's (Cb, Cr), averaged over a 3x3
  neighbourhood by four bilinear taps at (±1, ±½) and (±½, ∓1) pixels plus the centre
  (``GetBoxFilteredChromaDist``: (2·Σtaps + centre) / 9). Then
  ``alpha = saturate((d - similarity) / smoothness) ^ 1.5`` and the colour is lerped, in linear
  light, from its luma (0.2126, 0.7152, 0.0722) towards itself by
  ``saturate((d - similarity) / spill) ^ 1.5``.
* ``plugins/obs-filters/chroma-key-filter.c`` (``chroma_settings_update_v2``): the key colour is
  converted with ``vec4_from_rgba_srgb`` (i.e. *linearised*) before its (Cb, Cr) is taken, and the
  presets are green 0x00FF00 and blue 0xFF9900 (ABGR, i.e. RGB (0, 153, 255)); similarity,
  smoothness and spill are the UI's integers / 1000 (defaults 400, 80, 100).

Opacity, contrast, brightness and gamma are left at their defaults (identity). Bilinear taps are
averaged in linear light, as the GPU filters an sRGB texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CB = np.array([-0.100644, -0.338572, 0.439216], np.float32), 0.501961
CR = np.array([0.439216, -0.398942, -0.040274], np.float32), 0.501961
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
PRESETS = {"green": (0x00, 0xFF, 0x00), "blue": (0x00, 0x99, 0xFF), "magenta": (0xFF, 0x00, 0xFF)}


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, None)
    return np.where(u <= 0.0031308, 12.92 * u, 1.055 * u ** (1.0 / 2.4) - 0.055).astype(np.float32)


@dataclass(frozen=True)
class ObsSettings:
    """The filter's UI values (integers as in OBS's sliders)."""

    key: str | tuple[int, int, int] = "green"
    similarity: int = 400
    smoothness: int = 80
    spill: int = 100


def key_chroma(key: str | tuple[int, int, int]) -> np.ndarray:
    """(Cb, Cr) of the key as chroma_settings_update_v2 computes it (from the linearised colour)."""
    rgb = np.array(PRESETS[key] if isinstance(key, str) else key, np.float32) / 255.0
    lin = srgb_to_linear(rgb)
    return np.array([lin @ CB[0] + CB[1], lin @ CR[0] + CR[1]], np.float32)


def _chroma_dist(nonlinear: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    cb = nonlinear @ CB[0] + CB[1]
    cr = nonlinear @ CR[0] + CR[1]
    return np.sqrt((cb - chroma[0]) ** 2 + (cr - chroma[1]) ** 2)


def chroma_distance(rgb: np.ndarray, key: str | tuple[int, int, int]) -> np.ndarray:
    """GetBoxFilteredChromaDist for every pixel of an RGB uint8 frame (H, W)."""
    chroma = key_chroma(key)
    lin = srgb_to_linear(rgb.astype(np.float32) / 255.0)
    p = np.pad(lin, ((1, 1), (1, 1), (0, 0)), mode="edge")  # AddressU/V = Clamp
    h, w = rgb.shape[:2]

    def at(dy: int, dx: int) -> np.ndarray:
        return p[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]

    # the four bilinear taps, each halfway between two texel centres
    taps = ((at(-1, -1) + at(0, -1)) * 0.5,   # uv - (1, ½)
            (at(0, 1) + at(1, 1)) * 0.5,      # uv + (1, ½)
            (at(1, -1) + at(1, 0)) * 0.5,     # uv - (½, -1)
            (at(-1, 0) + at(-1, 1)) * 0.5)    # uv + (½, -1)
    dist = sum(_chroma_dist(linear_to_srgb(t), chroma) for t in taps) * 2.0
    dist = dist + _chroma_dist(rgb.astype(np.float32) / 255.0, chroma)
    return dist / 9.0


def apply(rgb: np.ndarray, dist: np.ndarray, settings: ObsSettings) -> tuple[np.ndarray, np.ndarray]:
    """(straight sRGB colour float 0..1 (H, W, 3), alpha float 0..1 (H, W)) from a precomputed distance."""
    base = dist - settings.similarity / 1000.0
    alpha = np.clip(base / (settings.smoothness / 1000.0), 0.0, 1.0) ** 1.5
    spill = np.clip(base / (settings.spill / 1000.0), 0.0, 1.0) ** 1.5
    lin = srgb_to_linear(rgb.astype(np.float32) / 255.0)
    desat = (lin @ LUMA)[..., None]
    colour = desat + (lin - desat) * spill[..., None]
    return linear_to_srgb(colour), alpha.astype(np.float32)


def obs_chroma_key(rgb: np.ndarray, settings: ObsSettings = ObsSettings()) -> tuple[np.ndarray, np.ndarray]:
    """OBS Chroma Key v2 on one RGB uint8 frame."""
    return apply(rgb, chroma_distance(rgb, settings.key), settings)
