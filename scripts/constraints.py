"""Write constraints.txt: the installed version of every package `callcenter[dev]` needs.

Run in an environment where the suite passes (`pip install -e ".[dev]"`, then the tests):
`python scripts/constraints.py`. CI and production install with `-c constraints.txt`.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

from packaging.requirements import Requirement

HEADER = """\
# Pinned versions for CI and production: `pip install -c constraints.txt -e .` (README,
# "Running in production"). Regenerate from a passing environment: python scripts/constraints.py
"""


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(root: str = "callcenter", extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(name: str, extras: tuple[str, ...]) -> None:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return  # not needed on this platform or Python
        key = _key(name)
        if key in found and not extras:
            return
        found[key] = dist.version
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            wanted = list(extras) or [""]
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": extra}) for extra in wanted):
                continue
            walk(requirement.name, tuple(requirement.extras))

    walk(root, extras)
    found.pop(_key(root), None)
    return found


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "constraints.txt"
    found = pins()
    path.write_text(HEADER + "".join(f"{name}=={found[name]}\n" for name in sorted(found)))
    print(f"{path}: {len(found)} pins")


if __name__ == "__main__":
    main()
