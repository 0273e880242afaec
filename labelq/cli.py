"""The ``labelq`` command: audit, schedule, history, diff, issues, query, versions, verify, report, relabel, review, export, label-maps."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from .errors import LabelqError
from .offline import set_defaults

set_defaults()


def format_table(rows: list[dict], max_width: int = 60) -> str:
    """Rows as an aligned plain-text table."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0])

    def cell(v: Any) -> str:
        s = "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
        s = " ".join(s.split())
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def top_issues_rows(store, version, limit: int) -> list[dict]:
    """The top ``limit`` issues of ``version``; text datasets get a snippet of each example."""
    from .sql import named_query

    rows = named_query(store, version.name, "top_issues", version=version.number, limit=limit).to_pylist()
    manifest = version.manifest()
    if rows and manifest.modality == "text":
        col = manifest.inputs[0]
        data = version.payload_rows([r["id"] for r in rows])
        text = dict(zip(data["id"].to_pylist(), data[col].to_pylist()))
        for r in rows:
            r["text"] = text.get(r["id"])
    return rows


def near_duplicate_rows(store, version, limit: int) -> list[dict]:
    """The first ``limit`` near-duplicate sets of ``version`` (``sql/top_near_duplicates.sql``), lists shown as text."""
    from .labelkind import kind_of
    from .sql import named_query

    rows = named_query(store, version.name, "top_near_duplicates", version=version.number, limit=limit).to_pylist()
    shown = lambda values, n=3, sep=", ": sep.join(map(str, values[:n])) + (f"{sep}... ({len(values)})" if len(values) > n else "")  # noqa: E731
    sep = " | " if kind_of(version.manifest()).lists else ", "  # a tag list's name is its tags, "a, b"
    return [{**r, "ids": shown(r["ids"]), "splits": shown(r["splits"]), "class_names": shown(r["class_names"], sep=sep)} for r in rows]


def run_job(no_prefect: bool, local: Callable[[], Any], flow: Callable[[], Any], progress: bool = False, quiet: bool = False) -> Any:
    """The one place a command picks where its job runs: ``local()`` in this process (``--no-prefect``),
    or ``flow()``, a Prefect flow, on a temporary server when no ``PREFECT_API_URL`` is configured.
    ``progress``: show the job's progress lines (folds, epochs), with bars when standard error is a terminal
    and the job runs here (under Prefect its logs hold the lines); ``quiet``: only warnings."""
    if no_prefect:
        if not progress or quiet:
            return local()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        from .progress import enable_bars

        if not enable_bars():
            return local()
        from tqdm.contrib.logging import logging_redirect_tqdm

        try:
            with logging_redirect_tqdm():  # log lines print above the bars
                return local()
        finally:
            enable_bars(False)
    if quiet:
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    elif progress:
        logging.getLogger("labelq").setLevel(logging.INFO)  # Prefect shows it (PREFECT_LOGGING_EXTRA_LOGGERS)
    from .flows.server import temporary_api

    with temporary_api():
        return flow()


class LabelqGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from .history import AuditAlert

        try:
            return super().invoke(ctx)
        except AuditAlert as exc:  # the version was published; its quality broke a rule
            click.secho(f"alert: {exc.problem}", fg="red", err=True)
            ctx.exit(3)
        except LabelqError as exc:
            click.secho(f"error: {exc.problem}", fg="red", err=True)
            if exc.fix:
                click.echo(f"fix: {exc.fix}", err=True)
            ctx.exit(2)


@click.group(cls=LabelqGroup)
@click.version_option(package_name="labelq")
def main() -> None:
    """labelq: find, fix and prove label errors."""
    use_jemalloc()


