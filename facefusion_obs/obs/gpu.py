"""The filter's GPU objects: target capture, a rotating readback ring, the output texture, drawing.

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
        self.output = api.gs_texture_create(width, height, gs.GS_RGBA, 1, None, gs.GS_DYNAMIC)
        self.frame = 0
        effect = api.obs_get_base_effect(gs.OBS_EFFECT_DEFAULT)
        self.effect = effect
        self.technique = api.gs_effect_get_technique(effect, b"Draw")
        self.image_param = api.gs_effect_get_param_by_name(effect, b"image")
        if not (self.texrender and all(self.surfaces) and self.output and self.technique):
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
        """Copy one RGBA frame (tightly packed rows) from memory into the output texture."""
        self.api.gs_texture_set_image(self.output, address, self.width * 4, False)

    def draw(self, texture: int) -> None:
        """Draw ``texture`` at the filter's size with the default effect; alpha is kept straight."""
        api = self.api
        srgb = api.gs_framebuffer_srgb_enabled()
        api.gs_enable_framebuffer_srgb(False)
        api.gs_effect_set_texture(self.image_param, texture)
        passes = api.gs_technique_begin(self.technique)
        for i in range(passes):
            if api.gs_technique_begin_pass(self.technique, i):
                api.gs_draw_sprite(texture, 0, self.width, self.height)
                api.gs_technique_end_pass(self.technique)
        api.gs_technique_end(self.technique)
        api.gs_enable_framebuffer_srgb(srgb)

    # -------------------------------------------------------------------------------------- free
    def free_in_context(self) -> None:
        api = self.api
        for surface in self.surfaces:
            if surface:
                api.gs_stagesurface_destroy(surface)
        if self.output:
            api.gs_texture_destroy(self.output)
        if self.texrender:
            api.gs_texrender_destroy(self.texrender)
        self.surfaces, self.output, self.texrender = [], None, None

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
