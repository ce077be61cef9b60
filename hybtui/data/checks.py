"""The data checks of a run: everything that can be wrong with its training data, its
sampler settings and its evaluation choices, found before any model loads or any run
is recorded. Nothing here imports torch: the app's new-run form runs these checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hybtui.config import RunConfig
from hybtui.data import benchmarks
from hybtui.data.pools import batch_kinds, pooled_sets
from hybtui.data.training import TrainingData, load_training_sets, split_validation
from hybtui.errors import HybtuiError


def validate_sampler(
    datasets: list[TrainingData],
    strategy: str,
    batch_size: int,
    alpha: float = 0.5,
    languages: Iterable[str] | None = None,
) -> None:
    """Raise a HybtuiError saying what is wrong before anything runs.

    Stricter than what the sampler can draw from: a hybrid run needs two languages
    whatever α is, and every selected language must fill a mono batch — a language
    silently left out of mono batches would bias the comparison of samplers.
    """
    views = pooled_sets(datasets, strategy, batch_size, alpha, languages)
    for view in views:
        if strategy == "hybrid" and len(view.languages) < 2:
            raise HybtuiError(
                f"sampler 'hybrid' mixes in cross-lingual batches, but training set '{view.name}' has the single "
                f"language {view.languages[0]}; use --sampler mono"
            )
        small = {lang: len(pool) for lang, pool in view.lang_pools.items() if len(pool) < batch_size}
        if batch_kinds(strategy, alpha)[0] and small:
            sizes = ", ".join(f"{lang} {n}" for lang, n in small.items())
            raise HybtuiError(
                f"batch size {batch_size} is larger than the mono pool of {sizes} items in training set "
                f"'{view.name}'; lower --batch-size or leave those languages out of --train"
            )


def prepare_data(config: RunConfig, data_dir: Path | None) -> tuple[list[TrainingData], list[TrainingData]]:
    """Training and validation sets, with everything that can be wrong with the data and
    the sampler checked — before any model loads or any run is recorded."""
    sets = load_training_sets(list(config.train), data_dir)
    splits = [split_validation(s, config.validation_fraction) for s in sets]
    train_sets = [train for train, _ in splits]
    validate_sampler(train_sets, config.sampler, config.batch_size, config.alpha)
    if config.eval:
        benchmarks.parse_eval_spec(list(config.eval))
    return train_sets, [val for _, val in splits if len(val)]


def run_warnings(config: RunConfig) -> list[str]:
    """What a run may do but likely did not mean, told before it is recorded (the CLI on
    stderr, the app's form beside its ready): a warmup the schedule never finishes, and
    evaluating on a benchmark trained on (LAReQA's items are parallel: training on some of
    its languages shows the model every evaluation item's translation)."""
    warnings = []
    if config.warmup_steps > config.steps > 0:
        warnings.append(
            f"--warmup-steps {config.warmup_steps} is more than --steps {config.steps}: the learning rate "
            f"never reaches --lr {config.lr:g} (it peaks at {config.steps / config.warmup_steps:.0%} of it)"
        )
    trained = {spec.partition(":")[0] for spec in config.train}
    evaluated = (
        {selection.name for selection in benchmarks.parse_eval_spec(list(config.eval))} if config.eval else set()
    )
    for bench in sorted(trained & evaluated):
        warnings.append(
            f"--train and --eval both use {bench}: its evaluation items are trained on (in some language), "
            "so its figures overstate retrieval on unseen data"
        )
    return warnings
