"""Tiny generated ONNX models with the REAL input/output contracts of the insightface models.

These are STAND-INS, not weights. The real inswapper/arcface files are non-commercial and cannot be
downloaded where tests and benchmarks run, so these generators build models with the same input and
output names, shapes, dtypes and the 512x512 ``emap`` initializer (last in the graph, as insightface
reads it), whose arithmetic is simple but input-dependent: tests can then check that the right pixels
and the right latent reach the model, through exactly the code path the real files take (SHA-256
verification, session cache, provider choice, IOBinding). Every stand-in's graph is named
``STAND-IN ...`` and carries a ``standin=true`` metadata entry, and ``is_standin(path)`` reports it, so
a stand-in can never be mistaken for the real thing in logs, ``doctor`` or the benchmark table.

Generation is deterministic (fixed seeds), so a stand-in's SHA-256 is stable for one onnx version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

STANDIN_MARK = "standin"
STANDIN_NAMES = ("inswapper_128", "inswapper_128_fp16", "arcface_w600k_r50")


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # onnx ships with the worker's dependencies; say so if it is gone
        raise RuntimeError("generating stand-in models needs the 'onnx' package (pip install onnx)") from exc
    return onnx, TensorProto, helper, numpy_helper


def _save(model, path: Path, name: str) -> Path:
    onnx, *_ = _onnx()
    model.producer_name = "facefusion-obs stand-in generator"
    entry = model.metadata_props.add()
    entry.key, entry.value = STANDIN_MARK, "true"
    entry = model.metadata_props.add()
    entry.key, entry.value = "standin_for", name
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    return path


def inswapper_standin(path: Path, *, fp16: bool = False, size: int = 128, heavy: bool = False) -> Path:
    """inswapper_128 contract: ``target`` [1,3,128,128] RGB 0..1, ``source`` [1,512] latent → ``output``.

    Arithmetic: ``output = clip(0.5·target + 0.5·sigmoid(source·W + b), 0, 1)`` with ``W`` 512x3 reshaped
    to a per-channel offset, so the output depends on both the crop and the latent (a different face
    changes the colour: tests see the latent arrive). ``heavy`` adds a stack of 3x3 convolutions of
    roughly inswapper's cost, for timing the GPU path with a model of realistic weight.
    The ``emap`` initializer is 512x512, unused by the graph, and last — exactly where insightface
    looks for it.
    """
    _, TensorProto, helper, numpy_helper = _onnx()
    rng = np.random.default_rng(128)
    io_type = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (512, 3)).astype(np.float32), "latent_to_rgb"),
        numpy_helper.from_array(np.array([0.5], np.float32), "half"),
        numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "rgb_shape"),
    ]
    nodes = []
    target, source = "target", "source"
    if fp16:
        nodes += [helper.make_node("Cast", ["target"], ["target32"], to=TensorProto.FLOAT),
                  helper.make_node("Cast", ["source"], ["source32"], to=TensorProto.FLOAT)]
        target, source = "target32", "source32"
    nodes += [
        helper.make_node("MatMul", [source, "latent_to_rgb"], ["rgb_logit"]),
        helper.make_node("Sigmoid", ["rgb_logit"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "rgb_shape"], ["rgb4"]),
    ]
    image = target
    if heavy:
        channels = 64
        w_in = rng.normal(0, 0.05, (channels, 3, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w_in, "conv_in"))
        nodes.append(helper.make_node("Conv", [image, "conv_in"], ["h0"], pads=[1, 1, 1, 1]))
        last = "h0"
        for i in range(12):
            w = rng.normal(0, 0.02, (channels, channels, 3, 3)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"conv{i}"))
            nodes += [helper.make_node("Conv", [last, f"conv{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"c{i}"], [f"h{i + 1}"])]
            last = f"h{i + 1}"
        w_out = rng.normal(0, 0.01, (3, channels, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w_out, "conv_out"))
        nodes += [helper.make_node("Conv", [last, "conv_out"], ["delta"], pads=[1, 1, 1, 1]),
                  helper.make_node("Add", [image, "delta"], ["image_h"])]
        image = "image_h"
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
              numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    clipped = "clipped" if fp16 else "output"
    nodes += [
        helper.make_node("Mul", [image, "half"], ["a"]),
        helper.make_node("Mul", ["rgb4", "half"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["mix"]),
        helper.make_node("Clip", ["mix", "zero", "one"], [clipped]),
    ]
    if fp16:
        nodes.append(helper.make_node("Cast", ["clipped"], ["output"], to=TensorProto.FLOAT16))
    inits.append(numpy_helper.from_array(rng.normal(0, 0.03, (512, 512)).astype(np.float32), "emap"))
    graph = helper.make_graph(
        nodes, "STAND-IN inswapper_128" + ("_fp16" if fp16 else ""),
        [helper.make_tensor_value_info("target", io_type, [1, 3, size, size]),
         helper.make_tensor_value_info("source", io_type, [1, 512])],
        [helper.make_tensor_value_info("output", io_type, [1, 3, size, size])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return _save(model, Path(path), "inswapper_128_fp16" if fp16 else "inswapper_128")


def arcface_standin(path: Path) -> Path:
    """w600k_r50 contract: ``input.1`` [N,3,112,112] normalised (x−127.5)/127.5 → ``683`` [N,512].

    Arithmetic: 14x14 average pooling (a 3x8x8 thumbnail of the face) through a fixed random 192→512
    projection. Different faces give different, stable embeddings; identical crops identical ones.
    """
    _, TensorProto, helper, numpy_helper = _onnx()
    rng = np.random.default_rng(112)
    inits = [numpy_helper.from_array(rng.normal(0, 1.0, (192, 512)).astype(np.float32), "projection"),
             numpy_helper.from_array(np.array([-1, 192], np.int64), "flat_shape")]
    nodes = [helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[14, 14],
                              strides=[14, 14]),
             helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "projection"], ["683"])]
    graph = helper.make_graph(
        nodes, "STAND-IN arcface_w600k_r50",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return _save(model, Path(path), "arcface_w600k_r50")


GENERATORS = {
    "inswapper_128": lambda p: inswapper_standin(p),
    "inswapper_128_fp16": lambda p: inswapper_standin(p, fp16=True),
    "arcface_w600k_r50": arcface_standin,
}


def is_standin(path: Path) -> bool:
    """True for a file this module generated. Reads only the model's metadata, cheaply for small files."""
    path = Path(path)
    if path.stat().st_size > 64 * 2**20:  # real weights are hundreds of MiB; stand-ins a few MiB at most
        return False
    onnx, *_ = _onnx()
    model = onnx.load(str(path), load_external_data=False)
    return any(p.key == STANDIN_MARK and p.value == "true" for p in model.metadata_props)


