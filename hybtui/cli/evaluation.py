"""`hybtui eval`: a model measured on the benchmarks, without recording a run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from hybtui.cli.common import DataDirOption, JsonOption, PrecisionOption
from hybtui.errors import HybtuiError

if TYPE_CHECKING:
    from rich.table import Table

    from hybtui.cli.console import ProgressBars
    from hybtui.data.benchmarks import BenchmarkSelection
    from hybtui.data.lareqa import Benchmark
    from hybtui.data.miracl import CorpusBenchmark
    from hybtui.evaluation.retrieval import SearchReport
    from hybtui.modeling.encoder import Encoder, EncoderSpec
    from hybtui.results import ResultRow


class Evaluation(NamedTuple):
    """What one evaluation produced, for the JSON payload or the tables alike."""

    benches: list[Benchmark | CorpusBenchmark]
    warnings: list[str]
    rows: list[ResultRow]
    searches: dict[str, dict[str, SearchReport]]
    #: what the encoder computed in, and why (``bf16 (auto: avx512_bf16)``)
    precision: str


def eval_command(
    model: Annotated[
        str, typer.Option(help="Registry name (see `hybtui models ls`), Hugging Face id or local checkpoint.")
    ] = "me5-small",
    eval_spec: Annotated[
        list[str],
        typer.Option("--eval", help="Benchmarks and languages, e.g. xquad-r:en,de,mlqa-r, miracl:sw,th or beir:PATH."),
    ] = ["xquad-r"],  # noqa: B006 - typer needs a literal default
    max_queries: Annotated[
        int | None, typer.Option(help="Evaluate a deterministic subset of N queries per language.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Encoding batch size.")] = 64,
    pooling: Annotated[str | None, typer.Option(help="mean or cls (default: the model's).")] = None,
    query_prefix: Annotated[str | None, typer.Option(help='Text before each query, e.g. "query: ".')] = None,
    passage_prefix: Annotated[str | None, typer.Option(help='Text before each candidate, e.g. "passage: ".')] = None,
    max_length: Annotated[int | None, typer.Option(help="Maximum tokens per text.")] = None,
    seen: Annotated[
        str | None, typer.Option(help="Training languages (comma-separated): rows are marked seen/unseen.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    precision: PrecisionOption = "auto",
    index: Annotated[
        str,
        typer.Option(
            help="Corpus search for miracl / beir: exact, or approximate hnsw / ivf "
            "(reported with their recall against exact search)."
        ),
    ] = "exact",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on XQuAD-R / MLQA-R (mono, cross, multi, language bias) and MIRACL / BEIR corpora."""
    from hybtui.cli.console import progress_bars, stderr
    from hybtui.data import benchmarks, sources
    from hybtui.evaluation import retrieval
    from hybtui.modeling import encoder as models
    from hybtui.modeling import precision as precisions

    selections = benchmarks.parse_eval_spec(eval_spec)
    _check_options(index, batch_size, max_queries, precision, device)
    spec = models.encoder_spec(model, pooling, query_prefix, passage_prefix, max_length)
    root = sources.data_dir_from_env(data_dir)
    seen_langs = _csv(seen)
    started = time.perf_counter()
    with progress_bars(enabled=stderr.is_terminal or not as_json) as bars:
        benches, warnings = _load_benchmarks(selections, root, max_queries, bars)
        encoder = models.load_encoder(spec, device=device, say=bars.message)
        used = precisions.resolve(precision, str(encoder.device))
        searches: dict[str, dict[str, retrieval.SearchReport]] = {}
        rows = _evaluate(encoder, benches, seen_langs, batch_size, used.bf16, index, bars, searches)
    evaluation = Evaluation(benches, warnings, rows, searches, used.describe())
    elapsed = time.perf_counter() - started
    if as_json:
        _print_json(evaluation, spec, elapsed)
    else:
        _print_tables(evaluation, spec, elapsed)


