"""The router between a small and a large model, with scripted backends: which request goes
where, escalation of unsure keystroke suggestions, and how the runtime assembles it."""

from __future__ import annotations

import math

from prompts.explain import Message
from prompts.fim import FAMILIES, Segment, special
from slm_lsp.backends.base import BackendError
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.backends.router import Router
from slm_lsp.context import CursorContext
from slm_lsp.engine import CompletionEngine
from slm_lsp.runtime import with_large
from slm_lsp.settings import BackendSettings, CompletionSettings, parse_settings

QWEN = FAMILIES[0]
PROMPT = [special(QWEN.prefix), Segment("x = 1\n"), special(QWEN.suffix), special(QWEN.middle)]


def _pair(small_logprob: float | None, below: float) -> tuple[FakeBackend, FakeBackend, Router]:
    small = FakeBackend("small answer", name="small.gguf", logprob=small_logprob)
    large = FakeBackend("large answer", name="large.gguf", logprob=-0.01)
    return small, large, Router(small, large, escalate_below=below)


def test_a_sure_keystroke_stays_on_the_small_model():
    small, large, router = _pair(math.log(0.9), below=0.5)
    assert router.route("keystroke").generate(PROMPT, max_tokens=20).text == "small answer"
    assert len(small.prompts) == 1 and not large.prompts and router.last == "small.gguf"


def test_an_unsure_keystroke_is_asked_again_of_the_large_model():
    small, large, router = _pair(math.log(0.3), below=0.5)
    gen = router.route("keystroke").generate(PROMPT, max_tokens=20)
    assert gen.text == "large answer" and router.last == "large.gguf"
    assert large.prompts == small.prompts  # the same prompt, once on each model
    assert math.isclose(gen.timings["escalated_logprob"], math.log(0.3))


def test_escalation_is_off_at_zero_and_without_a_probability():
    for logprob, below in ((math.log(0.01), 0.0), (None, 0.9)):
        small, large, router = _pair(logprob, below)
        assert router.route("keystroke").generate(PROMPT, max_tokens=20).text == "small answer"
        assert not large.prompts


def test_escalation_skips_a_server_known_to_be_down():
    small, large, router = _pair(math.log(0.1), below=0.5)
    large.answering = False  # type: ignore[attr-defined]  # what FallbackBackend says when its breaker is open
    assert router.route("keystroke").generate(PROMPT, max_tokens=20).text == "small answer"
    assert not large.prompts


def test_everything_but_keystrokes_goes_to_the_large_model():
    small, large, router = _pair(math.log(0.9), below=0.0)
    assert router.route("large").generate(PROMPT, max_tokens=20).text == "large answer"
    router.chat([Message("user", "explain x")], max_tokens=20)  # rendered with its template
    assert len(large.prompts) == 2 and not small.prompts
    everything = Router(small, large, keystrokes_small=False)
    assert everything.route("keystroke") is everything


def test_the_engine_sends_invoked_and_block_completions_to_the_large_model():
    small, large, router = _pair(math.log(0.9), below=0.0)
    engine = CompletionEngine(router, CompletionSettings(token_healing=False))

    def ctx(prefix: str, invoked: bool) -> CursorContext:
        return CursorContext(prefix=prefix, suffix="\n", path="a.py", language="python",
                             uri="file:///a.py", line=prefix.count("\n"),
                             character=len(prefix.rsplit("\n", 1)[-1]), invoked=invoked)

    assert engine.complete(ctx("x = ", False)).text == "small answer"
    assert engine.complete(ctx("y = ", True)).text == "large answer"
    assert engine.complete(ctx("def f():\n    ", False)).text.startswith("large answer")


def test_the_runtime_loads_a_local_large_model_by_name():
    small = FakeBackend("s", name="small.gguf")
    loaded: list[str] = []

    def load(name: str) -> FakeBackend:
        loaded.append(name)
        return FakeBackend("l", name=f"{name}.gguf")

    notes: list[tuple[str, str]] = []
    settings = BackendSettings(large_model="qwen2.5-coder-1.5b", escalate_below=0.4)
    router = with_large(settings, small, lambda k, m: notes.append((k, m)), load)
    assert isinstance(router, Router) and loaded == ["qwen2.5-coder-1.5b"]
    assert router.small is small and router.escalate_below == 0.4 and not notes
    router.close()
    assert small.closed and router.large.closed  # type: ignore[attr-defined]


def test_a_large_model_that_cannot_load_leaves_the_small_one_serving():
    small = FakeBackend("s")

    def load(name: str) -> FakeBackend:
        raise BackendError(f"model {name} is not installed; run `slm-lsp model install {name}`")

    notes: list[tuple[str, str]] = []
    chosen = with_large(BackendSettings(large_model="qwen2.5-coder-1.5b"), small,
                        lambda k, m: notes.append((k, m)), load)
    assert chosen is small and notes[0][0] == "refused" and "model install" in notes[0][1]


def test_router_settings_parse_and_reject_bad_values():
    settings, problems = parse_settings({"backend": {"largeModel": "qwen2.5-coder-1.5b",
                                                     "escalateBelow": 0.45}})
    assert not problems and settings.backend.escalate_below == 0.45
    settings, problems = parse_settings({"backend": {"escalateBelow": 1}})
    assert not problems and isinstance(settings.backend.escalate_below, float)
    for bad in (1.5, -0.1, True, "0.5"):
        settings, problems = parse_settings({"backend": {"escalateBelow": bad}})
        assert settings.backend.escalate_below == 0.0 and len(problems) == 1, bad
