"""Every vote, kept in a DuckDB table so a rerun asks nothing it has asked before.

Key: (judge, model, prompt_hash, content_hash), where content_hash covers the example's text, its
given label and the class list. Missing votes (the judge could not answer) are not kept, so a rerun
asks again.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

VOTE_COLUMNS = [
    ("judge", pa.string()),
    ("model", pa.string()),
    ("prompt_hash", pa.string()),
    ("content_hash", pa.string()),
    ("verdict", pa.string()),
    ("proposed_label", pa.int64()),
    ("p_label_correct", pa.float64()),
    ("rationale", pa.string()),
    ("raw", pa.string()),
    ("latency_ms", pa.float64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("attempts", pa.int64()),
    ("class_probs", pa.list_(pa.float64())),  # a multiple-choice judge's probabilities of the classes and 'none of these'
]
VOTE_SCHEMA = pa.schema(VOTE_COLUMNS)

DDL = """CREATE TABLE IF NOT EXISTS judge_votes (
    judge VARCHAR, model VARCHAR, prompt_hash VARCHAR, content_hash VARCHAR,
    verdict VARCHAR, proposed_label BIGINT, p_label_correct DOUBLE, rationale VARCHAR, raw VARCHAR,
    latency_ms DOUBLE, prompt_tokens BIGINT, completion_tokens BIGINT, attempts BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp, class_probs DOUBLE[],
    PRIMARY KEY (judge, model, prompt_hash, content_hash))"""
# caches written before class_probs was kept: their votes read it as NULL
MIGRATE = "ALTER TABLE judge_votes ADD COLUMN IF NOT EXISTS class_probs DOUBLE[]"


class VoteCache:
    """The ``judge_votes`` table of ``<store>/judges.duckdb`` (``path=None``: nothing is kept)."""

    def __init__(self, path: Path | None) -> None:
        self.con = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(path))
            self.con.execute(DDL)
            self.con.execute(MIGRATE)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()

    def lookup(self, judge: str, model: str, prompt_hash: str, content_hashes: list[str]) -> dict[str, dict]:
        if self.con is None or not content_hashes:
            return {}
        wanted = pa.table({"content_hash": pa.array(content_hashes, pa.string())})  # noqa: F841 (read by DuckDB)
        rows = (
            self.con.sql(
                "SELECT v.* EXCLUDE (created_at) FROM judge_votes v JOIN wanted USING (content_hash) WHERE judge = ? AND model = ? AND prompt_hash = ?",
                params=[judge, model, prompt_hash],
            )
            .to_arrow_table()
            .to_pylist()
        )
        return {r["content_hash"]: r for r in rows}

    def put(self, votes: list[dict]) -> None:
        if self.con is None or not votes:
            return
        batch = pa.Table.from_pylist(votes, schema=VOTE_SCHEMA)  # noqa: F841 (read by DuckDB)
        self.con.execute("INSERT OR REPLACE INTO judge_votes BY NAME SELECT * FROM batch")
