"""Shape decisions (tree-sitter), stop rules and clean-up."""

from __future__ import annotations

from slm_lsp.context import CursorContext
from slm_lsp.postprocess import clean, decide_shape, stop_rule


def ctx_at(source: str, language: str | None = "python") -> CursorContext:
    """A context from a source with a `|` marking the cursor."""
    prefix, suffix = source.split("|")
    line = prefix.count("\n")
    return CursorContext("file:///t", "t.py", language, prefix, suffix, line,
                         len(prefix) - (prefix.rfind("\n") + 1))


def test_mid_line_cursor_gets_rest_of_line_only():
    shape = decide_shape(ctx_at("def f(x):\n    return g(|x)\n"), 8)
    assert not shape.multiline and shape.max_lines == 1


def test_empty_python_body_after_def_opens_a_block():
    shape = decide_shape(ctx_at("def f(x):\n    |\n\nprint(1)\n"), 6)
    assert shape.multiline and shape.max_lines == 6 and shape.base_indent == 0


def test_body_already_written_is_single_line():
    shape = decide_shape(ctx_at("def f(x):\n    |\n    return x\n"), 6)
    assert not shape.multiline


def test_colon_inside_a_string_or_dict_does_not_open_a_block():
    assert not decide_shape(ctx_at('x = "a:"\n|\n'), 6).multiline
    assert not decide_shape(ctx_at("# note:\n|\n"), 6).multiline


def test_brace_opens_a_block_in_c_like_languages():
    src = "function f(a) {\n  |\n}\n"
    assert decide_shape(ctx_at(src, "javascript"), 5).multiline
    assert decide_shape(ctx_at("int main() {\n    |\n}\n", "c"), 5).multiline


def test_brace_inside_a_comment_does_not_open_a_block():
    assert not decide_shape(ctx_at("// a {\n|\n", "javascript"), 5).multiline


def test_single_line_stop_cuts_at_newline():
    ctx = ctx_at("x = |\n")
    stop = stop_rule(ctx, decide_shape(ctx, 8))
    assert stop("foo(1)") is None
    assert stop("foo(1)\nbar") == 6


def test_multiline_stop_at_dedent_and_line_cap():
    ctx = ctx_at("def f(x):\n    |\n")
    shape = decide_shape(ctx, 3)
    stop = stop_rule(ctx, shape)
    assert stop("a = 1\n    b = 2\n") is None
    text = "a = 1\n    return a\nprint(f(2))\n"
    assert text[: stop(text)] == "a = 1\n    return a"
    many = "a = 1\n    b = 2\n    c = 3\n    d = 4\n"
    assert many[: stop(many)] == "a = 1\n    b = 2\n    c = 3"


def test_special_tokens_never_survive():
    ctx = ctx_at("x = |\n")
    shape = decide_shape(ctx, 8)
    assert stop_rule(ctx, shape)("1<|endoftext|>") == 1
    assert clean("foo<|fim_middle|>bar", ctx, shape) == "foo"
    assert clean("foo<file_sep>x", ctx, shape) == "foo"


def test_text_repeating_the_rest_of_the_line_is_trimmed():
    ctx = ctx_at("print(|)\n")
    shape = decide_shape(ctx, 8)
    assert clean("x + 1)", ctx, shape) == "x + 1"
    ctx2 = ctx_at("if ok(|):\n    pass\n")
    assert clean("a, b):", ctx2, decide_shape(ctx2, 8)) == "a, b"


def test_suggestion_equal_to_the_next_line_is_dropped():
    ctx = ctx_at("def f(x):\n    y = x\n    |\n    return y\n")
    assert clean("return y", ctx, decide_shape(ctx, 8)) == ""


def test_multiline_suggestion_running_into_existing_code_is_cut():
    ctx = ctx_at("def f(x):\n    |\n\nprint(f(1))\n")
    shape = decide_shape(ctx, 8)
    assert clean("y = x * 2\n    return y\n\nprint(f(1))", ctx, shape) == \
        "y = x * 2\n    return y"


def test_whitespace_only_is_nothing():
    ctx = ctx_at("x = |\n")
    assert clean("   ", ctx, decide_shape(ctx, 8)) == ""
