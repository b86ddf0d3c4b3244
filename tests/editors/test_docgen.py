"""The generated settings docs and VS Code schema stay in sync with slm_lsp/settings.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from slm_lsp import docgen
from slm_lsp.settings import describe

REPO = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    """Fails when settings.py changed without `python -m slm_lsp.docgen` being rerun."""
    result = subprocess.run([sys.executable, "-m", "slm_lsp.docgen", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + "\nRun: python -m slm_lsp.docgen"


def test_table_lists_every_setting() -> None:
    table = docgen.render_server_table()
    lines = table.strip().splitlines()
    assert lines[0] == "| Setting | Type | Default | Description |"
    rows = describe()
    assert len(lines) == 2 + len(rows)
    for row, line in zip(rows, lines[2:], strict=True):
        assert line.startswith(f"| `{row.key}` |")
        assert row.doc.replace("|", "\\|") in line
    assert '| `slm.completion.maxTokens` | integer | `64` |' in table
    assert '| `slm.model.name` | string | `"qwen2.5-coder-0.5b"` |' in table


def test_vscode_properties_mirror_the_server_settings() -> None:
    props = docgen.vscode_properties()
    json_types = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
    for row in describe():
        prop = props[row.key]
        assert prop["type"] == json_types[row.type]
        assert prop["default"] == row.default
        assert prop["markdownDescription"] == row.doc
    assert props["slm.completion.maxTokens"]["minimum"] == 1
    assert props["slm.completion.maxTokens"]["maximum"] == 1024
    assert props["slm.logLevel"]["enum"] == ["debug", "info", "warning", "error"]
    for client in docgen.CLIENT_SETTINGS:
        assert props[client.key]["default"] == client.default
    orders = [p["order"] for p in props.values()]
    assert orders == sorted(orders)


def test_package_json_keeps_everything_but_the_configuration() -> None:
    text = (REPO / "editors/vscode/package.json").read_text(encoding="utf-8")
    data = json.loads(text)
    data["contributes"]["configuration"] = {"stale": True}
    rendered = json.loads(docgen.render_package_json(json.dumps(data)))
    assert rendered["contributes"]["commands"] == data["contributes"]["commands"]
    assert rendered["name"] == "slm-lsp"
    assert "slm.completion.maxTokens" in rendered["contributes"]["configuration"]["properties"]


def test_markers_are_replaced_and_other_text_kept() -> None:
    text = "intro\n<!-- settings:begin -->\nold table\n<!-- settings:end -->\noutro\n"
    out = docgen.render_markdown(text)
    assert out is not None
    assert out.startswith("intro\n<!-- settings:begin -->\n")
    assert out.endswith("<!-- settings:end -->\noutro\n")
    assert "old table" not in out
    assert "`slm.index.enabled`" in out
    assert docgen.render_markdown(out) == out, "idempotent"
    assert docgen.render_markdown("no markers here") is None


def test_check_reports_drift_and_write_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "editors/vscode").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "editors/vscode/package.json", tmp_path / "editors/vscode/package.json")
    doc = tmp_path / "docs/editors.md"
    doc.write_text("# x\n<!-- settings:begin -->\n<!-- settings:end -->\n", encoding="utf-8")
    root = ["--root", str(tmp_path)]
    assert docgen.main([*root, "--check"]) == 1
    assert docgen.main(root) == 0
    assert docgen.main([*root, "--check"]) == 0
    assert "`slm.model.path`" in doc.read_text(encoding="utf-8")
    pkg = tmp_path / "editors/vscode/package.json"
    data = json.loads(pkg.read_text(encoding="utf-8"))
    del data["contributes"]["configuration"]["properties"]["slm.model.path"]
    pkg.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    assert docgen.main([*root, "--check"]) == 1
    missing = tmp_path / "nomarkers.md"
    missing.write_text("nothing\n", encoding="utf-8")
    assert docgen.main([*root, "--check", str(missing)]) == 2
