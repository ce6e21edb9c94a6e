"""Dependencies run one way (docs/ARCHITECTURE.md): app -> model_prep, never back; the UI -> the engine's public
module, never into its GPU layer. Read from the sources (imports, lazy ones included), not from a running process."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_model_prep_never_imports_the_app() -> None:
    files = sorted((ROOT / "model_prep").rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    back = {str(f.relative_to(ROOT)): sorted(n for n in _python_imports(f) if n == "app" or n.startswith("app."))
            for f in files}
    assert {f: n for f, n in back.items() if n} == {}


def test_the_command_line_lives_on_the_app_side() -> None:
    assert not (ROOT / "model_prep" / "cli.py").exists()
    assert "model_prep.prepare" in _python_imports(ROOT / "app" / "cli.py")


_JS_IMPORT = re.compile(r"""(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]""")


def _js_imports(path: Path) -> list[str]:
    return [a or b for a, b in _JS_IMPORT.findall(path.read_text())]


def test_the_ui_uses_only_the_engines_public_module() -> None:
    files = sorted((ROOT / "app" / "ui").glob("*.js"))
    assert len(files) > 10
    all_imports = {f.name: _js_imports(f) for f in files}
    assert any("../engine/index.js" in i for i in all_imports.values())  # the pattern sees the imports
    into_engine = {name: [i for i in imports if "/engine/" in i and not i.endswith("/engine/index.js")]
                   for name, imports in all_imports.items()}
    assert {name: i for name, i in into_engine.items() if i} == {}
