"""Judge throughput: rows a second, start-up and peak memory, per packaged model and per path.

Each judge answers the built-in yes/no prompt (``verify``, the model's chat template) on the first ``--rows``
fine-food reviews, one request at a time, from a fresh process:

- ``server``: llama-cpp-python's OpenAI-compatible server (``LocalServer``, 2 threads) behind the ``openai``
  backend; the server computes the logits of every prompt position (``logits_all``), which it needs to return
  log-probabilities;
- ``in-process``: the ``llama-cpp`` backend, which reads the last position's logits alone and keeps the
  key-value cache of the shared prefix.

Peak memory is the process that holds the model (the server, or the bench's own process). Rows a second
count the judging only; start-up (loading the model, joining a split model's parts on first use excluded)
is apart.

    python bench/judge_speed.py [--rows 40] [--models smollm2,qwen2.5-0.5b,qwen2.5-1.5b]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, peak_rss_kib, print_table  # noqa: E402


def judge(model: str, path: str, rows: int) -> dict:
    from labelq import schema as S
    from labelq.ingest import load_examples
    from labelq.judges import JudgeConfig
    from labelq.judges.backends import make_backend
    from labelq.judges.local import LocalServer, gguf_path
    from labelq.judges.prompts import verify_prompt

    offline_env()
    examples = load_examples("fine-foods").slice(0, rows)
    names = S.info_of(examples).class_names
    prompts = [verify_prompt(t, names[y], names, 1500).text for t, y in zip(examples["text"].to_pylist(), examples[S.LABEL].to_pylist())]
    gguf = gguf_path(model)

    def ask_all(cfg: JudgeConfig) -> dict:
        backend = make_backend(cfg)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        answers = [backend.ask(p) for p in prompts]
        seconds = time.perf_counter() - t1
        backend.close()
        return {
            "model": model,
            "path": path,
            "rows": rows,
            "answered": sum(bool(a.top_logprobs) for a in answers),
            "prompt tokens (mean)": round(sum(a.prompt_tokens for a in answers) / rows, 0),
            "start-up s": round(started, 1),
            "rows/s": round(rows / seconds, 2),
        }

    t0 = time.perf_counter()
    if path == "server":
        server = LocalServer(gguf, model, threads=2)
        with server as url:
            out = ask_all(JudgeConfig(name=model, base_url=url, model=model, api="chat", concurrency=1))
            out["peak MiB (model's process)"] = round(peak_rss_kib(server.proc.pid) / 1024, 0)
        return out
    out = ask_all(JudgeConfig(name=model, backend="llama-cpp", model_path=str(gguf), api="chat", concurrency=1, extra={"n_threads": 2}))
    out["peak MiB (model's process)"] = round(peak_rss_kib() / 1024, 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--models", default="smollm2,qwen2.5-0.5b,qwen2.5-1.5b")
    ap.add_argument("--paths", default="server,in-process")
    args = ap.parse_args()
    rows = []
    for model in args.models.split(","):
        for path in args.paths.split(","):
            out = measured(judge, model, path, args.rows)
            out.pop("peak_rss_mib", None)
            rows.append(out)
            print(out, file=sys.stderr, flush=True)
    print_table(rows, f"Judge throughput, yes/no prompt on {args.rows} fine-food reviews, 2 threads")


if __name__ == "__main__":
    main()