def use_jemalloc() -> None:
    """Arrow's jemalloc pool for labelq's own process, unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise:
    an audit of 1M rows with given pred_probs peaked at 432 MB with it, 518 MB with the default
    (mimalloc), which keeps freed memory (``bench/scale.py``; 1M x 100: 619 and 699 MB)."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pass


STORE = click.option("--store", type=click.Path(file_okay=False), default=None, help="Store folder (default: $LABELQ_STORE or ./data/store).")


CLICK_TYPES = {"file": click.Path(dir_okay=False), "path": click.Path()}  # option(type=...) in the settings classes: a file; a file or folder


def options_of(*classes: type) -> Callable:
    """A decorator adding the command-line options declared on the fields of ``classes`` (``labelq.options.option``);
    each option's ``from_cli`` turns the typed value into the field's value as click parses it."""
    from .options import dest, option_fields

    made = []
    for cls in classes:
        for f in option_fields(cls):
            cli, from_cli = f.metadata["cli"], f.metadata["from_cli"]
            kw = dict(cli["click"])
            if "choices" in kw:
                kw["type"] = click.Choice(list(kw.pop("choices")))
            if isinstance(kw.get("type"), str):
                kw["type"] = CLICK_TYPES[kw["type"]]
            if from_cli is not None:
                kw["callback"] = lambda ctx, param, value, convert=from_cli: convert(value)
            elif not kw.get("multiple"):
                kw.setdefault("default", f.default)
            made.append(click.option(*cli["flags"], dest(f), help=cli["help"], **kw))

    def decorate(fn):
        for opt in reversed(made):
            fn = opt(fn)
        return fn

    return decorate


def _relabel_config() -> type:
    from .relabel.run import RelabelConfig

    return RelabelConfig


def audit_options(fn):
    """The options that make an ``AuditConfig`` (shared by ``audit`` and ``schedule``), from its sections."""
    from .decide import AutoFix
    from .pipeline import AuditConfig

    return options_of(*AuditConfig.SECTIONS.values(), AutoFix)(fn)


def audit_config(source: str, name: str | None, store: str | None, **values: Any):
    """An ``AuditConfig`` from the values of ``audit_options`` (validated now)."""
    from .pipeline import AuditConfig

    return AuditConfig.from_options(source, name, store, **values)


@main.command()
@click.argument("source", default="digits")
@click.option("--name", help="Dataset name in the store (default: from SOURCE).")
@STORE
@audit_options
@click.option("--jobs", type=int, default=1, show_default=True, help="Folds trained at the same time (threads, or local Dask workers).")
@click.option("--cluster", default=None, help="Run the folds on Dask: 'local' (a local cluster of --jobs processes) or a scheduler address tcp://HOST:PORT.")
@click.option("--no-prefect", is_flag=True, help="Run the steps in this process without Prefect.")
@click.option("--top", type=int, default=10, show_default=True, help="Suspected errors to print.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the result.")
def audit(source: str, name: str | None, store: str | None, jobs: int, cluster: str | None, no_prefect: bool, top: int, quiet: bool, **options: Any) -> None:
    """Audit SOURCE (a built-in dataset: digits, fashion-mnist, spamassassin, fine-foods; or a path) and publish a version."""
    from .pipeline import audit as run_audit

    cfg = audit_config(source, name, store, **options)
    if no_prefect and cluster:
        raise click.UsageError("--cluster runs the folds as Prefect tasks; leave out --no-prefect")

    def flow():
        from .flows.audit import run_audit_flow

        return run_audit_flow(cfg, jobs=jobs, cluster=cluster)

    result = run_job(no_prefect, lambda: run_audit(cfg), flow, progress=True, quiet=quiet)
    from .labelkind import kind_of

    v = result.version
    m = v.manifest()
    h = result.history
    head = f"Unchanged since {v.name} {v.tag} (nothing published; the run is in the history)" if h and h.published is False else f"Published {v.name} {v.tag}"
    click.echo(
        f"\n{head}: {m.rows:,} rows, {m.n_label_issues:,} suspected label errors "
        f"({100 * m.n_label_issues / m.rows:.2f}%), out-of-sample {kind_of(m).accuracy_name} {m.audit.out_of_sample_accuracy:.4f}, "
        f"in {result.seconds:.1f}s"
    )
    if m.audit.tags_flagged is not None:
        t = m.audit.tags_flagged
        click.echo(f"  multi-label: {len(m.class_names)} tags; {t['missing'] + t['extra']:,} tags flagged, {t['missing']:,} missing and {t['extra']:,} extra")
    if m.audit.ensemble is not None:
        from .detect.ensemble import describe as describe_ensemble

        click.echo(f"  detectors: {describe_ensemble(m.audit.ensemble)}")
    if m.audit.margin is not None:
        click.echo(f"  detector: margin, ranked by the {m.audit.margin}")
    if m.audit.crowd is not None:
        from .report.audit import crowd_line

        click.echo(f"  annotators: {crowd_line(m.audit.crowd)}")
    if h and h.folds_total:
        same = " (unchanged source: no model was trained)" if h.folds_cached == h.folds_total else ""
        click.echo(f"  cache:   {h.folds_cached} of {h.folds_total} folds reused{same}")
    if h and m.audit.reliable:
        click.echo(f"  estimated label-error rate {h.estimated_error_rate:.2%} [{h.estimated_error_rate_lo:.2%}, {h.estimated_error_rate_hi:.2%}]")
    dup = m.audit.near_duplicates
    if dup is not None:
        click.echo(
            f"  near duplicates: {dup.near_duplicate_rows:,} rows in {dup.near_duplicate_sets:,} sets "
            f"({dup.exact_duplicate_rows:,} rows with an exact copy), {dup.leaking_rows:,} rows in sets across splits, "
            f"{dup.conflicting_rows:,} in sets with conflicting labels"
        )
        if dup.outlier_rows is not None:
            click.echo(f"  outliers: {dup.outlier_rows:,} rows (outlier score above Q3 + {dup.outlier_iqr} x IQR), space {dup.space}")
    if not m.audit.reliable:
        rel = m.audit.reliability
        click.secho(f"\nWarning: {rel['warning']}", fg="red", err=True)
        click.echo("What would help:\n" + "\n".join(f"  - {x}" for x in rel["suggestions"]), err=True)
    click.echo(f"  data:    {v.path}")
    click.echo(f"  report:  {result.report_html}")
    click.echo(f"  catalog: {v.path.parent / 'catalog.duckdb'}")
    if m.judges:
        click.echo(f"\nJudges ({m.judges.aggregation}, {m.judges.judged_rows:,} rows judged):")
        info = m.judges.extra.get("annotator_information", {})
        calibration = (m.judges.extra.get("calibration") or {}).get("judges", {})
        click.echo(
            format_table(
                [
                    {
                        **{
                            k: s[k]
                            for k in ("judge", "model", "asked", "cache_hits", "answered", "missing", "abstained", "prompt_tokens", "examples_per_s", "cost")
                        },
                        "planted asked": s.get("planted_asked"),
                        "planted AUROC": calibration.get(s["judge"], {}).get("planted_auroc"),
                        "information": info.get(s["judge"]),
                    }
                    for s in m.judges.stats
                ]
            )
        )
    if top > 0 and m.n_label_issues:
        click.echo(f"\nTop {min(top, m.n_label_issues)} suspected label errors{' (tags missing and extra)' if m.audit.tags_flagged is not None else ''}:")
        click.echo(format_table(top_issues_rows(cfg.open_store(), v, top)))
    if top > 0 and dup is not None and dup.near_duplicate_sets:
        click.echo(
            f"\nNear-duplicate sets (leaks across splits and conflicting labels first; {min(top, dup.near_duplicate_sets)} of {dup.near_duplicate_sets:,}):"
        )
        click.echo(format_table(near_duplicate_rows(cfg.open_store(), v, top)))
    if top > 0 and dup is not None and dup.outlier_rows:
        from .sql import named_query

        click.echo(f"\nOutliers (highest outlier score first; {min(top, dup.outlier_rows)} of {dup.outlier_rows:,}):")
        click.echo(format_table(named_query(cfg.open_store(), v.name, "top_outliers", version=v.number, limit=top).to_pylist()))


@main.command()
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Version (default: latest).")
@click.option("--limit", type=int, default=20, show_default=True)
def issues(name: str, store: str | None, version: str | None, limit: int) -> None:
    """Show the top suspected label errors of NAME."""
    from .store import Store

    s = Store(store)
    v = s.version(name, version)
    click.echo(f"{name} {v.tag}: {v.manifest().n_label_issues:,} suspected label errors; report: {v.path.parent / 'reports' / (v.tag + '.html')}")
    if v.manifest().audit.ensemble is not None:
        from .detect.ensemble import describe as describe_ensemble

        click.echo(f"flagged by {describe_ensemble(v.manifest().audit.ensemble)}")
    if v.manifest().audit.margin is not None:
        click.echo(f"flagged by margin, ranked by the {v.manifest().audit.margin}")
    click.echo(format_table(top_issues_rows(s, v, limit)))


@main.command()
@click.argument("name")
@click.argument("sql")
@STORE
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds before the query is stopped (0: no limit).")
@click.option("--max-rows", type=int, default=10_000, show_default=True, help="Rows printed at most (0: all; csv and json stream them).")
@click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB's memory limit for the query (it spills to disk beyond, up to 4GB).")
def query(name: str, sql: str, store: str | None, fmt: str, timeout: float, max_rows: int, memory_limit: str) -> None:
    """Run a read-only SQL query over NAME's views: versions, classes, rows, latest, issues, class_noise."""
    from .errors import InputError
    from .sql import QueryLimits, stream_query
    from .store import Store

    if max_rows < 0 or timeout < 0:
        raise InputError("--max-rows and --timeout take 0 (no limit) or more", "e.g. --max-rows 1000 --timeout 60")
    limits = QueryLimits(timeout=timeout or None, max_rows=max_rows or None, memory=memory_limit)
    out = click.get_text_stream("stdout")
    with stream_query(Store(store), name, sql, limits=limits) as rows:
        if fmt == "table":  # aligned columns need every row first: at most --max-rows of them
            click.echo(format_table(rows.table().to_pylist()))
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(click.get_binary_stream("stdout"), rows.schema) as writer:
                for batch in rows:
                    writer.write_batch(batch)
        else:
            first = True
            out.write("[")
            for batch in rows:
                for r in batch.to_pylist():
                    out.write(("\n" if first else ",\n") + json.dumps(r, default=str))
                    first = False
            out.write("\n]\n" if not first else "]\n")
        out.flush()
        if rows.truncated:
            click.echo(f"(stopped after {rows.rows:,} rows: --max-rows {max_rows}; add LIMIT, or --max-rows 0 for all)", err=True)


