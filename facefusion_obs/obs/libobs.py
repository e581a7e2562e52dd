"""ctypes bindings to the libobs functions the filter needs (OBS 29 ABI).

``obspython`` cannot register a source (no ``obs_register_source``) and its SWIG wrappers cannot pass
pixel pointers, so every graphics, properties and settings call goes through ctypes. Enum values come
from ``obspython`` rather than being hard-coded. The library is the one OBS already loaded.
"""

from __future__ import annotations

import ctypes
import sys
from types import SimpleNamespace

vp = ctypes.c_void_p
u32 = ctypes.c_uint32
f32 = ctypes.c_float
f64 = ctypes.c_double
cbool = ctypes.c_bool
cstr = ctypes.c_char_p
cint = ctypes.c_int


class Vec4(ctypes.Structure):
    _fields_ = [("x", f32), ("y", f32), ("z", f32), ("w", f32)]


# Callback signatures of struct obs_source_info and of properties.
GET_NAME = ctypes.CFUNCTYPE(vp, vp)
CREATE = ctypes.CFUNCTYPE(vp, vp, vp)
DESTROY = ctypes.CFUNCTYPE(None, vp)
GET_DEFAULTS = ctypes.CFUNCTYPE(None, vp)
GET_PROPERTIES = ctypes.CFUNCTYPE(vp, vp)
UPDATE = ctypes.CFUNCTYPE(None, vp, vp)
VIDEO_TICK = ctypes.CFUNCTYPE(None, vp, f32)
VIDEO_RENDER = ctypes.CFUNCTYPE(None, vp, vp)
TASK = ctypes.CFUNCTYPE(None, vp)  # obs_queue_task: run on OBS's UI thread (OBS_TASK_UI)
OBS_TASK_UI = 0
BUTTON_CLICKED = ctypes.CFUNCTYPE(cbool, vp, vp, vp)

_CALLBACK_TYPES = {
    "get_name": GET_NAME,
    "create": CREATE,
    "destroy": DESTROY,
    "get_defaults": GET_DEFAULTS,
    "get_properties": GET_PROPERTIES,
    "update": UPDATE,
    "video_tick": VIDEO_TICK,
    "video_render": VIDEO_RENDER,
}
# Field order of struct obs_source_info in libobs 29.0 (obs-source.h). Later versions only append,
# and obs_register_source_s(info, size) accepts this size.
_FIELDS = [
    "get_name",
    "create",
    "destroy",
    "get_width",
    "get_height",
    "get_defaults",
    "get_properties",
    "update",
    "activate",
    "deactivate",
    "show",
    "hide",
    "video_tick",
    "video_render",
    "filter_video",
    "filter_audio",
    "enum_active_sources",
    "save",
    "load",
    "mouse_click",
    "mouse_move",
    "mouse_wheel",
    "focus",
    "key_click",
    "filter_remove",
    "type_data",
    "free_type_data",
    "audio_render",
    "enum_all_sources",
    "transition_start",
    "transition_stop",
    "get_defaults2",
    "get_properties2",
    "audio_mix",
]
_MEDIA = [
    "media_play_pause",
    "media_restart",
    "media_stop",
    "media_next",
    "media_previous",
    "media_get_duration",
    "media_get_time",
    "media_set_time",
    "media_get_state",
]


class ObsSourceInfo(ctypes.Structure):
    _fields_ = (
        [("id", cstr), ("type", cint), ("output_flags", u32)]
        + [(n, _CALLBACK_TYPES.get(n, vp)) for n in _FIELDS]
        + [("icon_type", cint)]
        + [(n, vp) for n in _MEDIA]
        + [("version", u32), ("unversioned_id", cstr), ("missing_files", vp), ("video_get_color_space", vp)]
    )


