"""Version pins of the independent implementations the golden fixture generators import.

A fixture is only reproducible with the versions that made it: each generator calls
require() with the packages it imports, which refuses to run on other versions (naming the
pip command that installs the pinned ones; VIREO_GOLDEN_ANY_VERSION=1 overrides, and the
fixture then records what was really used), and writes header() as its fixture's first line.
"""
import os
import sys
from importlib import metadata

PINS = {
    "torch": "2.15.0",
    "transformers": "5.25.0",
    "accelerate": "1.16.0",
    "gguf": "0.19.0",
    "numpy": "2.4.6",
}


def _installed(pkg):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def require(*pkgs):
    bad = [(p, _installed(p)) for p in pkgs if (_installed(p) or "").split("+")[0] != PINS[p]]
    if bad and os.environ.get("VIREO_GOLDEN_ANY_VERSION") != "1":
        have = ", ".join(f"{p} {v or 'missing'}" for p, v in bad)
        want = " ".join(f"{p}=={PINS[p]}" for p, _ in bad)
        sys.exit(f"fixture generator pinned to other versions ({have}): pip install {want}\n"
                 "(or VIREO_GOLDEN_ANY_VERSION=1 to run anyway; the fixture records the versions)")


def header(*pkgs):
    """'# generated with pkg==version ...' (the versions really imported), plus Python's."""
    parts = [f"{p}=={_installed(p)}" for p in pkgs]
    parts.append("python==" + ".".join(map(str, sys.version_info[:3])))
    return "# generated with " + " ".join(parts)