@main.command()
@click.argument("name")
@click.argument("before")
@click.argument("after")
@STORE
@click.option("--limit", type=int, default=20, show_default=True, help="Changed rows to print (0: counts only).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def diff(name: str, before: str, after: str, store: str | None, limit: int, fmt: str) -> None:
    """What changed between two versions of NAME: rows added, removed, relabeled, newly flagged, no longer flagged."""
    from .sql import diff_versions
    from .store import Store

    table = diff_versions(Store(store), name, before, after)
    rows = table.to_pylist()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if fmt == "csv":
        import io

        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(table, buf)
        click.echo(buf.getvalue().decode(), nl=False)
        return
    counts = {c: 0 for c in ("added", "removed", "relabeled", "newly_flagged", "no_longer_flagged")}
    for r in rows:
        counts[r["change"]] += 1
    click.echo(f"{name} {before} -> {after}: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items()))
    if limit > 0 and rows:
        click.echo(format_table(rows[:limit]))


@main.command()
@click.argument("name", required=False)
@click.argument("source", required=False)
@STORE
@audit_options
@click.option("--cron", default=None, help='Cron schedule, e.g. "0 3 * * *" (every day at 03:00).')
@click.option("--interval", type=float, default=None, help="Run every this many seconds instead of a cron schedule.")
@click.option("--timezone", default=None, help="Time zone of the cron schedule, e.g. Europe/Berlin (default: UTC).")
@click.option("--pool", default="labelq", show_default=True, help="Prefect work pool (type process) whose worker runs the audits.")
@click.option("--paused", is_flag=True, help="Register the schedule paused.")
@click.option("--no-check", is_flag=True, help="Do not load SOURCE now (it may not exist yet); the options are still checked.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Folds and judge batches at the same time in each run (threads, or local Dask workers).")
@click.option("--cluster", default=None, help="Each run on Dask: 'local' (a local cluster of --jobs processes) or a scheduler address tcp://HOST:PORT.")
@click.option("--list", "list_", is_flag=True, help="List the scheduled audits on the Prefect server.")
@click.option("--remove", "remove", default=None, metavar="NAME", help="Remove the scheduled audit NAME.")
def schedule(
    name: str | None,
    source: str | None,
    store: str | None,
    cron: str | None,
    interval: float | None,
    timezone: str | None,
    pool: str,
    paused: bool,
    no_check: bool,
    jobs: int,
    cluster: str | None,
    list_: bool,
    remove: str | None,
    **options: Any,
) -> None:
    """Schedule a recurring audit of SOURCE into NAME on the Prefect server (PREFECT_API_URL); a worker of
    the work pool runs it: `prefect worker start --pool labelq`. Also --list and --remove NAME."""
    from .flows.schedule import list_schedules, remove_schedule, schedule_audit

    if list_ or remove:
        if remove:
            remove_schedule(remove)
            click.echo(f"Removed the scheduled audit {remove} (its past runs and the store's history stay).")
        rows = list_schedules()
        if list_:
            click.echo(
                format_table([{k: r[k] for k in ("name", "schedule", "source", "store", "runner", "pool", "paused", "next_run", "last_run")} for r in rows])
                if rows
                else "No scheduled audits."
            )
        return
    if not name or not source:
        raise click.UsageError('give NAME and SOURCE, e.g. labelq schedule fashion fashion-mnist --cron "0 3 * * *" (or --list, --remove NAME)')
    row = schedule_audit(
        audit_config(source, name, store, **options),
        cron=cron,
        interval=interval,
        timezone=timezone,
        pool=pool,
        paused=paused,
        check_data=not no_check,
        jobs=jobs,
        cluster=cluster,
    )
    click.echo(
        f"Scheduled labelq-audit/{row['name']}: {row['schedule']}, {row['source']} -> {row['store']} on {row['runner']} (work pool {row['pool']!r}; next run {row['next_run'] or 'not yet planned'})."
    )
    click.echo(f"A worker runs it: prefect worker start --pool {pool}")


@main.command()
@click.argument("name")
@STORE
@click.option("--limit", type=int, default=30, show_default=True, help="Most recent runs to print.")
def history(name: str, store: str | None, limit: int) -> None:
    """The audit runs of NAME: time, version, flagged, estimated error rate, cache use, alerts."""
    from .history import read_history
    from .store import Store

    s = Store(store)
    s.version(name)  # a clear error when nothing is published
    runs = read_history(s, name)[-limit:]
    click.echo(
        format_table(
            [
                {
                    "finished_at": r.finished_at,
                    "version": r.version,
                    "rows": r.rows,
                    "flagged": r.flagged,
                    "est. error rate": f"{r.estimated_error_rate:.2%} [{r.estimated_error_rate_lo:.2%}, {r.estimated_error_rate_hi:.2%}]"
                    if r.reliable is not False
                    else "n/a (model at chance)",
                    "folds cached": None if r.folds_total is None else f"{r.folds_cached}/{r.folds_total}",
                    "s": r.duration_s,
                    "status": r.status,
                    "alerts": "; ".join(r.alerts),
                }
                for r in runs
            ],
            max_width=90,
        )
    )


@main.command()
@click.argument("name")
@STORE
@click.option("--keep", type=int, required=True, help="How many of the latest versions to keep (at least 1).")
def gc(name: str, store: str | None, keep: int) -> None:
    """Remove all but the --keep latest versions of NAME. Kept versions never break (shared files are
    hard links); the removed versions' run records stay in the history."""
    from .sql import catalog_hook
    from .store import Store, disk_bytes

    s = Store(store)
    s.version(name, check=False)  # a clear error when nothing is published
    before = disk_bytes(s.dataset_dir(name))
    removed = s.gc(name, keep, hooks=(catalog_hook,))
    after = disk_bytes(s.dataset_dir(name))
    kept = [v.tag for v in s.versions(name)]
    click.echo(f"removed {len(removed)} versions of {name} ({', '.join(removed) or 'none'}); kept {', '.join(kept)}; {(before - after) / 2**20:,.1f} MiB freed")


@main.command()
@click.argument("name", required=False)
@STORE
@click.option("--all", "all_", is_flag=True, help="Every dataset in the store.")
def verify(name: str | None, store: str | None, all_: bool) -> None:
    """Check every file of every version of NAME (or --all) against the sha256 in its manifest; exit 1 if any is damaged."""
    from .errors import InputError
    from .sql import catalog_problems
    from .store import Store

    s = Store(store)
    if bool(name) == all_:
        raise InputError("give a dataset NAME or --all", "e.g. labelq verify digits, or labelq verify --all")
    names = s.datasets() if all_ else [name]
    if name:
        s.version(name, check=False)  # a clear error when nothing is published
    damaged = catalogs = 0
    for n in names:
        before = damaged
        try:
            s.check_links(n)
        except LabelqError as exc:
            damaged += 1
            click.echo(f"{n}: DAMAGED ({exc.problem})")
        for v in s.versions(n):
            problems = v.verify()
            damaged += bool(problems)
            click.echo(f"{n} {v.tag}: " + (f"DAMAGED ({len(problems)} problems)" if problems else "ok"))
            for p in problems:
                click.echo(f"  {p}")
            if not problems and not (v.path.parent / "reports" / f"{v.tag}.html").exists():
                click.echo(f"  note: no report; rebuild it with `labelq report {n} --version {v.number}`")
        forged = catalog_problems(s, n) if damaged == before else []  # the catalog is built over intact versions only
        catalogs += bool(forged)
        click.echo(f"{n} catalog: " + (f"DIFFERS FROM LABELQ'S ({len(forged)} problems)" if forged else "ok"))
        for p in forged:
            click.echo(f"  {p}")
    if catalogs:
        click.secho(
            f"{catalogs} catalog{'s differ' if catalogs > 1 else ' differs'} from what labelq builds: delete the catalog.duckdb file; the next labelq command rebuilds it",
            fg="red",
            err=True,
        )
    if damaged:
        v = "version is" if damaged == 1 else "versions are"
        click.secho(
            f"{damaged} {v} damaged: restore each from a backup or copy of the store, or move its folder out of the store (the other versions stay valid)",
            fg="red",
            err=True,
        )
    if damaged or catalogs:
        raise SystemExit(1)


@main.command()
@click.argument("name")
@STORE
def versions(name: str, store: str | None) -> None:
    """List the published versions of NAME."""
    from .sql import run_query
    from .store import Store

    t = run_query(
        Store(store),
        name,
        "SELECT version, parent_version, created_at, rows, n_label_issues, issue_rate, model, n_corrected, left(content_hash, 12) AS content_hash FROM versions ORDER BY version",
    )
    click.echo(format_table(t.to_pylist()))


class ReportGroup(LabelqGroup):
    """``labelq report NAME`` (the audit report) keeps working beside ``labelq report benchmark NAME``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["audit", *args]
        return super().parse_args(ctx, args)


@main.group(cls=ReportGroup)
def report() -> None:
    """Reports: `labelq report NAME` (the audit report) or `labelq report benchmark NAME --predictions FILE`."""


@report.command("audit")
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Version (default: latest).")
def report_audit(name: str, store: str | None, version: str | None) -> None:
    """(Re)build the HTML + JSON audit report of a published version."""
    from .report import write_audit_report
    from .store import Store

    html_path, json_path = write_audit_report(Store(store).version(name, version))
    click.echo(f"{html_path}\n{json_path}")


@report.command("benchmark")
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Test-set version with corrections (default: latest).")
@click.option("--predictions", type=click.Path(dir_okay=False), default=None, help="Parquet or CSV: id, model, predicted_label (index or name) or pred_probs.")
@click.option(
    "--models", type=click.Path(dir_okay=False), default=None, help="Or a TOML file of models for labelq to train (train = SOURCE, [[model]] tables)."
)
@click.option(
    "--verified",
    type=click.Path(dir_okay=False),
    default=None,
    help="Parquet or CSV: id, is_label_error, for rows people checked at random (default: the reviewed calibration sample, if any).",
)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-prefect", is_flag=True, help="Run in this process without Prefect.")
def report_benchmark(
    name: str,
    store: str | None,
    version: str | None,
    predictions: str | None,
    models: str | None,
    verified: str | None,
    n_boot: int,
    seed: int,
    no_prefect: bool,
) -> None:
    """How accuracies and model rankings change on NAME's corrected test labels (HTML, Markdown, JSON)."""
    from .errors import InputError

    if (predictions is None) == (models is None):
        raise InputError("give either --predictions or --models", "--predictions FILE (id, model, predicted_label or pred_probs) or --models FILE (TOML)")
    from .benchmark.report import benchmark_step

    def flow():
        from .flows.benchmark import benchmark_flow

        return benchmark_flow(name=name, predictions=predictions, store=store, version=version, verified=verified, n_boot=n_boot, seed=seed, models=models)

    paths = run_job(no_prefect, lambda: benchmark_step(name, predictions, store, version, verified, n_boot, seed, models), flow)
    click.echo(paths["md"].read_text())
    click.echo("\n".join(str(p) for p in paths.values()))


@main.command()
@click.argument("name")
@STORE
@options_of(_relabel_config())
@click.option("--no-prefect", is_flag=True, help="Run in this process without Prefect.")
def relabel(name: str, store: str | None, no_prefect: bool, **options: Any) -> None:
    """Re-label NAME: issue kinds, corrections (with a guaranteed precision: --target-precision), label sets and soft labels, as a new version."""
    from .relabel.run import RelabelConfig
    from .relabel.run import relabel as run_relabel
    from .report.audit import fix_rule_summary

    cfg = RelabelConfig(name=name, store=store, **options)  # bad options fail before Prefect starts

    def flow():
        from .flows.relabel import relabel_flow

        return relabel_flow(name=name, store=store, **options)

    result = run_job(no_prefect, lambda: run_relabel(cfg), flow)
    from .labelkind import kind_of

    r = result.version.manifest().relabel
    cov = f"{r.coverage_measured:.3f}" if r.coverage_measured is not None else "n/a"
    from . import schema as S

    counts = S.correction_counts(result.version.read(columns=[S.CORRECTED_LABEL, S.LABEL_SOURCE]))
    click.echo(f"Published {name} {result.version.tag} (re-labeled {result.parent.tag}): {S.describe_corrections(counts)}; kinds {result.kinds}")
    if "tags_turned_over" in r.extra:  # tag sets: each flagged tag turned over or not, no label sets
        click.echo(
            f"  tags: {r.extra.get('tags_turned_over', 0):,} turned over (model at least {cfg.fix_confidence} sure of the other value); "
            f"{r.mean_set_size:.2f} tags a row ({r.mean_set_size_flagged or 0:.2f} on flagged rows)"
        )
    elif r.extra.get("tolerance"):  # a regression target: values replaced by their predictions, no label sets
        tol = r.extra["tolerance"]
        click.echo(
            f"  values: a correction moves a value by more than the tolerance, {100 * tol['amount']:g}% of the value"
            if tol["relative"]
            else f"  values: a correction moves a value by more than the tolerance, {tol['amount']:.4g}"
        )
    else:
        click.echo(
            f"  label sets: target coverage {r.coverage_target:.2f}, measured {cov} on {r.n_coverage_rows:,} held-out rows, mean size {r.mean_set_size:.2f} ({r.mean_set_size_flagged or 0:.2f} on flagged rows)"
        )
    if r.guarantee:
        click.echo(f"  corrections: {fix_rule_summary(r.guarantee)}")
    elif counts["by_rule"] and "review" not in kind_of(result.version.manifest()).supports:
        click.secho(
            f"  warning: {counts['by_rule']:,} tag sets corrected without a precision guarantee (--target-precision certifies single labels by a reviewed sample); "
            f"check them before training on them (`labelq issues {name}`, the report)",
            fg="yellow",
        )
    elif counts["by_rule"]:
        click.secho(
            f"  warning: {counts['by_rule']:,} corrections without a precision guarantee (on crowd-verified test sets such corrections were 7-33% right); "
            f"draw a sample (`labelq review export {name} --sample 100 -o sample.json`), review it, import it, and relabel with --target-precision",
            fg="yellow",
        )
    click.echo(f"  data: {result.version.path}")


@main.group(cls=LabelqGroup)
def review() -> None:
    """The human-review loop: export rows to review, import the answers."""


@review.command("export")
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Version (default: latest).")
@click.option("--format", "fmt", type=click.Choice(["label-studio", "csv"]), default="label-studio", show_default=True)
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="File to write (.json for Label Studio, .csv).")
@click.option("--all-flagged", is_flag=True, help="Every flagged row, not only those without a confident correction.")
@click.option("--limit", type=int, default=None, help="At most this many rows, most suspicious first.")
@click.option(
    "--sample",
    type=int,
    default=None,
    help="Instead: a uniformly random sample of this many flagged, unreviewed rows, recorded as a calibration sample (for relabel --target-precision).",
)
@click.option(
    "--detector-sample",
    type=int,
    default=None,
    help="Instead: a stratified random sample of this many rows of all kinds (flagged, doubtful, the rest), recorded as a detector sample "
    "(for audit --detector ensemble, which scores its detectors on the reviewed rows).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample and --detector-sample.")
def review_export(
    name: str,
    store: str | None,
    version: str | None,
    fmt: str,
    out: str,
    all_flagged: bool,
    limit: int | None,
    sample: int | None,
    detector_sample: int | None,
    seed: int,
) -> None:
    """Write NAME's rows that need a person, a random calibration sample of its flagged rows, or a detector sample
    of all its rows, to Label Studio import JSON or CSV."""
    from .relabel.review import export_review
    from .relabel.samples import draw_sample, save_sample
    from .store import Store

    st = Store(store)
    v = st.version(name, version)
    if (sample is not None or detector_sample is not None) and (all_flagged or limit is not None):
        raise click.UsageError("--sample and --detector-sample draw their own rows; leave out --all-flagged and --limit")
    if sample is not None and detector_sample is not None:
        raise click.UsageError(
            "--sample (flagged rows, for relabel --target-precision) and --detector-sample (all rows, for the ensemble) are two samples: draw one at a time"
        )
    if detector_sample is not None:
        from .detector_samples import draw_detector_sample, save_detector_sample

        drawn = draw_detector_sample(st, v, detector_sample, seed)
        path, n = export_review(v, out, fmt, sample={"id": drawn["id"], "ids": drawn["open"]})
        save_detector_sample(st, drawn)  # recorded once its export is written
        strata = ", ".join(f"{k} {len(x['ids'])} of {x['population']:,}" for k, x in drawn["strata"].items())
        click.echo(f"{n:,} rows of {name} {v.tag} to review ({strata}; {drawn['already_reviewed']} drawn were reviewed already) -> {path}")
        click.echo(
            f"detector sample {drawn['id']} recorded; after `labelq review import`, `labelq audit SOURCE --name {name} --detector ensemble` scores its detectors on it"
        )
        if fmt == "label-studio":
            click.echo(f"labeling config: {path.with_name(path.name + '.label_config.xml')}")
        return
    record = draw_sample(st, v, sample, seed) if sample is not None else None
    path, n = export_review(v, out, fmt, all_flagged, limit, sample=record)
    if record:
        save_sample(st, record)
        click.echo(f"{n:,} randomly drawn flagged rows (of {record['population']:,} eligible) of {name} {v.tag} to review -> {path}")
        click.echo(f"calibration sample {record['id']} recorded; after `labelq review import`, `labelq relabel {name} --target-precision 0.9` uses it")
    else:
        click.echo(f"{n:,} rows of {name} {v.tag} to review -> {path}")
    if fmt == "label-studio":
        click.echo(f"labeling config: {path.with_name(path.name + '.label_config.xml')}")


@review.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False))
@STORE
@click.option(
    "--format", "fmt", type=click.Choice(["label-studio", "csv", "app"]), default=None, help="Default: by the file's suffix (.jsonl: the review app's log)."
)
@click.option("--no-prefect", is_flag=True, help="Run in this process without Prefect.")
def review_import(name: str, path: str, store: str | None, fmt: str | None, no_prefect: bool) -> None:
    """Apply reviewed answers (Label Studio JSON export or the filled CSV) to NAME as a new version."""
    from .relabel.review import apply_reviews, read_step

    read_step(name, path, store, fmt)  # a bad file fails before anything starts (Prefect's server included)

    def flow():
        from .flows.relabel import review_flow

        return review_flow(name=name, path=path, store=store, fmt=fmt)

    result = run_job(no_prefect, lambda: apply_reviews(name, path, store, fmt), flow)
    click.echo(f"Published {name} {result.version.tag} (reviewed {result.parent.tag}): {result.n_reviews:,} reviews, {result.changed:,} labels changed")


