"""The explanation engine with a scripted backend: targets, cache, guard, docstrings, router."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from slm_lsp.backends.base import BackendError, Cancelled
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.explain.cache import ExplainCache
from slm_lsp.explain.explainer import Explainer
from slm_lsp.explain.guard import clean_explanation, code_names, guard
from slm_lsp.explain.router import ModelRouter
from slm_lsp.explain.target import header_markdown, resolve_target
from slm_lsp.settings import ExplainSettings, ModelSettings
from slm_lsp.symbols import SourceTree, definitions

APP = '''from .store import Store


def handle(request):
    store = Store(request.root)
    return store.load(request.name)
'''
STORE = '''class Store:
    """Keeps files."""

    def __init__(self, root):
        self.root = root

    def load(self, name):
        data = read_file(self.root, name)
        return decode(data)


def read_file(root, name):
    return open(root + name).read()


def decode(data):
    return data.strip()
'''
REPLY = "It reads the file with `read_file` and returns it decoded by `decode`. It uses `self.root`."


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "app.py").write_text(APP)
    (root / "pkg" / "store.py").write_text(STORE)
    return root


def make_explainer(root: Path, backend: FakeBackend, cache_dir: Path | None = None,
                   docs: dict[str, str] | None = None) -> Explainer:
    tree = SourceTree(str(root), open_docs=lambda: docs or {}, rescan_s=0)
    router = ModelRouter(lambda timeout: backend)
    return Explainer(tree, router, ExplainCache(cache_dir), ExplainSettings(max_tokens=200))


def hover(explainer: Explainer, root: Path, line: int, col: int, text: str = APP):
    path = str(root / "pkg" / "app.py")
    return explainer.target_at(path, text, "python", line, col)


def test_call_site_resolves_to_the_method_with_context_and_callees(tmp_path):
    root = make_repo(tmp_path)
    target = hover(make_explainer(root, FakeBackend(REPLY)), root, 5, 18)  # store.load(
    assert target is not None and target.definition is not None
    assert target.definition.qualname == "Store.load"
    assert Path(target.definition.path).name == "store.py" and target.definition.line == 6
    assert target.scope is not None and target.scope.qualname == "Store"
    assert [c.name for c in target.callees] == ["read_file", "decode"]
    header = header_markdown(target, str(root))
    assert "pkg/store.py:7" in header and "def load(self, name)" in header


def test_class_call_resolves_across_files_and_unknown_names_have_no_definition(tmp_path):
    root = make_repo(tmp_path)
    explainer = make_explainer(root, FakeBackend(REPLY))
    assert hover(explainer, root, 4, 13).definition.qualname == "Store"
    target = hover(explainer, root, 5, 30)  # request.name: an attribute defined nowhere
    assert target is not None and target.definition is None
    assert "no definition found" in header_markdown(target, str(root))
    assert hover(explainer, root, 1, 0) is None


def test_explanation_prompt_is_grounded_and_cached(tmp_path):
    root = make_repo(tmp_path)
    backend = FakeBackend(REPLY)
    explainer = make_explainer(root, backend, tmp_path / "cache")
    target = hover(explainer, root, 5, 18)
    first = explainer.explain(target)
    assert first.source == "model" and "`read_file`" in first.text and first.removed == []
    prompt = backend.prompts[-1]
    for needle in ("def load(self, name):", "def read_file(root, name)", "class Store",
                   "(Keeps files.)"):
        assert needle in prompt
    second = explainer.explain(target)
    assert second.source == "cache" and second.text == first.text and len(backend.prompts) == 1
    again = make_explainer(root, backend, tmp_path / "cache")  # a restarted server: from disk
    assert again.explain(hover(again, root, 5, 18)).source == "cache"
    assert list((tmp_path / "cache").rglob("*.json"))
    store = (root / "pkg" / "store.py").read_text().split("\n")
    on_definition = again.target_at(str(root / "pkg" / "store.py"), "\n".join(store), "python",
                                    6, 9)  # the same method, hovered at its definition
    assert on_definition.definition.qualname == "Store.load"
    assert again.explain(on_definition).source == "cache"


def test_changed_definition_or_model_misses_the_cache(tmp_path):
    root = make_repo(tmp_path)
    backend = FakeBackend(REPLY)
    explainer = make_explainer(root, backend, tmp_path / "cache")
    explainer.explain(hover(explainer, root, 5, 18))
    store = root / "pkg" / "store.py"
    store.write_text(STORE.replace("return decode(data)", "return decode(data) or None"))
    explainer.tree._listed_at = -1e9
    import os

    os.utime(store, ns=(1, 10**18))
    assert explainer.explain(hover(explainer, root, 5, 18)).source == "model"
    other = FakeBackend(REPLY)
    other_explainer = Explainer(explainer.tree, ModelRouter(lambda t: _Named(other)),
                                explainer.cache, explainer.settings)
    assert other_explainer.explain(hover(other_explainer, root, 5, 18)).source == "model"


class _Named(FakeBackend):
    """A fake with another model name."""

    def __init__(self, inner: FakeBackend) -> None:
        super().__init__(REPLY)

    @property
    def name(self) -> str:
        return "other-model"


def test_guard_drops_sentences_naming_unknown_code(tmp_path):
    root = make_repo(tmp_path)
    reply = ("It loads a file through `read_file`. It then calls `cache_everything()` and "
             "decodes with decode_bytes_fast. Finally it returns the data.")
    explainer = make_explainer(root, FakeBackend(reply))
    result = explainer.explain(hover(explainer, root, 5, 18))
    assert result.text == "It loads a file through `read_file`. Finally it returns the data."
    assert set(result.removed) == {"cache_everything", "decode_bytes_fast"}


def test_guard_on_real_code():
    import jinja2

    source = (Path(jinja2.__file__).parent / "utils.py").read_text()
    d = next(x for x in definitions(source, "python", "utils.py") if x.name == "select_autoescape")
    known = set(__import__("re").findall(r"\w+", d.text))
    text = ("`select_autoescape` builds a function that decides autoescaping from the template "
            "name. It lowercases `template_name` and checks `enabled_extensions`. "
            "It then calls `compile_autoescape_regex()` for speed. "
            "Dotted names like jinja2.Environment.autoescape_policy are not in the code. "
            "The default is `default_for_string`, e.g. for strings.")
    out = guard(text, known.__contains__)
    assert "compile_autoescape_regex" not in out.text and "autoescape_policy" not in out.text
    assert "`enabled_extensions`" in out.text and "`default_for_string`, e.g. for strings" in out.text
    assert {"compile_autoescape_regex", "autoescape_policy"} <= set(out.removed)
    assert "Dotted names" not in out.text


def test_code_names_skip_prose_and_literals():
    assert code_names("It returns `None` or `'utf-8'`, e.g. a string.") == ["None"]
    assert code_names("It calls os.path.join() and parseArgs(x).") == ["os", "path", "join",
                                                                        "parseArgs"]


def test_clean_explanation_keeps_whole_sentences_of_prose():
    raw = "## Summary\nIt loads `x`.\n```python\ncode()\n```\n- It returns it. And then it"
    assert clean_explanation(raw, complete=False) == "Summary It loads `x`. It returns it."
    assert clean_explanation("Only a fragment", complete=False) == ""
    assert clean_explanation("<|im_end|>Done.") == "Done."


def test_cancel_stops_generation_promptly(tmp_path):
    root = make_repo(tmp_path)
    explainer = make_explainer(root, FakeBackend("x" * 1000, delay=0.01))
    target = hover(explainer, root, 5, 18)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        explainer.explain(target, cancel)
    assert time.monotonic() - start < 1


def test_time_budget_keeps_finished_sentences_in_memory_only(tmp_path):
    root = make_repo(tmp_path)
    backend = FakeBackend("It loads the file. " + "More words " * 200, delay=0.002)
    explainer = make_explainer(root, backend, tmp_path / "cache")
    target = hover(explainer, root, 5, 18)
    result = explainer.explain(target, threading.Event(), budget_s=0.3)
    assert result.text == "It loads the file." and result.timed_out
    assert explainer.explain(target, threading.Event(), 0.05).source == "cache"  # this session
    assert not list((tmp_path / "cache").rglob("*.json"))  # but not on disk


def test_backend_error_becomes_a_problem_not_an_exception(tmp_path):
    root = make_repo(tmp_path)
    tree = SourceTree(str(root))

    def missing(timeout: float):
        raise BackendError("the model is still loading")

    explainer = Explainer(tree, ModelRouter(missing), ExplainCache(None))
    target = resolve_target(tree, str(root / "pkg" / "app.py"), APP, "python", 5, 18)
    result = explainer.explain(target)
    assert result.text == "" and result.problem == "the model is still loading"


def test_repeat_hover_on_a_real_repository_is_a_cache_hit_under_150_ms(tmp_path):
    import jinja2

    root = tmp_path / "jinja"
    shutil.copytree(Path(jinja2.__file__).parent, root / "jinja2")
    path = root / "jinja2" / "environment.py"
    text = path.read_text()
    line = next(i for i, x in enumerate(text.split("\n")) if "return self._load_template(name, gl" in x)
    col = text.split("\n")[line].index("_load_template")
    backend = FakeBackend("It loads a template by `name` and caches it.")
    explainer = Explainer(SourceTree(str(root)), ModelRouter(lambda t: backend),
                          ExplainCache(tmp_path / "cache"))
    target = explainer.target_at(str(path), text, "python", line, col)
    assert target.definition.qualname == "Environment._load_template"
    assert explainer.explain(target).source == "model"
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        target = explainer.target_at(str(path), text, "python", line, col)
        result = explainer.explain(target)
        timings.append((time.perf_counter() - start) * 1000)
        assert result.source == "cache"
    assert min(timings) < 150, timings


def test_docstring_edits_from_the_model_and_the_fallback(tmp_path):
    root = make_repo(tmp_path)
    path = str(root / "pkg" / "store.py")
    explainer = make_explainer(root, FakeBackend('"Read the file and decode it." extra words.'))
    edit = explainer.docstring(path, STORE, "python", 6)
    assert edit is not None and edit.generated and edit.line == 7
    assert edit.text == '        """Read the file and decode it."""\n'
    failing = make_explainer(root, FakeBackend(""))
    fallback = failing.docstring(path, STORE, "python", 11)
    assert not fallback.generated and fallback.line == 12
    assert fallback.text == ('    """TODO: describe read_file.\n\n    Args:\n        root: TODO.\n'
                             '        name: TODO.\n    """\n')
    assert explainer.docstring(path, STORE, "python", 0) is None  # Store has a docstring