def _check_options(index: str, batch_size: int, max_queries: int | None, precision: str, device: str) -> None:
    """Bad options refused before any benchmark is downloaded or model loaded."""
    from hybtui.evaluation import retrieval
    from hybtui.modeling import precision as precisions

    retrieval.check_index(index)
    precisions.check(precision, device)
    if batch_size < 1:
        raise HybtuiError(f"--batch-size must be at least 1 (got {batch_size})")
    if max_queries is not None and max_queries < 1:
        raise HybtuiError(f"--max-queries must be at least 1 (got {max_queries})")


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _load_benchmarks(
    selections: list[BenchmarkSelection], root: Path | None, max_queries: int | None, bars: ProgressBars
) -> tuple[list[Benchmark | CorpusBenchmark], list[str]]:
    """The benchmarks (downloaded where missing, cut to --max-queries) and the warnings
    their corpora raised, each said once before the encoder loads."""
    from hybtui.data import benchmarks, miracl

    loaded = [benchmarks.load(s, root, progress=bars.download) for s in selections]
    if max_queries is not None:
        loaded = [b.max_queries(max_queries) for b in loaded]
    warnings = [w for b in loaded if isinstance(b, miracl.CorpusBenchmark) for w in b.warnings]
    for warning in warnings:
        bars.message(f"warning: {warning}")
    return loaded, warnings


def _evaluate(
    encoder: Encoder,
    benches: list[Benchmark | CorpusBenchmark],
    seen_langs: list[str] | None,
    batch_size: int,
    bf16: bool,
    index: str,
    bars: ProgressBars,
    searches: dict[str, dict[str, SearchReport]],
) -> list[ResultRow]:
    """The result rows; each corpus search's report lands in `searches[bench][lang]`."""
    from hybtui.evaluation import evaluate, retrieval

    return evaluate.evaluate(
        encoder,
        benches,
        seen_langs,
        batch_size,
        bf16,
        progress=bars.counter,
        index=index,
        cache_dir=retrieval.embedding_cache_root(),
        on_search=lambda bench, lang, report: searches.setdefault(bench, {}).update({lang: report}),
    )


def _print_json(evaluation: Evaluation, spec: EncoderSpec, elapsed: float) -> None:
    from hybtui.results import summary

    payload = {
        "results": [r.as_dict() for r in evaluation.rows],
        "summary": summary(evaluation.rows),
        "model": spec.source,
        "precision": evaluation.precision,
        "wall_time_s": round(elapsed, 2),
    }
    if evaluation.searches:
        payload["search"] = {
            b: {lang: r.as_dict() for lang, r in reports.items()} for b, reports in evaluation.searches.items()
        }
    if evaluation.warnings:
        payload["warnings"] = evaluation.warnings
    typer.echo(json.dumps(payload, indent=1))


def _print_tables(evaluation: Evaluation, spec: EncoderSpec, elapsed: float) -> None:
    """Per benchmark: a corpus table, or the per-language table, the cross-lingual heatmap
    and the seen/unseen summary."""
    from rich.console import Console

    from hybtui import inert
    from hybtui.data import miracl
    from hybtui.reporting import tables as render

    out = Console()
    rows = evaluation.rows
    for bench in evaluation.benches:
        if isinstance(bench, miracl.CorpusBenchmark):
            out.print(_corpus_table(bench, rows, evaluation.searches[bench.name]))
            continue
        out.print(render.language_table(rows, bench.name))
        out.print(render.cross_heatmap(rows, bench.name))
        seen_table = render.seen_summary(rows, bench.name)
        if seen_table is not None:
            out.print(seen_table)
    out.print(inert.text(f"{spec.source}: evaluated in {elapsed:.1f} s, {evaluation.precision}", style="dim"))


def _corpus_table(bench: CorpusBenchmark, rows: list[ResultRow], searches: dict[str, SearchReport]) -> Table:
    """A corpus benchmark's metrics per language, with how each search went."""
    from rich.table import Table

    from hybtui.evaluation import evaluate
    from hybtui.results import AVERAGE

    table = Table("lang", "seen", *evaluate.CORPUS_METRICS, "search", title=bench.name, title_justify="left")
    shown = {
        (r.query_lang, r.metric): r
        for r in rows
        if r.bench == bench.name and (r.seen is None or r.query_lang != AVERAGE)
    }
    for lang in (*bench.languages, AVERAGE):
        figures = (f"{shown[(lang, m)].value:.3f}" for m in evaluate.CORPUS_METRICS)
        table.add_row(lang, shown[(lang, "ndcg@10")].seen or "", *figures, _search_note(searches.get(lang)))
    return table


def _search_note(report: SearchReport | None) -> str:
    """The index and its search time; for an approximate index, its build time and recall against exact search."""
    if report is None:
        return ""
    return f"{report.index} {report.search_s:.2f} s" + (
        ""
        if report.recall_vs_exact is None
        else f" (build {report.build_s:.1f} s; recall@100 vs exact "
        f"{report.recall_vs_exact:.3f}, exact {report.exact_search_s:.2f} s)"
    )