@review.command("serve")
@click.argument("name")
@STORE
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; any other than the loopback needs a token (one is made if --token is left out)."
)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--token", default=None, help="Token every request must carry (?token= on the page).")
@click.option(
    "--adjudicate", is_flag=True, help="For a lead: show every reviewer's answers, disagreements first; the lead's answer settles a row (blind otherwise)."
)
def review_serve(name: str, store: str | None, host: str, port: int, token: str | None, adjudicate: bool) -> None:
    """Serve the review app for NAME's latest version in the browser; every answer is saved as it is made.
    Reviews are blind: the others' answers show once a reviewer has answered a row."""
    from .relabel.app import serve
    from .store import Store

    serve(Store(store), name, host, port, token, adjudicate)


@review.command("agreement")
@click.argument("name")
@STORE
@click.option("--version", "tag", default=None, help="The version whose review log to read (default: the latest with one).")
def review_agreement(name: str, store: str | None, tag: str | None) -> None:
    """How well NAME's reviewers agree: Krippendorff's alpha, Fleiss' kappa and Cohen's kappa per pair, each with the rows it rests on."""
    from .errors import InputError
    from .relabel.app import log_path
    from .relabel.reviewlog import ReviewLog, answers, reviewer_agreement, settle
    from .store import Store

    s = Store(store)
    versions = [s.version(name, tag)] if tag else list(reversed(s.versions(name)))
    path = next((log_path(s, v) for v in versions if log_path(s, v).exists()), None)
    if path is None:
        raise InputError(f"{name} has no review log{f' for {tag}' if tag else ''}", f"review rows first (labelq review serve {name})")
    entries = ReviewLog(path).entries()
    a = reviewer_agreement(entries)
    by_row = answers(entries)
    reviewers = sorted({r for by in by_row.values() for r, e in by.items() if e["action"] == "label"})
    click.echo(
        f"{name}, review log {path.name}: {len(reviewers)} reviewers, {sum(any(e['action'] == 'label' for e in by.values()) for by in by_row.values()):,} rows answered"
    )
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    click.echo(f"  Krippendorff's alpha (nominal): {fmt(a.alpha)} on {a.alpha_rows:,} rows with two or more answers")
    if a.fleiss is not None:
        click.echo(f"  Fleiss' kappa: {fmt(a.fleiss)} on {a.fleiss_rows:,} rows (the same number of reviewers on each)")
    if a.pairs:
        click.echo(
            format_table(
                [{"reviewer": p["a"], "and": p["b"], "rows": p["rows"], "agree": fmt(p["observed"]), "Cohen's kappa": fmt(p["kappa"])} for p in a.pairs]
            )
        )
    else:
        click.echo("  no two reviewers answered the same row yet")
    settled, disagreements = settle(by_row)
    people = []
    for r in reviewers:
        mine = {i: e for i, by in by_row.items() for who, e in by.items() if who == r and e["action"] == "label"}
        on = [i for i in mine if i in settled and len(by_row[i]) > 1]  # rows someone else answered too
        agree = sum(sorted(mine[i]["labels"]) == settled[i]["labels"] for i in on)
        people.append(
            {"reviewer": r, "answered": len(mine), "settled with others": len(on), "agrees with the settled answer": fmt(agree / len(on) if on else None)}
        )
    click.echo("\nEach reviewer against the settled answers of the rows others answered too:")
    click.echo(format_table(people))
    click.echo(
        f"  {len(settled):,} rows settled, {len(disagreements):,} disagreements waiting for a majority or a lead (labelq review serve {name} --adjudicate)"
    )


