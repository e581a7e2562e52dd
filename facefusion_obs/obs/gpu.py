"""The filter's GPU objects: target capture, a rotating readback ring, the output textures, drawing.

Two output textures, so the privacy gate (``obs/cover.py``) can keep the newest *verified* output
up while a newer one waits for its verdict; the cover blurs that one by drawing it down through two
small render targets (a 16x box-like reduction, no shader of our own) and up again, dimmed.

All calls run on OBS's graphics thread with the context current (``video_render``), except
:meth:`GpuResources.free`, which enters the graphics context itself.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from types import SimpleNamespace

from facefusion_obs.obs.libobs import Vec4, u32, vp

READBACK_SURFACES = 3
_CLEAR = Vec4(0.0, 0.0, 0.0, 0.0)
_COVER_GREY = Vec4(0.16, 0.16, 0.18, 1.0)  # no verified picture to blur yet: an opaque neutral grey
COVER_DIM = 0.45  # how bright the blurred cover is: clearly "not live", still recognisably the scene
BLUR_STEPS = (4, 16)  # each step draws the previous one at 1/n of the frame with bilinear filtering


class GpuResources:
    """Per-filter GPU state for one target size. Recreated when the size changes."""

    def __init__(self, api: SimpleNamespace, gs: SimpleNamespace, width: int, height: int) -> None:
        self.api, self.gs = api, gs
        self.width, self.height = width, height
        self.texrender = api.gs_texrender_create(gs.GS_BGRA, gs.GS_ZS_NONE)
        self.surfaces = [
            api.gs_stagesurface_create(width, height, gs.GS_BGRA) for _ in range(READBACK_SURFACES)
        ]
        self.staged_at: list[int | None] = [None] * READBACK_SURFACES  # monotonic ns, None = empty
        self.outputs = [api.gs_texture_create(width, height, gs.GS_RGBA, 1, None, gs.GS_DYNAMIC) for _ in range(2)]
        self.good = 0  # index of the texture the privacy gate trusts; uploads go to the other one
        self.latest: int | None = None  # index of the last upload
        self.blur = [api.gs_texrender_create(gs.GS_RGBA, gs.GS_ZS_NONE) for _ in BLUR_STEPS]
        self.image: tuple[str, int | None] = ("", None)  # the streamer's cover image: (path, texture)
        self.frame = 0
        effect = api.obs_get_base_effect(gs.OBS_EFFECT_DEFAULT)
        self.effect = effect
        self.technique = api.gs_effect_get_technique(effect, b"Draw")
        self.image_param = api.gs_effect_get_param_by_name(effect, b"image")
        self.dim_technique = api.gs_effect_get_technique(effect, b"DrawMultiply")
        self.multiplier_param = api.gs_effect_get_param_by_name(effect, b"multiplier")
        if not (self.texrender and all(self.surfaces) and all(self.outputs) and all(self.blur) and self.technique
                and self.dim_technique):
            self.free_in_context()
            raise RuntimeError(f"cannot allocate GPU objects for {width}x{height}")

    # ----------------------------------------------------------------------------- capture target
    def capture(self, source: int) -> int | None:
        """Render the filter's target into our texture. Returns the texture, or None if not ready."""
        api, gs = self.api, self.gs
        if not api.obs_source_process_filter_begin(source, gs.GS_RGBA, gs.OBS_NO_DIRECT_RENDERING):
            return None
        api.gs_texrender_reset(self.texrender)
        if not api.gs_texrender_begin(self.texrender, self.width, self.height):
            return None
        api.gs_clear(gs.GS_CLEAR_COLOR, ctypes.byref(_CLEAR), 0.0, 0)
        api.gs_ortho(0.0, float(self.width), 0.0, float(self.height), -100.0, 100.0)
        api.gs_blend_state_push()
        api.gs_blend_function(gs.GS_BLEND_ONE, gs.GS_BLEND_ZERO)  # exact copy, alpha included
        api.obs_source_process_filter_end(source, self.effect, self.width, self.height)
        api.gs_blend_state_pop()
        api.gs_texrender_end(self.texrender)
        return api.gs_texrender_get_texture(self.texrender)

    # ---------------------------------------------------------------------------------- readback
    def readback(self, texture: int, sink: Callable[[int, int, int], None]) -> bool:
        """Stage ``texture`` now and hand the frame staged one render earlier to ``sink``.

        Mapping the surface staged in the same frame would make a real GPU wait for the copy; the
        ring trades one frame of latency for never stalling. ``sink(data_ptr, linesize, staged_ns)``
        runs while the surface is mapped. Returns True if a frame was handed over.
        """
        api = self.api
        n = self.frame
        self.frame += 1
        current, previous = n % READBACK_SURFACES, (n - 1) % READBACK_SURFACES
        api.gs_stage_texture(self.surfaces[current], texture)
        self.staged_at[current] = time.monotonic_ns()
        staged = self.staged_at[previous] if n else None
        if staged is None:
            return False
        data, linesize = vp(), u32()
        if not api.gs_stagesurface_map(self.surfaces[previous], ctypes.byref(data), ctypes.byref(linesize)):
            return False
        try:
            sink(data.value, linesize.value, staged)
        finally:
            api.gs_stagesurface_unmap(self.surfaces[previous])
        return True

    # ------------------------------------------------------------------------------------ output
    def upload(self, address: int) -> None:
        """Copy one RGBA frame (tightly packed rows) from memory into the spare output texture."""
        spare = 1 - self.good
        self.api.gs_texture_set_image(self.outputs[spare], address, self.width * 4, False)
        self.latest = spare

    def promote(self) -> None:
        """The last upload is verified: it becomes the texture the gate shows and the cover blurs."""
        if self.latest is not None:
            self.good = self.latest

    @property
    def newest_output(self) -> int:
        return self.outputs[self.latest if self.latest is not None else self.good]

    @property
    def good_output(self) -> int:
        return self.outputs[self.good]

    def draw(self, texture: int, width: int | None = None, height: int | None = None, dim: float = 1.0) -> None:
        """Draw ``texture`` at the filter's size (or ``width`` x ``height``) with the default effect;
        alpha is kept straight. ``dim`` < 1 darkens the colour (alpha unchanged)."""
        api = self.api
        technique = self.technique if dim == 1.0 else self.dim_technique
        srgb = api.gs_framebuffer_srgb_enabled()
        api.gs_enable_framebuffer_srgb(False)
        api.gs_effect_set_texture(self.image_param, texture)
        if dim != 1.0:
            api.gs_effect_set_float(self.multiplier_param, dim)
        passes = api.gs_technique_begin(technique)
        for i in range(passes):
            if api.gs_technique_begin_pass(technique, i):
                api.gs_draw_sprite(texture, 0, width or self.width, height or self.height)
                api.gs_technique_end_pass(technique)
        api.gs_technique_end(technique)
        api.gs_enable_framebuffer_srgb(srgb)

    def cover_image(self, path: str) -> int | None:
        """The cover image's texture, loaded once per path; None when unset or unreadable (blur instead)."""
        if path != self.image[0]:
            self._drop_image()
            texture = self.api.gs_texture_create_from_file(path.encode("utf-8")) if path else None
            self.image = (path, texture or None)
        return self.image[1]

    def _drop_image(self) -> None:
        if self.image[1]:
            self.api.gs_texture_destroy(self.image[1])
        self.image = ("", None)

    def draw_cover(self, image: int | None, blur_good: bool) -> None:
        """The privacy cover: ``image`` stretched to the frame, else the good output blurred and
        dimmed (``blur_good``), else opaque grey. Never the camera: the target is not even rendered."""
        if image:
            self.draw(image)
            return
        api, gs = self.api, self.gs
        source = self.good_output if blur_good else None
        for texrender, step in zip(self.blur, BLUR_STEPS, strict=True):
            w, h = max(1, self.width // step), max(1, self.height // step)
            api.gs_texrender_reset(texrender)
            if not api.gs_texrender_begin(texrender, w, h):
                return
            api.gs_clear(gs.GS_CLEAR_COLOR, ctypes.byref(_CLEAR if source else _COVER_GREY), 0.0, 0)
            if source:
                api.gs_ortho(0.0, float(w), 0.0, float(h), -100.0, 100.0)
                api.gs_blend_state_push()
                api.gs_blend_function(gs.GS_BLEND_ONE, gs.GS_BLEND_ZERO)
                self.draw(source, w, h)
                api.gs_blend_state_pop()
            api.gs_texrender_end(texrender)
            source = api.gs_texrender_get_texture(texrender)
        if source:
            self.draw(source, dim=COVER_DIM if blur_good else 1.0)

    # -------------------------------------------------------------------------------------- free
    def free_in_context(self) -> None:
        api = self.api
        for surface in self.surfaces:
            if surface:
                api.gs_stagesurface_destroy(surface)
        self._drop_image()
        for texture in self.outputs:
            if texture:
                api.gs_texture_destroy(texture)
        for texrender in [self.texrender, *self.blur]:
            if texrender:
                api.gs_texrender_destroy(texrender)
        self.surfaces, self.outputs, self.blur, self.texrender = [], [], [], None

    def free(self) -> None:
        self.api.obs_enter_graphics()
        try:
            self.free_in_context()
        finally:
            self.api.obs_leave_graphics()


def copy_rows(dst: int, src: int, linesize: int, width: int, height: int) -> None:
    """Copy a mapped surface into tightly packed rows (row by row only when the GPU padded them)."""
    row = width * 4
    if linesize == row:
        ctypes.memmove(dst, src, row * height)
        return
    for y in range(height):
        ctypes.memmove(dst + y * row, src + y * linesize, row)