@pytest.mark.parametrize("language,text,line,expected", [
    ("go", "package m\n\nfunc Sum(a, b int) int {\n\treturn a + b\n}\n", 2,
     "// Sum return the sum of two numbers.\n"),
    ("rust", "impl S {\n    pub fn sum(&self) -> u8 { 0 }\n}\n", 1,
     "    /// Return the sum of two numbers.\n"),
    ("javascript", "class A {\n  sum(a, b) { return a + b; }\n}\n", 1,
     "  /**\n   * Return the sum of two numbers.\n   */\n"),
    ("java", "class A {\n  int sum(int a) { return a; }\n}\n", 1,
     "  /**\n   * Return the sum of two numbers.\n   */\n"),
    ("cpp", "int sum(int a, int b) { return a + b; }\n", 0,
     "/**\n * Return the sum of two numbers.\n */\n"),
])
def test_docstring_convention_per_language(tmp_path, language, text, line, expected):
    ext = {"go": "go", "rust": "rs", "javascript": "js", "java": "java", "cpp": "cpp"}[language]
    file = tmp_path / f"m.{ext}"
    file.write_text(text)
    explainer = make_explainer(tmp_path, FakeBackend("Return the sum of two numbers."))
    edit = explainer.docstring(str(file), text, language, line)
    assert edit is not None and edit.generated
    assert (edit.line, edit.text) == (line, expected)


