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
    """A GGUF model in this process (llama-cpp-python); one request at a time per model.

    A one-token answer is read from the logits of the prompt's last position alone: llama.cpp's own
    completions (and its server, ``LocalServer``) need ``logits_all``, which computes the vocabulary's logits at
    every prompt position, most of the work for Qwen's 151k-token vocabulary (``bench/judge_speed.py``). The
    key-value cache of the previous prompt is kept for the prefix the next one shares. With ``api = "chat"``
    the prompt goes through the model's own chat template (from its GGUF metadata). Longer answers (the
    rationale) are generated as text, without log-probabilities. The last position's logits and a token's
    text are read through llama-cpp-python's internals (``_ctx``, ``_model``), so the ``judges`` extra keeps it
    below 0.4.
    """

    def __init__(self, cfg: JudgeConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError("the llama-cpp backend needs llama-cpp-python", "pip install llama-cpp-python") from exc
        from .local import gguf_path

        self.cfg = cfg
        self.lock = threading.Lock()
        threads = int(cfg.extra.get("n_threads", os.cpu_count() or 1))
        path = cfg.model_path or str(gguf_path(cfg.packaged))
        self.llm = Llama(model_path=path, n_ctx=int(cfg.extra.get("n_ctx", 2048)), n_threads=threads, logits_all=False, verbose=False, seed=0)
        self.chat = self._chat_formatter() if cfg.api == "chat" else None

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LabelqError(f"judge {self.cfg.name!r}: the model {self.cfg.model_id} has no chat template", 'use api = "completions"')

        def token(i: int) -> str:
            return self.llm._model.token_get_text(i) if i >= 0 else ""

        return Jinja2ChatFormatter(template, eos_token=token(self.llm.token_eos()), bos_token=token(self.llm.token_bos()))

    def close(self) -> None:
        self.llm.close() if hasattr(self.llm, "close") else None

    def _first_token(self, prompt: str) -> tuple[dict[str, float], str, int]:
        """The top ``TOP_K`` first answer tokens' log-probabilities, the most likely one, and the prompt's tokens."""
        import numpy as np

        llm = self.llm
        tokens = llm.tokenize(prompt.encode("utf-8"), special=True)
        if len(tokens) >= llm.n_ctx():
            raise JudgeUnavailable(f"judge {self.cfg.name!r}: the prompt has {len(tokens)} tokens, the context {llm.n_ctx()}")
        shared = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens):
            if a != b:
                break
            shared += 1
        llm.n_tokens = min(shared, len(tokens) - 1)  # at least the last token is evaluated, for its logits
        llm.eval(tokens[llm.n_tokens :])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
        logp = logits - logits.max()
        logp -= np.log(np.exp(logp).sum())
        top: dict[str, float] = {}
        for i in np.argsort(-logp)[:TOP_K]:
            top.setdefault(llm.detokenize([int(i)]).decode("utf-8", errors="ignore"), float(logp[i]))
        return top, next(iter(top)), len(tokens)

    def ask(self, prompt: str, max_tokens: int = 1) -> Answer:
        if self.chat is not None:
            prompt = self.chat(messages=[{"role": "user", "content": prompt}]).prompt
        with self.lock:
            t0 = time.perf_counter()
            if max_tokens == 1:
                top, text, n_prompt = self._first_token(prompt)
                latency = (time.perf_counter() - t0) * 1000
                return Answer(top, text, n_prompt, 1, latency)
            out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
            latency = (time.perf_counter() - t0) * 1000
        usage = out.get("usage") or {}
        return Answer({}, out["choices"][0]["text"], int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), latency)


def make_backend(cfg: JudgeConfig):
    return OpenAIBackend(cfg) if cfg.backend == "openai" else LlamaCppBackend(cfg)
