"""The new-run form's pieces that hold no screen state: its fields, the language lists, the
spelling of benchmark specs, the GPU line, and where a form's first values come from (the
store's remembered launch, or a run being cloned)."""

from __future__ import annotations

import re
from pathlib import Path

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import SelectionList

from hybtui.config import RunConfig
from hybtui.data import miracl
from hybtui.data.lareqa import LANGUAGES as TRAINING_BENCHMARKS
from hybtui.errors import HybtuiError
from hybtui.runs import launcher

#: The numeric fields in screen order: (RunConfig field, label, type); an empty max length
#: means the model's own. Precision sits among them as a choice (``PRECISION_AFTER``).
NUMBERS = (
    ("alpha", "α (mono share)", float),
    ("steps", "steps", int),
    ("batch_size", "batch size", int),
    ("lr", "lr (peak)", float),
    ("weight_decay", "weight decay", float),
    ("warmup_steps", "warmup steps", int),
    ("temperature", "temperature τ", float),
    ("max_length", "max length", int),
    ("grad_cache_chunk", "GradCache chunk", int),
    ("eval_every", "eval every", int),
    ("eval_max_queries", "eval queries", int),
    ("checkpoint_every", "checkpoint every", int),
    ("keep_checkpoints", "keep checkpoints", int),
    ("validation_fraction", "validation share", float),
    ("seed", "seed", int),
)
#: The precision choice follows this field (the optimisation knobs, before evaluation's).
PRECISION_AFTER = "grad_cache_chunk"
PRECISIONS = (("auto (bf16 where native)", "auto"), ("fp32", "fp32"), ("bf16 autocast", "bf16"))

#: Benchmarks by the form field offering them, each with its languages: training draws
#: from LAReQA's parallel sets; evaluation may also be MIRACL's monolingual corpora.
BENCHMARKS = {"train": TRAINING_BENCHMARKS, "eval": {**TRAINING_BENCHMARKS, miracl.NAME: miracl.LANGUAGES}}
#: Every benchmark of the form with its languages.
BENCHMARK_LANGUAGES = BENCHMARKS["eval"]
#: The settings.json key of the last launched form.
REMEMBERED = "new_run"


class LanguageList(SelectionList):
    """A SelectionList whose boxes read ``✓`` when chosen and blank when not, so that the
    choice shows without colour (a monochrome terminal, a colour-blind reader)."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        index = self.scroll_offset.y + y
        if len(segments) < 4 or index >= self.option_count:
            return strip
        chosen = self.get_option_at_index(index).value in self.selected
        segments[1] = Segment("✓" if chosen else " ", segments[1].style)
        return Strip(segments, strip.cell_length)


def language_options(bench: str, chosen: tuple[str, ...]) -> list[tuple[str, str, bool]]:
    return [(lang, lang, lang in chosen) for lang in BENCHMARK_LANGUAGES[bench]]


def split_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """``mlqa-r:en,de`` → (``mlqa-r``, (en, de)); a bare benchmark means all its languages."""
    bench, _, langs = spec.partition(":")
    return bench, tuple(langs.split(",")) if langs else BENCHMARK_LANGUAGES[bench]


def join_spec(bench: str, chosen: list[str]) -> str:
    """The CLI's spelling: the bare benchmark when every language is chosen, else ``bench:l1,l2``
    (in the benchmark's order; none chosen gives ``bench:``, which the data rules reject)."""
    if set(chosen) == set(BENCHMARK_LANGUAGES[bench]):
        return bench
    return f"{bench}:" + ",".join(lang for lang in BENCHMARK_LANGUAGES[bench] if lang in chosen)


def form_spec(kind: str, specs: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The benchmark and languages the form shows for a configuration's ``train`` or ``eval``:
    its first benchmark the form offers (the form holds one), else the default's."""
    for spec in specs:
        if spec.partition(":")[0] in BENCHMARKS[kind]:
            return split_spec(spec)
    return split_spec(getattr(RunConfig(), kind)[0])


def gpu_list(ids: tuple[str, ...]) -> str:
    """GPU ids as a reader scans them: runs of consecutive ids as ranges (``0-3``, ``0,2-3``)."""
    runs: list[list[int]] = []
    for gpu in sorted(int(i) for i in ids):
        if runs and gpu == runs[-1][-1] + 1:
            runs[-1].append(gpu)
        else:
            runs.append([gpu])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs)


def gpus_line(pool: tuple[str, ...], free: tuple[str, ...] | None) -> str:
    """What the form says of this host's GPUs: ``GPUs free: 1,3 of 0-3`` (free None: not read yet)."""
    if not pool:
        return "no GPUs on this host"
    if free is None:
        return f"GPUs: {gpu_list(pool)}"
    return f"GPUs free: {gpu_list(free) or 'none'} of {gpu_list(pool)}"


def clone_name(name: str | None) -> str | None:
    """A clone's name: ``sweep`` → ``sweep-2``, ``sweep-2`` → ``sweep-3`` (no name: none)."""
    if not name:
        return None
    stem, number = re.fullmatch(r"(.*?)(?:-(\d+))?", name).groups()
    return f"{stem}-{int(number) + 1 if number else 2}"


def remembered(path: Path) -> RunConfig:
    """The store's last launched form (name excepted), or the defaults where none was kept or
    it no longer reads as a configuration (a field since removed, a settings file edited)."""
    try:
        kept = launcher.settings(path).get(REMEMBERED)
        return RunConfig.from_dict(kept) if isinstance(kept, dict) else RunConfig()
    except (HybtuiError, OSError, ValueError):
        return RunConfig()


def to_remember(config: RunConfig) -> dict:
    """What the form keeps of a launch: the configuration less its name and data folder
    (the next run is another run, and the data folder follows HYBTUI_DATA_DIR)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("name", "data_dir")}


def unshown(config: RunConfig) -> list[str]:
    """The data of ``config`` the form cannot hold (a training file, a second benchmark): a
    clone launches what the form shows, so the form says what it left out."""
    left = []
    for kind in ("train", "eval"):
        bench, langs = form_spec(kind, getattr(config, kind))
        left += [
            spec
            for spec in getattr(config, kind)
            if spec.partition(":")[0] != bench or set(split_spec(spec)[1]) != set(langs)
        ]
    return left
