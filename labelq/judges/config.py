"""Judge configuration: a TOML file of ``[[judge]]`` tables, or ``JudgeConfig`` objects in Python.

[[judge]]
name = "smollm-verify"
backend = "openai"              # "openai" (any OpenAI-compatible HTTP server) or "llama-cpp" (in-process)
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
api = "completions"             # or "chat" (servers without a completions endpoint)
api_key_env = "OPENAI_API_KEY"  # the NAME of the variable holding the key; keys never go in files
model_path = "model.gguf"       # "llama-cpp": a GGUF file; or packaged = "qwen2.5-1.5b" (labelq.judges.local.gguf_path)
prompt = "verify"               # "verify" (is the label right?), "choose" (which label fits?), or a template file
orders = 2                      # "choose": class orders averaged, against option-order bias
weight = 1.0
concurrency = 4
timeout_s = 30
max_retries = 3
rate_limit_per_s = 0            # 0 = unlimited
price_per_1k_tokens = 0.0
rationale = false               # true: a second request asks for a short reason (costs rationale_tokens more)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InputError, SourceNotFoundError
from ..options import option

BACKENDS = ("openai", "llama-cpp")
PROMPTS = ("verify", "choose")


@dataclass(frozen=True)
class JudgeConfig:
    name: str
    backend: str = "openai"
    model: str = ""
    base_url: str | None = None
    api: str = "completions"
    api_key_env: str | None = None
    model_path: str | None = None
    packaged: str | None = None
    prompt: str = "verify"
    orders: int = 2
    weight: float = 1.0
    concurrency: int = 4
    timeout_s: float = 30.0
    max_retries: int = 3
    rate_limit_per_s: float = 0.0
    price_per_1k_tokens: float = 0.0
    max_chars: int = 1500
    rationale: bool = False
    rationale_tokens: int = 40
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"judge {self.name!r}"
        if self.backend not in BACKENDS:
            raise InputError(f"{where}: unknown backend {self.backend!r}", f"use one of {list(BACKENDS)}")
        if self.backend == "openai" and not self.base_url:
            raise InputError(f"{where}: the openai backend needs base_url", 'e.g. base_url = "http://127.0.0.1:8080/v1"')
        if self.backend == "llama-cpp" and not (self.model_path or self.packaged):
            raise InputError(f"{where}: the llama-cpp backend needs model_path (a .gguf file) or packaged (a packaged model's name)")
        if self.packaged is not None:
            from .local import packaged_models

            if self.packaged not in packaged_models():
                raise InputError(f"{where}: unknown packaged model {self.packaged!r}", f"use one of {packaged_models()}")
        if self.api not in ("completions", "chat"):
            raise InputError(f"{where}: api must be 'completions' or 'chat', got {self.api!r}")
        if self.prompt not in PROMPTS and not Path(self.prompt).is_file():
            raise InputError(f"{where}: prompt {self.prompt!r} is neither {list(PROMPTS)} nor a template file")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0 or self.orders < 1:
            raise InputError(f"{where}: concurrency and orders must be >= 1, max_retries >= 0, timeout_s > 0")

    @property
    def model_id(self) -> str:
        return self.model or self.packaged or Path(self.model_path or "").name


PRESETS = ("qwen",)  # judges files that come with labelq (``labelq/judges/<name>.toml``)


def load_judges(path: str | Path) -> list[JudgeConfig]:
    """Read ``[[judge]]`` tables from a TOML file, or from a preset named in ``PRESETS`` where no such file exists."""
    if str(path) in PRESETS and not Path(path).exists():
        path = Path(__file__).with_name(f"{path}.toml")
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"the judges file {str(path)!r} does not exist", f"pass a TOML file with [[judge]] tables, or a preset: {', '.join(PRESETS)}")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from exc
    tables = doc.get("judge")
    if not tables:
        raise InputError(f"{path} defines no judges", "add one or more [[judge]] tables")
    known = {f.name for f in fields(JudgeConfig)} - {"extra"}
    judges = []
    for t in tables:
        unknown = set(t) - known
        if unknown:
            raise InputError(f"{path}: judge {t.get('name')!r} has unknown keys {sorted(unknown)}", f"known keys: {sorted(known)}")
        if "name" not in t:
            raise InputError(f"{path}: every [[judge]] needs a name")
        judges.append(JudgeConfig(**t))
    names = [j.name for j in judges]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: judge names must be unique, got {names}")
    return judges


@dataclass
class JudgeOptions:
    """The LLM judges of an audit (a TOML file of ``[[judge]]`` tables) and which rows they see."""

    judges: str | None = option("--judges", type="file", help="TOML file of LLM judges ([[judge]] tables) that vote on the flagged rows, or a preset: qwen.")
    judge_sample: int = option(
        "--judge-sample",
        default=200,
        type=int,
        show_default=True,
        help="Unflagged rows the judges also see (calibration sample); up to 100 of them are asked again under a planted wrong label.",
    )
    judge_all: bool = option("--judge-all", default=False, is_flag=True, help="Let the judges see every row, not only the flagged ones and the sample.")
    judge_aggregation: str = option(
        "--judge-aggregation",
        default="calibrated",
        choices=("calibrated", "dawid_skene", "mean", "majority"),
        show_default=True,
        help="How the judges' votes are combined: calibrated weighs each judge by its answers on planted wrong labels.",
    )
    judge_batch_rows: int = option(
        "--judge-batch-rows",
        default=64,
        type=int,
        show_default=True,
        help="Rows per judge batch task (batches run on the task runner: --jobs threads or --cluster workers).",
    )

    def __post_init__(self) -> None:
        from .ensemble import AGGREGATIONS

        self.configs = load_judges(self.judges) if self.judges else None
        if self.judge_aggregation not in AGGREGATIONS:
            raise InputError(f"unknown judge aggregation {self.judge_aggregation!r}", f"use one of {list(AGGREGATIONS)}")
        if self.judge_batch_rows < 1:
            raise InputError(f"judge_batch_rows must be >= 1, got {self.judge_batch_rows}")
        if self.judge_sample < 0:
            raise InputError(f"judge_sample must be >= 0, got {self.judge_sample}")
