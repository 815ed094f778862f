"""docs/deploy.md's walkthrough does what it says: commands that a reader pastes must work as written."""

from __future__ import annotations

import re

import yaml

from tests.deploy.tools import REPO_ROOT, run, tool

DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^\s*```{language}\n(.*?)^\s*```", DEPLOY_DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


def smoke_test() -> str:
    [block] = [b for b in code_blocks("bash") if "/v1/catalog/imports" in b and "/v1/search" in b]
    return block


def test_the_smoke_test_searches_only_after_the_import_succeeded():
    block = smoke_test()
    started = block.index("-F file=@catalog.csv")
    loop = re.search(r"while :; do[^\n]*\n(.*?)\ndone", block[started:], flags=re.DOTALL)
    assert loop, "poll the import until it has finished"
    assert "/v1/catalog/imports/$JOB" in loop[1] and '"$AUTH"' in loop[1]
    assert "succeeded" in loop[1] and "failed" in loop[1] and "break" in loop[1]
    assert block.index("/v1/search") > started + loop.end(), "search once the loop is over"


def test_the_smoke_tests_catalog_uses_image_urls_the_reader_supplies():
    """Placeholder image URLs fail every row: the products never reach the index and the search finds nothing."""
    block = smoke_test()
    csv = re.search(r"cat > catalog.csv <<EOF\n(.*?)\nEOF", block, flags=re.DOTALL)[1].splitlines()
    header = csv[0].split(",")
    for row in csv[1:]:
        image = row.split(",")[header.index("image")]
        assert re.fullmatch(r"\$[A-Z_0-9]+", image), f"{image}: let the reader put a real image's URL here"
        assert re.search(rf"^{re.escape(image[1:])}=", block, flags=re.MULTILINE)


def test_the_sample_ingress_never_exposes_metrics(tmp_path):
    [ingress] = [doc for block in code_blocks("yaml") for doc in yaml.safe_load_all(block)
                 if isinstance(doc, dict) and doc.get("kind") == "Ingress"]
    (tmp_path / "ingress.yaml").write_text(yaml.safe_dump(ingress))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.33.0", tmp_path / "ingress.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    paths = [(p["path"], p["pathType"]) for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths
    for path, path_type in paths:
        assert path_type in ("Prefix", "Exact"), path_type
        exposed = "/metrics" == path or (path_type == "Prefix" and "/metrics".startswith(path.rstrip("/") + "/"))
        assert not exposed and path != "/", f"{path} ({path_type}) would route /metrics to the internet"
