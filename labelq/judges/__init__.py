"""LLM judges: several models and prompts vote on whether a label is right and which label fits.

``run_judges`` asks them (cached, concurrent, fault-tolerant); ``labelq.judges.ensemble`` combines
their votes with confident learning.
"""

from .backends import Answer, JudgeUnavailable, LlamaCppBackend, OpenAIBackend, make_backend
from .config import JudgeConfig, load_judges
from .runner import run_judges

__all__ = ["Answer", "JudgeConfig", "JudgeUnavailable", "LlamaCppBackend", "OpenAIBackend", "load_judges", "make_backend", "run_judges"]
