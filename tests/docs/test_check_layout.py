"""The layout check is a check: on a copy of the docs and a small tree, a folder the table
names and the tree lost fails it, and so does a suite the table does not name."""

import importlib.util
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("check_layout", HERE / "check_layout.py")
check_layout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layout)

REAL = check_layout.ROOT


def tree_copy(tmp: pathlib.Path) -> pathlib.Path:
    """A copy of what the check reads: the docs and the folders it lists."""
    root = tmp / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(REAL / "docs" / "architecture.md", root / "docs" / "architecture.md")
    section = check_layout.layout_section((REAL / "docs" / "architecture.md").read_text())
    for name in check_layout.named_paths(section):
        src = REAL / name.rstrip("/")
        dst = root / name.rstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            dst.mkdir(exist_ok=True)
        else:
            dst.touch()
    for need in check_layout.required(REAL):
        dst = root / need.rstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if need.startswith("tests/") and need.count("/") == 2:
            dst.mkdir(exist_ok=True)
            (dst / "run.sh").touch()
        elif need.endswith("/"):
            dst.mkdir(exist_ok=True)
            if "/tests/" in need:
                (dst / "main.rs").touch()
        else:
            dst.touch()
    return root


def run(root: pathlib.Path) -> int:
    check_layout.ROOT = root
    check_layout.DOC = root / "docs" / "architecture.md"
    try:
        return check_layout.main()
    finally:
        check_layout.ROOT = REAL
        check_layout.DOC = REAL / "docs" / "architecture.md"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = tree_copy(pathlib.Path(tmp))
        assert run(root) == 0, "the copied tree should pass"
        shutil.rmtree(root / "infra" / "modules" / "network")
        assert run(root) == 1, "a module the table names is gone: the check must fail"
        (root / "infra" / "modules" / "network").mkdir()
        (root / "tests" / "unnamed-suite").mkdir()
        (root / "tests" / "unnamed-suite" / "run.sh").touch()
        assert run(root) == 1, "a suite the table does not name: the check must fail"
    print("check_layout fails on a lost module and on an unnamed suite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