def write_standins(models_dir: Path, names: tuple[str, ...] = STANDIN_NAMES) -> dict[str, Path]:
    """Generate the stand-ins under their manifest file names in ``models_dir``; returns name → path."""
    from facefusion_obs.models.manifest import load_manifest

    specs = load_manifest()
    out = {}
    for name in names:
        if name not in GENERATORS:
            raise ValueError(f"no stand-in generator for model {name!r} (have: {', '.join(GENERATORS)})")
        out[name] = GENERATORS[name](Path(models_dir) / specs[name].file)
    return out


def standin_manifest(target: Path, files: dict[str, Path]) -> Path:
    """Write a copy of the project manifest whose hashes for ``files`` are the stand-ins' own hashes.

    This is how tests and ``bench swap`` register stand-ins through the *same* SHA-256 check the real
    files pass: the real manifest is never edited, the copy says STAND-IN in every entry it changes.
    """
    from facefusion_obs.config import MODEL_MANIFEST
    from facefusion_obs.models.verify import sha256_file

    data = json.loads(Path(MODEL_MANIFEST).read_text(encoding="utf-8"))
    for entry in data["models"]:
        if entry["name"] in files:
            path = Path(files[entry["name"]])
            entry["sha256"] = sha256_file(path)
            entry["size"] = path.stat().st_size
            entry["requires_license_acceptance"] = False
            entry["license"] = "STAND-IN generated by tests/standins.py (no weights)"
            entry["note"] = "STAND-IN: a tiny generated model with the real input/output contract."
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return target
