"""The 468-point face mesh's triangulation, read from the pinned MediaPipe wheel.

Why not Delaunay: MediaPipe's own tessellation (852 triangles) is made for this point layout; it leaves
the inner mouth open (so the target's teeth and tongue show through) and its triangles stay valid as
the face turns, whereas a Delaunay triangulation of one photo changes with that photo's pose and
expression and bridges the lips. The file is a Python source (``face_mesh_connections.py``) that lists
each triangle as three consecutive edges; it is parsed as data with ``ast.literal_eval`` and never
executed. The two eye openings, which MediaPipe leaves as holes, are closed here with a strip between
upper and lower lid so that the source eye is warped in and closes when the target's lids close.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Any

import numpy as np

# eye corners of MediaPipe's 468-point layout (subject's right eye: 33 outer, 133 inner)
EYE_CORNERS = ((33, 133), (263, 362))


class MeshTopology:
    """The mesh as data, loaded through the model pool like any model: ``pool.load(MeshTopology)``.

    Its "session" is the verified bytes of ``face_mesh_connections.py``; ``prepare`` parses them into
    ``triangles`` (T, 3) int32 (the tessellation plus the eye strips), ``face_oval`` and ``inner_mouth``
    (closed loops, in order), ``eyes`` (each eye opening's loop) and ``ring`` ((468,) edges from the
    face outline, 0 on it).
    """

    model_name = "face_mesh_topology"

    def __init__(self, file: Any, session: bytes) -> None:
        self.path = file.path
        self._source: bytes | None = session

    def prepare(self) -> MeshTopology:
        if self._source is not None:
            self._parse(self._source.decode("utf-8"))
            self._source = None
        return self

    def _parse(self, source: str) -> None:
        sets = _literal_sets(source)
        edges = np.array(sets["FACEMESH_TESSELATION"], np.int32).reshape(-1, 3, 2)
        if not ((edges[:, 0, 1] == edges[:, 1, 0]) & (edges[:, 1, 1] == edges[:, 2, 0])).all():
            raise ValueError(f"{self.path}: FACEMESH_TESSELATION is not a list of edge triplets")
        mesh = edges[:, :, 0]
        loops = _loops(mesh)
        by_vertex = {v: loop for loop in loops for v in loop}
        oval = max(loops, key=len)
        mouth = by_vertex[13]  # 13: inner upper lip centre
        eyes = tuple(by_vertex[a] for a, _ in EYE_CORNERS)
        strips = [_eye_strip(loop, c) for loop, c in zip(eyes, EYE_CORNERS, strict=True)]
        self.triangles: np.ndarray = np.concatenate([mesh, *strips]).astype(np.int32)
        self.ring: np.ndarray = _rings(self.triangles, oval)
        self.face_oval: np.ndarray = np.array(oval, np.int32)
        self.inner_mouth: np.ndarray = np.array(mouth, np.int32)
        self.eyes: tuple[np.ndarray, ...] = tuple(np.array(e, np.int32) for e in eyes)


def _literal_sets(source: str) -> dict[str, list[tuple[int, int]]]:
    """``NAME = frozenset([...])`` assignments whose argument is a literal list, in source order."""
    out = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and node.value.args
                and isinstance(node.value.args[0], ast.List)):
            out[node.targets[0].id] = ast.literal_eval(node.value.args[0])
    return out


def _loops(triangles: np.ndarray) -> list[list[int]]:
    """Boundary loops (edges used by one triangle), each in walking order."""
    count: dict[tuple[int, int], int] = defaultdict(int)
    for a, b in np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]):
        count[(min(a, b), max(a, b))] += 1
    adj: dict[int, list[int]] = defaultdict(list)
    for (a, b), n in count.items():
        if n == 1:
            adj[a].append(b)
            adj[b].append(a)
    seen: set[int] = set()
    loops = []
    for start in sorted(adj):
        if start in seen:
            continue
        loop, cur = [start], start
        seen.add(start)
        while nxt := [n for n in adj[cur] if n not in seen]:
            cur = nxt[0]
            seen.add(cur)
            loop.append(cur)
        loops.append(loop)
    return loops


def _eye_strip(loop: list[int], corners: tuple[int, int]) -> np.ndarray:
    """Triangulate an eye opening as a strip between its two lid chains (corner to corner)."""
    i, j = loop.index(corners[0]), loop.index(corners[1])
    rolled = loop[i:] + loop[:i]
    k = (j - i) % len(loop)
    lid_a = rolled[:k + 1]
    lid_b = [rolled[0], *rolled[k:][::-1]]
    n = min(len(lid_a), len(lid_b))
    tris = []
    for m in range(n - 1):
        tris.append((lid_a[m], lid_b[m + 1], lid_a[m + 1]))
        tris.append((lid_b[m], lid_b[m + 1], lid_a[m]))
    tris = [t for t in tris if len(set(t)) == 3]
    return np.array(tris, np.int32)


def _rings(triangles: np.ndarray, outline: list[int], n: int = 468) -> np.ndarray:
    """Graph distance of every vertex from the outline (breadth-first over mesh edges)."""
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b, c in triangles:
        adj[a] |= {b, c}
        adj[b] |= {a, c}
        adj[c] |= {a, b}
    ring = np.full(n, n, np.int32)
    ring[outline] = 0
    frontier = list(outline)
    while frontier:
        nxt = []
        for v in frontier:
            for u in adj[v]:
                if ring[u] > ring[v] + 1:
                    ring[u] = ring[v] + 1
                    nxt.append(u)
        frontier = nxt
    return ring