@review.command("guidelines")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False))
@STORE
def review_guidelines(name: str, path: str, store: str | None) -> None:
    """Make the Markdown file PATH NAME's labelling guidelines, shown in the review app beside the classes (kept, with every earlier text)."""
    from .relabel.guidelines import set_guidelines
    from .store import Store

    record = set_guidelines(Store(store), name, path)
    click.echo(f"{name}: guidelines {record['sha256'][:12]} from {record['source']} hold from now; each answer records which text its reviewer read")


@review.command("publish")
@click.argument("name")
@STORE
@click.option("--no-prefect", is_flag=True, help="Run in this process without Prefect.")
def review_publish(name: str, store: str | None, no_prefect: bool) -> None:
    """Publish the review app's settled answers on NAME's latest version as a new version (the checks of `review import`)."""
    from .errors import InputError
    from .relabel.app import log_path
    from .store import Store

    path = log_path(Store(store), Store(store).version(name))
    if not path.exists():
        raise InputError(f"nobody has reviewed {name}'s latest version in the app ({path} does not exist)", f"run `labelq review serve {name}` first")
    ctx = click.get_current_context()
    ctx.invoke(review_import, name=name, path=str(path), store=store, fmt="app", no_prefect=no_prefect)


@main.command("export")
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Version (default: latest).")
@click.option("--policy", type=click.Choice(["keep", "auto-fix", "drop-issues", "soft", "multi"]), default="auto-fix", show_default=True)
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True, help="Folder to write <split>.parquet and export.json to.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--with-provenance",
    is_flag=True,
    help="Add where each label came from: label_source, issue_kind, label_score, reviewers, n_reviewers (and consensus_quality with several annotators a row).",
)
def export_cmd(name: str, store: str | None, version: str | None, policy: str, out: str, overwrite: bool, with_provenance: bool) -> None:
    """Write a training-ready copy of NAME following a re-labeling policy."""
    from .relabel.export import export_training
    from .store import Store

    m = export_training(Store(store).version(name, version), out, policy, overwrite, with_provenance)
    click.echo(f"{name} {m['version']} ({policy}): {m['rows_out']:,} of {m['rows_in']:,} rows, {m['relabeled']:,} relabeled, {m['dropped']:,} dropped -> {out}")


