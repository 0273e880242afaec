"""Backends answer one prompt with the top log-probabilities of the first answer token.

``OpenAIBackend`` talks to any OpenAI-compatible server (llama.cpp's, vLLM, Ollama, hosted APIs):
``/completions`` with ``logprobs`` or ``/chat/completions`` with ``top_logprobs``. Timeouts, connection
errors, HTTP 429 and 5xx are retried with exponential backoff (``Retry-After`` honoured), then the
request fails with ``JudgeUnavailable`` and the caller records a missing vote. API keys come from an
environment variable and are sent only in the ``Authorization`` header, never logged or stored.
``LlamaCppBackend`` runs a GGUF model in-process through llama-cpp-python.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field

from ..errors import LabelqError, MissingDependencyError
from .config import JudgeConfig

log = logging.getLogger(__name__)
TOP_K = 10


class JudgeUnavailable(LabelqError):
    """A judge could not answer (after retries, or a request it refuses); its vote is recorded as missing."""

    retryable = True


@dataclass
class Answer:
    """The first answer token's top alternatives, the generated text, and usage."""

    top_logprobs: dict[str, float]
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    attempts: int = 1
    extra: dict = field(default_factory=dict)


class RateLimiter:
    """At most ``per_s`` requests a second across threads (0 = unlimited)."""

    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        time.sleep(max(0.0, at - now))


class OpenAIBackend:
    RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(self, cfg: JudgeConfig) -> None:
        import httpx

        self.cfg = cfg
        headers = {"Content-Type": "application/json"}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise LabelqError(
                    f"judge {cfg.name!r}: the environment variable {cfg.api_key_env} holding its API key is not set", f"export {cfg.api_key_env}=..."
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/") + "/", timeout=cfg.timeout_s, headers=headers)
        self.limiter = RateLimiter(cfg.rate_limit_per_s)

    def close(self) -> None:
        self.client.close()

    def _payload(self, prompt: str, max_tokens: int = 1) -> tuple[str, dict]:
        common = {"model": self.cfg.model, "max_tokens": max_tokens, "temperature": 0.0}
        if self.cfg.api == "chat":
            return "chat/completions", {**common, "messages": [{"role": "user", "content": prompt}], "logprobs": True, "top_logprobs": TOP_K}
        return "completions", {**common, "prompt": prompt, "logprobs": TOP_K}

    @staticmethod
    def _parse(body: dict, api: str) -> tuple[dict[str, float], str]:
        choice = (body.get("choices") or [{}])[0]
        lp = choice.get("logprobs") or {}
        top: dict[str, float] = {}
        if api == "chat":
            content = lp.get("content") or []
            if content:
                top = {t["token"]: float(t["logprob"]) for t in content[0].get("top_logprobs") or []}
            text = (choice.get("message") or {}).get("content") or ""
        else:
            tops = lp.get("top_logprobs") or []
            if tops and isinstance(tops[0], dict):
                top = {k: float(v) for k, v in tops[0].items()}
            text = choice.get("text") or ""
        return top, text

    def ask(self, prompt: str, max_tokens: int = 1) -> Answer:
        """Answer ``prompt`` (``max_tokens`` tokens; log-probabilities of the first)."""
        import httpx

        path, payload = self._payload(prompt, max_tokens)
        last, retry_after = "no attempt", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt, retry_after))
            self.limiter.wait()
            t0 = time.perf_counter()
            try:
                resp = self.client.post(path, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last, retry_after = type(exc).__name__, None
                log.info("judge %s: %s (attempt %d)", self.cfg.name, last, attempt + 1)
                continue
            if resp.status_code in self.RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("retry-after")
                log.info("judge %s: %s (attempt %d)", self.cfg.name, last, attempt + 1)
                continue
            if resp.status_code >= 400:
                raise JudgeUnavailable(f"judge {self.cfg.name!r}: HTTP {resp.status_code} {resp.text[:200]}")
            try:
                body = resp.json()
            except ValueError as exc:
                raise JudgeUnavailable(f"judge {self.cfg.name!r}: the response is not JSON") from exc
            top, text = self._parse(body, self.cfg.api)
            usage = body.get("usage") or {}
            return Answer(
                top, text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), (time.perf_counter() - t0) * 1000, attempt + 1
            )
        raise JudgeUnavailable(f"judge {self.cfg.name!r}: no answer after {self.cfg.max_retries + 1} attempts (last: {last})")

    @staticmethod
    def _backoff(attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry ``attempt``: the server's Retry-After (capped), else jittered exponential."""
        if retry_after:
            try:
                return min(float(retry_after), 30.0)
            except ValueError:
                pass
        return min(0.25 * 2 ** (attempt - 1), 8.0) * (0.5 + random.random())


class LlamaCppBackend:
    """A GGUF model in this process (llama-cpp-python); one request at a time per model."""

    def __init__(self, cfg: JudgeConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError("the llama-cpp backend needs llama-cpp-python", "pip install llama-cpp-python") from exc
        self.cfg = cfg
        self.lock = threading.Lock()
        self.llm = Llama(model_path=cfg.model_path, n_ctx=int(cfg.extra.get("n_ctx", 2048)), n_threads=os.cpu_count(), logits_all=True, verbose=False, seed=0)

    def close(self) -> None:
        self.llm.close() if hasattr(self.llm, "close") else None

    def ask(self, prompt: str, max_tokens: int = 1) -> Answer:
        with self.lock:
            t0 = time.perf_counter()
            out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, logprobs=TOP_K)
            latency = (time.perf_counter() - t0) * 1000
        top, text = OpenAIBackend._parse(out, "completions")
        usage = out.get("usage") or {}
        return Answer(top, text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), latency)


def make_backend(cfg: JudgeConfig):
    return OpenAIBackend(cfg) if cfg.backend == "openai" else LlamaCppBackend(cfg)
