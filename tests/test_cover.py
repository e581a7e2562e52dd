"""The privacy gate (obs/cover.py): an output is shown only once the worker said it swapped every face.

Pure logic, driven here the way the filter drives it each render: ``uploaded`` when a new output
went into the spare texture, then ``decide`` with the verdicts the supervisor has received so far.
"""

from __future__ import annotations

import random

from facefusion_obs.obs.cover import VERDICT_WAIT_S, PrivacyGate, verdict_for


def _shown(gate: PrivacyGate, verdicts, now: float, *, worker_ok: bool = True, forced: bool = False) -> bool:
    """Decide one render; True when an output (not the cover) is drawn."""
    return not gate.decide(verdicts, now, worker_ok=worker_ok, forced=forced).cover


def test_nothing_is_shown_before_a_verdict_says_swapped():
    gate = PrivacyGate()
    assert not _shown(gate, (), 0.0), "a fresh filter starts covered"
    gate.uploaded(1, 0.0)
    assert not _shown(gate, (), 0.01), "its verdict has not come yet"
    decision = gate.decide(((1, True),), 0.02, worker_ok=True, forced=False)
    assert decision.promote and not decision.cover and gate.has_good


def test_a_not_swapped_verdict_covers_and_keeps_the_last_good_picture():
    gate = PrivacyGate()
    gate.uploaded(1, 0.0)
    assert _shown(gate, ((1, True),), 0.0)
    gate.uploaded(2, 0.03)
    assert _shown(gate, ((1, True),), 0.04), "waiting for 2's verdict, 1 (verified) stays up"
    decision = gate.decide(((1, True), (2, False)), 0.05, worker_ok=True, forced=False)
    assert decision.cover and not decision.promote, "2 is never promoted: the good texture keeps 1"
    assert gate.has_good, "the cover blurs 1"
    gate.uploaded(3, 0.07)
    assert not _shown(gate, ((2, False),), 0.08), "covered until a swapped verdict comes"
    assert _shown(gate, ((2, False), (3, True)), 0.09)


def test_a_verdict_that_never_comes_counts_as_not_swapped():
    gate = PrivacyGate()
    gate.uploaded(1, 10.0)
    assert not _shown(gate, (), 10.0 + VERDICT_WAIT_S / 2)
    assert gate.pending == 1, "still waiting"
    assert not _shown(gate, (), 10.0 + VERDICT_WAIT_S + 0.01)
    assert gate.pending is None and not gate.has_good
    assert not _shown(gate, ((1, True),), 11.0), "a verdict after the deadline changes nothing"


def test_a_worker_restart_distrusts_everything_until_its_first_verdict():
    gate = PrivacyGate()
    gate.uploaded(1, 0.0)
    assert _shown(gate, ((1, True),), 0.0)
    gate.restart()
    assert not _shown(gate, ((1, True),), 0.1), "an old verdict does not vouch for the new worker"
    assert gate.has_good, "the last good picture is still there to blur"
    gate.uploaded(2, 0.2)
    assert _shown(gate, ((2, True),), 0.2)


def test_lost_textures_are_never_blurred():
    gate = PrivacyGate()
    gate.uploaded(1, 0.0)
    assert _shown(gate, ((1, True),), 0.0)
    gate.textures_lost()  # recreated at a new size: the good texture holds nothing we drew
    assert not gate.has_good and not _shown(gate, ((1, True),), 0.1)


def test_the_panic_key_and_a_dead_worker_cover_whatever_the_verdicts():
    gate = PrivacyGate()
    gate.uploaded(1, 0.0)
    decision = gate.decide(((1, True),), 0.0, worker_ok=True, forced=True)
    assert decision.cover and decision.promote, "covered, but the verified output still becomes the good one"
    assert not _shown(gate, ((1, True),), 0.1, worker_ok=False)
    assert _shown(gate, ((1, True),), 0.2)


