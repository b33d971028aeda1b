"""Checks that the layout table of docs/architecture.md matches the tree, both ways.

Every path the table names (in backticks, in any column) must exist, and every suite, test
program, integration test binary and Terraform module of the tree must be named in it. Exits 1
with one line a problem.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def layout_section(text: str) -> str:
    m = re.search(r"^## Layout\b.*?$(.*?)^## ", text, re.S | re.M)
    if not m:
        sys.exit("docs/architecture.md: no '## Layout' section")
    return m.group(1)


def named_paths(section: str) -> set[str]:
    """Backticked words that look like paths of the repository (they hold a slash or a dot)."""
    names = set()
    for word in re.findall(r"`([^`\s]+)`", section):
        if word.startswith(("-", "$", "http")) or "*" in word or "<" in word:
            continue
        if "/" in word or re.search(r"\.\w+$", word):
            names.add(word)
    return names


def required(root: pathlib.Path) -> set[str]:
    """What the tree holds that the table must name."""
    need = set()
    for run in root.glob("tests/*/run.sh"):
        need.add(f"tests/{run.parent.name}/")
    for module in (root / "infra" / "modules").iterdir():
        if module.is_dir():
            need.add(f"infra/modules/{module.name}/")
    for program in (root / "test-tools" / "src" / "bin").iterdir():
        need.add(f"test-tools/src/bin/{program.name}")
    for crate in ("gateway", "tool-runtime", "sandbox", "localstack-lambda-host", "test-tools"):
        tests = root / crate / "tests"
        if not tests.is_dir():
            continue
        for entry in tests.iterdir():
            # One integration test binary is a top-level file or a folder with a main.rs.
            if entry.suffix == ".rs" or (entry / "main.rs").is_file():
                need.add(f"{crate}/tests/{entry.name}" + ("/" if entry.is_dir() else ""))
    return need


def main() -> int:
    section = layout_section(DOC.read_text())
    problems = []
    names = named_paths(section)
    for name in sorted(names):
        if not (ROOT / name.rstrip("/")).exists():
            problems.append(f"the layout table names `{name}`, which the tree does not hold")
    given = {n.rstrip("/") for n in names}
    for need in sorted(required(ROOT)):
        if need.rstrip("/") not in given:
            problems.append(f"the tree holds `{need}`, which the layout table does not name")
    for p in problems:
        print(f"docs/architecture.md: {p}")
    if not problems:
        print(f"docs/architecture.md layout: {len(names)} paths named, all present; "
              f"{len(required(ROOT))} suites, programs, test binaries and modules, all named")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
