"""The import deferral that keeps unused libraries out of the server's memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (module caches are per process)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_deferred_function_loads_its_module_on_the_first_call() -> None:
    out = run("""
        import sys
        from indexer.embedder import _deferring
        with _deferring({"colorsys": frozenset({"rgb_to_hsv"})}):
            from colorsys import rgb_to_hsv
        print("colorsys" in sys.modules)
        print(rgb_to_hsv(1.0, 0.0, 0.0))
        print(type(sys.modules["colorsys"]).__name__)
    """)
    assert out.split("\n") == ["False", "(0.0, 1.0, 1.0)", "module"]


def test_other_attributes_load_the_real_module_at_once() -> None:
    out = run("""
        import sys
        from indexer.embedder import _deferring
        with _deferring({"colorsys": frozenset({"rgb_to_hsv"})}):
            from colorsys import hls_to_rgb
        print("colorsys" in sys.modules, hls_to_rgb.__module__)
    """)
    assert out == "True colorsys"


def test_a_module_already_loaded_is_left_alone() -> None:
    out = run("""
        import colorsys, sys
        from indexer.embedder import _deferring
        with _deferring({"colorsys": frozenset({"rgb_to_hsv"})}):
            from colorsys import rgb_to_hsv
        print(rgb_to_hsv is colorsys.rgb_to_hsv, sys.modules["colorsys"] is colorsys)
    """)
    assert out == "True True"


def test_a_failed_import_removes_the_stand_in() -> None:
    out = run("""
        import sys
        from indexer.embedder import _deferring
        try:
            with _deferring({"colorsys": frozenset({"rgb_to_hsv"})}):
                raise ImportError("broken")
        except ImportError:
            pass
        print("colorsys" in sys.modules)
        import colorsys
        print(type(colorsys).__name__, colorsys.rgb_to_hsv(0.0, 1.0, 0.0)[0] > 0.3)
    """)
    assert out.split("\n") == ["False", "module True"]