def test_a_torn_upload_is_dropped():
    gate = PrivacyGate()
    gate.uploaded(1, 0.0)
    gate.discard()
    assert gate.pending is None
    assert not _shown(gate, ((1, True),), 0.1), "a verdict for a torn picture promotes nothing"


def test_verdict_lookup():
    assert verdict_for(((4, True), (5, False)), 5) is False
    assert verdict_for(((4, True), (5, False)), 4) is True
    assert verdict_for(((4, True),), 6) is None


def test_random_interleavings_never_show_an_unverified_output():
    """Outputs, verdicts (late, lost, false), restarts and timeouts in random order: whatever is shown
    is an output whose own verdict said swapped, and the newest decided one was swapped."""
    rng = random.Random(7)
    for _ in range(200):
        gate = PrivacyGate()
        truth: dict[int, bool] = {}
        arrived: list[tuple[int, bool]] = []
        shown_texture: int | None = None  # frame id in the good texture
        spare: int | None = None
        now, fid = 0.0, 0
        for _ in range(60):
            now += rng.choice((0.005, 0.033, 0.1, 0.3))
            event = rng.random()
            if event < 0.35 and gate.pending is None:
                fid += 1
                truth[fid] = rng.random() < 0.7
                spare = fid
                gate.uploaded(fid, now)
                if rng.random() < 0.8:  # most verdicts arrive, some late (next loop), some never
                    arrived.append((fid, truth[fid]))
            elif event < 0.4:
                gate.restart()
            decision = gate.decide(tuple(arrived[-8:]), now, worker_ok=True, forced=False)
            if decision.promote:
                shown_texture = spare
            if not decision.cover:
                assert shown_texture is not None and truth[shown_texture]


def test_the_workers_verdict_comes_from_the_real_pipeline(model_pool, astronaut_rgb, tmp_path, monkeypatch):
    """What the gate is fed: the pipeline effect says "swapped" for a swapped face and "not swapped"
    for no face or a face covered up, with the real MediaPipe models; diagnostics say what they are."""
    import numpy as np

    from facefusion_obs.bench.faces import astronaut_preset
    from facefusion_obs.config import validate_options
    from facefusion_obs.worker.effects import Passthrough, PipelineEffect, TestPattern

    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    options = validate_options({"effect": "pipeline", "preset": astronaut_preset(tmp_path), "matting": "off"})
    effect = PipelineEffect(options, model_pool)
    face = np.ascontiguousarray(np.dstack([astronaut_rgb[..., ::-1], np.full((512, 512), 255, np.uint8)]))
    covered = face.copy()
    covered[40:260, 120:330, :3] = 0  # a hand (or a mug) over the whole face
    out = np.empty_like(face)
    try:
        verdicts = []
        for i, frame in enumerate((face, face, face, covered, covered, covered, np.full_like(face, 128))):
            effect.process(frame, out, t=i / 30)  # frame times, not the wall clock: reproducible
            verdicts.append(effect.face_swapped)
        assert verdicts[:3] == [True, True, True]
        assert verdicts[-1] is False and not any(verdicts[4:]), "no face seen: not swapped"
        effect.configure(validate_options({**options, "swap_enabled": False}))
        effect.process(face, out, t=8 / 30)
        assert effect.face_swapped is False, "swap off: not swapped"
    finally:
        effect.pipeline.close()
    assert getattr(Passthrough(), "face_swapped", False) is False
    assert TestPattern().face_swapped is True


def test_a_failed_render_never_falls_back_to_the_camera_while_hiding():
    """The render trampoline's fallback (skip the filter, i.e. show the source) is refused while the
    face must stay hidden; a filter whose state cannot be read counts as hiding."""
    from types import SimpleNamespace

    from facefusion_obs.obs.registration import _must_hide

    assert _must_hide(SimpleNamespace(options={"privacy": True}, panic=False))
    assert _must_hide(SimpleNamespace(options={"privacy": False}, panic=True))
    assert not _must_hide(SimpleNamespace(options={"privacy": False}, panic=False))
    assert _must_hide(SimpleNamespace(options={}, panic=False)), "unreadable: fail closed"