@main.command("label-maps")
@click.argument("name")
@STORE
@click.option("--version", "version", default=None, help="Version (default: latest).")
@click.option("--top-k", "k", type=int, default=3, show_default=True, help="Classes kept per cell.")
@click.option("--grid", type=int, default=8, show_default=True, help="Cells per side (S).")
@click.option("--folds", "n_folds", type=int, default=3, show_default=True)
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-prefect", is_flag=True, help="Run in this process without Prefect.")
def label_maps_cmd(name: str, store: str | None, version: str | None, k: int, grid: int, n_folds: int, epochs: int, seed: int, no_prefect: bool) -> None:
    """Localized (ReLabel) label maps for NAME's images, from cross-validated FCNs, as a new version."""
    settings = dict(k=k, grid=grid, n_folds=n_folds, seed=seed, epochs=epochs)
    from .relabel.localized import make_label_maps

    def flow():
        from .flows.relabel import label_maps_flow

        return label_maps_flow(name=name, store=store, version=version, **settings)

    v = run_job(no_prefect, lambda: make_label_maps(name, store, version, **settings), flow, progress=True)
    click.echo(f"Published {name} {v.tag}: label maps (top-{k}, {grid}x{grid}) for {v.manifest().rows:,} images -> {v.path / 'label_maps.parquet'}")


if __name__ == "__main__":
    sys.exit(main())