class _Spawning(FakeBackend):
    def __init__(self) -> None:
        super().__init__("ok.")
        self.spawned: list[FakeBackend] = []

    def spawn(self, n_ctx: int = 0) -> FakeBackend:
        child = FakeBackend("ok.")
        self.spawned.append(child)
        return child


def test_router_spawns_one_context_on_the_completion_model_and_respawns_after_reload():
    first, second = _Spawning(), _Spawning()
    current = [first]
    router = ModelRouter(lambda timeout: current[0])
    router.configure(ExplainSettings(), ModelSettings())
    a = router.get()
    assert router.get() is a and first.spawned == [a]
    current[0] = second
    b = router.get()
    assert b is second.spawned[0] and a.closed


def test_an_idle_spawned_context_is_freed_and_made_again_on_the_next_use():
    model = _Spawning()
    router = ModelRouter(lambda timeout: model)
    router.configure(ExplainSettings(release_after_s=0), ModelSettings())
    with router.lease() as a:
        assert not router.release_idle(), "a context in use is never freed"
        assert not a.closed
    deadline = time.monotonic() + 5
    while not a.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a.closed, "the release timer freed the context after its last use"
    with router.lease() as b:
        assert b is not a and model.spawned == [a, b]


def test_a_new_lease_keeps_the_context_past_the_release_time():
    model = _Spawning()
    router = ModelRouter(lambda timeout: model)
    router.configure(ExplainSettings(release_after_s=1), ModelSettings())
    with router.lease() as a:
        pass
    time.sleep(0.6)
    with router.lease() as again:  # restarts the idle clock
        time.sleep(0.6)
        assert again is a and not a.closed
    assert not a.closed
    time.sleep(1.5)
    assert a.closed


