"""Fetch HL7's FHIR example zips out of the pinned fhirstarter wheel into the cache.

Only the wheel is downloaded (``pip download --no-deps``), never installed: the
package pins an old FastAPI. The wheel's SHA-256 is checked before it is
opened, each extracted zip's SHA-256 before it is written (atomically), so
the cache holds the pinned files or nothing. Idempotent: a zip already cached
with the right digest is left alone. Paths and digests live in
``ehrchain.ehr.examples``; ``$EHRCHAIN_FHIR_EXAMPLES`` moves the cache.

    python scripts/fetch_fhir_examples.py
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ehrchain.ehr import examples


class FetchError(Exception):
    """The wheel could not be downloaded or is not the pinned file."""

    code = "fetch_failed"


def _is_cached(fhir_version: str) -> bool:
    path = examples.examples_zip_path(fhir_version)
    try:
        examples.check_examples_zip(path.read_bytes(), fhir_version)
    except (FileNotFoundError, examples.ExamplesError):
        return False
    return True


def _download_wheel(directory: Path) -> bytes:
    """Download the pinned wheel with pip and return its bytes once its digest matches."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"fhirstarter=={examples.FHIRSTARTER_VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(directory),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"pip download failed: {result.stderr.strip()[-500:]}")
    wheel = (directory / examples.FHIRSTARTER_WHEEL).read_bytes()
    if hashlib.sha256(wheel).hexdigest() != examples.FHIRSTARTER_WHEEL_SHA256:
        raise FetchError(f"{examples.FHIRSTARTER_WHEEL} does not have the pinned SHA-256")
    return wheel


def _install_zip(wheel_path: Path, fhir_version: str) -> Path:
    """Extract one release's zip from the wheel, check it, then move it into place."""
    source = examples.SOURCES[fhir_version]
    with zipfile.ZipFile(wheel_path) as wheel:
        data = wheel.read(source.wheel_member)
    examples.check_examples_zip(data, fhir_version)
    target = examples.examples_zip_path(fhir_version)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial:
        partial.write(data)
    os.chmod(partial.name, 0o644)
    os.replace(partial.name, target)
    return target


def fetch(fhir_versions: Iterable[str] = tuple(examples.SOURCES)) -> tuple[Path, ...]:
    """Make sure the pinned zips of these releases are cached; return their paths."""
    wanted = tuple(fhir_versions)
    missing = [version for version in wanted if not _is_cached(version)]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            _download_wheel(directory)
            for version in missing:
                _install_zip(directory / examples.FHIRSTARTER_WHEEL, version)
    return tuple(examples.examples_zip_path(version) for version in wanted)


def main() -> int:
    try:
        paths = fetch()
    except (FetchError, examples.ExamplesError) as exc:
        print(f"fetch_fhir_examples: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
