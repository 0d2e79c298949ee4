"""docs/security.md: every line names tests, and every test it names exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def table_rows() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if line.startswith("| ") and not line.startswith(("| can", "|---"))]


def test_every_row_names_at_least_one_test():
    rows = table_rows()
    assert len(rows) >= 20
    assert [row for row in rows if not REFERENCE.search(row)] == []


def test_every_test_named_exists():
    missing = [
        f"{file}::{name}"
        for file, name in REFERENCE.findall(DOC.read_text())
        if not (ROOT / file).exists() or name not in defined_tests(ROOT / file)
    ]
    assert missing == []
