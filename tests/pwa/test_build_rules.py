"""`fieldllm build --rules FILE`: the field answers' rules file is checked, shipped, pre-cached and recorded; the
field modules and their vendored JSON Schema validator run in the page under its content-security-policy."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dist_server import DistServer
from pwa_env import ROOT

from app.build import build
from app.cli import main

FIELD = ROOT / "app" / "field"
RULES = json.loads((FIELD / "rules.json").read_text())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(out=tmp_path_factory.mktemp("field") / "dist", with_models=False).out


def _rules_file(folder: Path, **changes: Any) -> Path:
    path = folder / "site-rules.json"
    path.write_text(json.dumps({**RULES, **changes}, indent=1))
    return path


def test_default_rules_are_shipped_precached_and_recorded(dist: Path) -> None:
    source = (FIELD / "rules.json").read_bytes()
    assert (dist / "app/field/rules.json").read_bytes() == source
    info = json.loads((dist / "build-info.json").read_text())
    assert info["rules"] == {"url": "app/field/rules.json", "rules_version": RULES["rules_version"],
                             "sha256": _sha(source), "size": len(source)}
    listed = {e["url"]: e for e in json.loads((dist / "precache-manifest.json").read_text())["files"]}
    modules = {f"app/field/{p.name}" for p in FIELD.glob("*.js")}
    vendored = {p.relative_to(dist).as_posix() for p in (dist / "vendor/@cfworker/json-schema").rglob("*.js")}
    assert len(vendored) > 1, "the validator is a multi-file package: all its modules are copied"
    for url in {"app/field/rules.json", "app/field/tasks.json", *modules, *vendored}:
        data = (dist / url).read_bytes()
        assert listed[url]["sha256"] == _sha(data) and listed[url]["size"] == len(data), url
    assert (dist / "app/field/tasks.json").read_bytes() == (FIELD / "tasks.json").read_bytes()
    sw = (dist / "sw.js").read_text()
    assert _sha(source) in sw and '"app/field/rules.json"' in sw
    imports = json.loads(next(iter(
        s.split(">", 1)[1] for s in (dist / "index.html").read_text().split("<script")[1:] if "importmap" in s
    )).split("</script>")[0])["imports"]
    assert imports["@cfworker/json-schema"] == "./vendor/@cfworker/json-schema/dist/esm/index.js"


def test_cli_ships_another_rules_file_and_rebuilds_when_it_changes(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    site = _rules_file(tmp_path, rules_version="site-7")
    assert main(["build", "--no-model", "--rules", str(site), "--out", str(out)]) == 0
    assert (out / "app/field/rules.json").read_bytes() == site.read_bytes()
    info = json.loads((out / "build-info.json").read_text())
    assert info["rules"]["rules_version"] == "site-7" and info["rules"]["sha256"] == _sha(site.read_bytes())
    first_id = info["build_id"]
    site.write_text(json.dumps({**RULES, "rules_version": "site-8"}))
    again = build(out=out, with_models=False, rules=site)
    assert not again.up_to_date and again.build_id != first_id
    assert json.loads((out / "build-info.json").read_text())["rules"]["rules_version"] == "site-8"
    assert build(out=out, with_models=False, rules=site).up_to_date


@pytest.mark.parametrize(("changes", "says"), [
    ({"version": 2}, 'rules: unsupported format "fieldllm-rules" version 2: this reader supports'),
    ({"confidence_threshold": 7}, '"confidence_threshold" must be a number from 0 to 1'),
    ({"allow_lists": {"triage_interventions": ["CPR"]}}, "allow_lists.screening_next_steps must be a non-empty"),
])
def test_cli_refuses_a_bad_rules_file_in_one_line(changes: dict[str, Any], says: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = _rules_file(tmp_path, **changes)
    out = tmp_path / "dist"
    assert main(["build", "--no-model", "--rules", str(bad), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert says in err and str(bad) in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert main(["build", "--no-model", "--rules", str(tmp_path / "none.json"), "--out", str(out)]) != 0
    assert "cannot read it" in capsys.readouterr().err and not out.exists()


# loaded as a module script of the page (not through page.evaluate, which DevTools exempts from the CSP)
_CHECK_MODULE = """
import * as field from './app/field/index.js';

const violations = [];
document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
const bytes = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());
const rules = field.loadRules(await bytes('app/field/rules.json'));
const tasks = field.loadTasks(await bytes('app/field/tasks.json'));
const completion = %s;
const good = field.review('triage', 'SpO2 84%%, HR 38', [], completion, rules, tasks);
const bad = field.review('triage', 'HR 80', [], { ...completion, content: '{"priority": "soon"}' }, rules, tasks);
let evalBlocked = false; // the probe: one violation of its own, after the field code ran
try { new Function('return 1')(); } catch { evalBlocked = true; }
await new Promise((resolve) => setTimeout(resolve, 100));
const out = document.createElement('pre');
out.id = 'field-check';
out.textContent = JSON.stringify({ sha256: rules.sha256, good, bad, violations, evalBlocked });
document.body.append(out);
"""


def test_field_modules_run_in_the_page_under_its_csp(dist: Path, browser: Any, tmp_path: Path) -> None:
    site = shutil.copytree(dist, tmp_path / "dist")
    completion = {"content": json.dumps({"probable": ["hypoxia"], "priority": "minor",
                                         "interventions": ["high-flow oxygen"]}),
                  "finish_reason": "stop", "decisive_probability": 0.9}
    (site / "field-check.js").write_text(_CHECK_MODULE % json.dumps(completion))
    server = DistServer(site).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        response = page.goto(server.url("/"))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "'unsafe-eval'" not in response.headers["content-security-policy"]  # 'wasm-unsafe-eval' is no JS eval
        page.add_script_tag(url=server.url("/field-check.js"), type="module")
        page.wait_for_selector("#field-check", state="attached", timeout=30_000)
        out = json.loads(page.text_content("#field-check") or "{}")
    finally:
        context.close()
        server.stop()
    assert out["evalBlocked"], "the page's CSP must forbid eval, or this test shows nothing"
    assert out["violations"] == ["script-src eval"] and errors == [], "the field code itself violated the CSP"
    assert out["sha256"] == _sha((FIELD / "rules.json").read_bytes())
    good = out["good"]
    assert good["valid"] and good["escalate"] and [f["rule"] for f in good["fired"]] == ["spo2_low", "hr_low"]
    bad = out["bad"]
    assert not bad["valid"] and bad["answer"] is None and bad["safe_text"]
    assert "answer.priority: not one of the allowed values" in bad["problems"]