_SIGNATURES = {
    # sources and filters
    "obs_register_source_s": (None, vp, ctypes.c_size_t),
    "obs_filter_get_target": (vp, vp),
    "obs_filter_get_parent": (vp, vp),
    "obs_source_get_base_width": (u32, vp),
    "obs_source_get_base_height": (u32, vp),
    "obs_source_get_name": (cstr, vp),
    "obs_source_process_filter_begin": (cbool, vp, cint, cint),
    "obs_source_process_filter_end": (None, vp, vp, u32, u32),
    "obs_source_skip_video_filter": (None, vp),
    "obs_source_get_settings": (vp, vp),
    "obs_source_update_properties": (None, vp),
    "obs_get_base_effect": (vp, cint),
    "obs_enter_graphics": (None,),
    "obs_leave_graphics": (None,),
    # graphics
    "gs_texrender_create": (vp, cint, cint),
    "gs_texrender_destroy": (None, vp),
    "gs_texrender_reset": (None, vp),
    "gs_texrender_begin": (cbool, vp, u32, u32),
    "gs_texrender_end": (None, vp),
    "gs_texrender_get_texture": (vp, vp),
    "gs_clear": (None, u32, ctypes.POINTER(Vec4), f32, ctypes.c_uint8),
    "gs_ortho": (None, f32, f32, f32, f32, f32, f32),
    "gs_blend_state_push": (None,),
    "gs_blend_state_pop": (None,),
    "gs_blend_function": (None, cint, cint),
    "gs_stagesurface_create": (vp, u32, u32, cint),
    "gs_stagesurface_destroy": (None, vp),
    "gs_stage_texture": (None, vp, vp),
    "gs_stagesurface_map": (cbool, vp, ctypes.POINTER(vp), ctypes.POINTER(u32)),
    "gs_stagesurface_unmap": (None, vp),
    "gs_texture_create": (vp, u32, u32, cint, u32, vp, u32),
    "gs_texture_destroy": (None, vp),
    "gs_texture_set_image": (None, vp, vp, u32, cbool),
    "gs_effect_get_technique": (vp, vp, cstr),
    "gs_effect_get_param_by_name": (vp, vp, cstr),
    "gs_effect_set_texture": (None, vp, vp),
    "gs_effect_set_float": (None, vp, f32),
    "gs_texture_create_from_file": (vp, cstr),
    "gs_technique_begin": (ctypes.c_size_t, vp),
    "gs_technique_end": (None, vp),
    "gs_technique_begin_pass": (cbool, vp, ctypes.c_size_t),
    "gs_technique_end_pass": (None, vp),
    "gs_draw_sprite": (None, vp, u32, u32, u32),
    "gs_enable_framebuffer_srgb": (None, cbool),
    "gs_framebuffer_srgb_enabled": (cbool,),
    # properties
    "obs_properties_create": (vp,),
    "obs_properties_add_bool": (vp, vp, cstr, cstr),
    "obs_properties_add_text": (vp, vp, cstr, cstr, cint),
    "obs_properties_add_list": (vp, vp, cstr, cstr, cint, cint),
    "obs_properties_add_float_slider": (vp, vp, cstr, cstr, f64, f64, f64),
    "obs_properties_add_int_slider": (vp, vp, cstr, cstr, cint, cint, cint),
    "obs_properties_add_color": (vp, vp, cstr, cstr),
    "obs_properties_add_path": (vp, vp, cstr, cstr, cint, cstr, cstr),
    "obs_properties_add_button": (vp, vp, cstr, cstr, BUTTON_CLICKED),
    "obs_properties_add_group": (vp, vp, cstr, cstr, cint, vp),
    "obs_property_list_add_string": (ctypes.c_size_t, vp, cstr, cstr),
    "obs_property_set_long_description": (None, vp, cstr),
    "obs_property_set_enabled": (None, vp, cbool),
    # settings
    "obs_data_get_bool": (cbool, vp, cstr),
    "obs_data_get_string": (cstr, vp, cstr),
    "obs_data_get_double": (f64, vp, cstr),
    "obs_data_get_int": (ctypes.c_longlong, vp, cstr),
    "obs_data_set_string": (None, vp, cstr, cstr),
    "obs_data_set_default_bool": (None, vp, cstr, cbool),
    "obs_data_set_default_string": (None, vp, cstr, cstr),
    "obs_data_set_default_double": (None, vp, cstr, f64),
    "obs_data_set_default_int": (None, vp, cstr, ctypes.c_longlong),
    "obs_data_release": (None, vp),
    "obs_data_create": (vp,),
    "obs_data_set_bool": (None, vp, cstr, cbool),
    "obs_source_update": (None, vp, vp),
    "obs_property_list_item_disable": (None, vp, ctypes.c_size_t, cbool),
    "obs_scene_from_source": (vp, vp),
    "obs_scene_find_source_recursive": (vp, vp, cstr),
    # audio sync (obs/frontend.py)
    "obs_get_source_by_name": (vp, cstr),
    "obs_source_release": (None, vp),
    "obs_source_get_sync_offset": (ctypes.c_int64, vp),
    "obs_source_set_sync_offset": (None, vp, ctypes.c_int64),
    "obs_get_frame_interval_ns": (ctypes.c_uint64,),
    "obs_queue_task": (None, cint, TASK, vp, cbool),
}


def _library_name() -> str:
    if sys.platform == "win32":
        return "obs.dll"
    if sys.platform == "darwin":
        return "libobs.framework/libobs"
    return "libobs.so.0"


def load() -> SimpleNamespace:
    """Bind every function above. Raises OSError/AttributeError outside OBS or on an unknown ABI."""
    lib = ctypes.CDLL(_library_name())
    api = SimpleNamespace()
    for name, (restype, *argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(api, name, fn)
    return api


def enums(obs: object) -> SimpleNamespace:
    """The enum values we use, read from obspython."""
    names = [
        "GS_RGBA",
        "GS_BGRA",
        "GS_ZS_NONE",
        "GS_DYNAMIC",
        "GS_CLEAR_COLOR",
        "GS_BLEND_ONE",
        "GS_BLEND_ZERO",
        "OBS_NO_DIRECT_RENDERING",
        "OBS_EFFECT_DEFAULT",
        "OBS_SOURCE_TYPE_FILTER",
        "OBS_SOURCE_VIDEO",
        "OBS_TEXT_DEFAULT",
        "OBS_TEXT_INFO",
        "OBS_COMBO_TYPE_LIST",
        "OBS_COMBO_FORMAT_STRING",
        "OBS_GROUP_NORMAL",
        "OBS_PATH_FILE",
    ]
    return SimpleNamespace(**{n: getattr(obs, n) for n in names})