def test_router_loads_a_dedicated_model_lazily_in_the_background(tmp_path):
    gguf = tmp_path / "explain.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    loaded: list[Path] = []

    def loader(path: Path) -> FakeBackend:
        loaded.append(path)
        time.sleep(0.1)
        return FakeBackend("dedicated.")

    router = ModelRouter(lambda timeout: None, loader=loader)
    router.configure(ExplainSettings(model_path=str(gguf)), ModelSettings())
    assert loaded == [] and router.identity() == "explain.gguf:20"
    backend = router.get()
    assert loaded == [gguf] and router.get() is backend
    router.configure(ExplainSettings(model_path=""), ModelSettings())
    assert backend.closed
    router.configure(ExplainSettings(model_path=str(tmp_path / "missing.gguf")), ModelSettings())
    with pytest.raises(BackendError, match="explanation model"):
        router.get()


def test_cache_survives_a_corrupt_file(tmp_path):
    cache = ExplainCache(tmp_path)
    cache.put("ab" * 32, "text")
    assert ExplainCache(tmp_path).get("ab" * 32) == "text"
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_text("{not json")
    assert ExplainCache(tmp_path).get("ab" * 32) is None


def test_generation_stops_after_the_task_sentence_limit(tmp_path):
    root = make_repo(tmp_path)
    reply = "One. Two, e.g. this. Three uses `read_file` here. Four. Five."
    backend = FakeBackend(reply)
    explainer = make_explainer(root, backend)
    result = explainer.explain(hover(explainer, root, 5, 18))
    assert result.text == "One. Two, e.g. this. Three uses `read_file` here."
    assert result.source == "model"


def test_router_names_an_unloaded_completion_model_by_its_file(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 4)
    router = ModelRouter(lambda timeout: None, shared_path=gguf)
    assert router.identity() == "m.gguf:8"
    assert ModelRouter(lambda timeout: None).identity() == "unloaded"
