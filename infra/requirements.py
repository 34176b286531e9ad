"""Render requirements.txt (what the Azure Functions build installs) from pyproject.toml.

pyproject.toml is the one source of truth: its base dependencies are exactly what the Functions app
needs, plus the extras a deployment on Azure uses (FUNCTIONS_EXTRAS). Run from the repository root:

    python infra/requirements.py            # writes requirements.txt
    python infra/requirements.py --check    # exits 1 if requirements.txt is out of date
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Extras that ship with the Functions app too (none needed to index or serve the app).
FUNCTIONS_EXTRAS: tuple[str, ...] = ("azuremonitor",)
HEADER = ("# What the Azure Functions app installs. Generated from pyproject.toml by infra/requirements.py:\n"
          "# edit pyproject.toml, then run `python infra/requirements.py` (make requirements).\n")


def render(pyproject: Path = ROOT / "pyproject.toml") -> str:
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in FUNCTIONS_EXTRAS:
        lines += [d for d in project["optional-dependencies"][extra] if d not in lines]
    return HEADER + "".join(f"{line}\n" for line in lines)


def main(argv: list[str]) -> int:
    target = ROOT / "requirements.txt"
    text = render()
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print("requirements.txt is out of date: run `python infra/requirements.py`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
