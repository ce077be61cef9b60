"""RunConfig: every knob of a training run, validated, with a JSON/TOML round-trip.

Defaults are the paper's: AdamW, lr 3e-5, weight decay 0.01, global batch 100,
τ = 0.05, E5 prefixes (from the model registry), hybrid sampling with α = 0.5.
Validation here covers what can be checked without data; the sampler checks the
rest (pool sizes, languages) before anything runs.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from hybtui.errors import HybtuiError
from hybtui.inert import has_unsafe, visible

SAMPLERS = ("mono", "cross", "hybrid")
#: auto: bf16 autocast where the hardware computes bf16 natively, fp32 elsewhere (modeling/precision.py)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class RunConfig:
    name: str | None = None
    model: str = "me5-small"
    pooling: str | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    max_length: int | None = 128
    sampler: str = "hybrid"
    alpha: float = 0.5
    train: tuple[str, ...] = ("mlqa-r",)
    eval: tuple[str, ...] = ("xquad-r",)
    #: optimizer steps; 0 evaluates the model as it is (a zero-shot baseline run)
    steps: int = 1000
    batch_size: int = 100
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_steps: int = 100
    temperature: float = 0.05
    symmetric: bool = False
    max_grad_norm: float = 1.0
    grad_accumulation: int = 1
    grad_cache_chunk: int = 0
    #: texts per length-sorted forward group (less padding); 0 = one forward per side
    forward_chunk: int = 16
    precision: str = "auto"
    freeze_embeddings: bool = False
    validation_fraction: float = 0.05
    eval_every: int = 0
    eval_max_queries: int = 200
    #: queries per language in the final evaluation; 0 = all of them
    final_eval_max_queries: int = 0
    checkpoint_every: int = 0
    #: complete checkpoints kept: while running the newest max(1, N) (the newest is the resume
    #: point); once finished N final encoders without trainer state (0: results only)
    keep_checkpoints: int = 1
    eval_batch_size: int = 64
    seed: int = 42
    device: str = "auto"
    #: where the benchmark files are (recorded so a detached worker finds them too)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("train", "eval"):  # JSON/TOML give lists; keep the config hashable
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        self.validate()

    def validate(self) -> None:
        """Reject configurations that cannot run, each with a message naming the option."""
        problems = self._type_problems()
        if problems:  # the range checks below compare numbers: a wrong type would raise there
            raise HybtuiError("invalid run configuration: " + "; ".join(problems))
        if self.sampler not in SAMPLERS:
            problems.append(f"--sampler must be one of {', '.join(SAMPLERS)} (got '{self.sampler}')")
        if self.precision not in PRECISIONS:
            problems.append(
                f"--precision must be one of {', '.join(PRECISIONS)} (got '{visible(str(self.precision))}')"
            )
        if not 0.0 <= self.alpha <= 1.0:
            problems.append(f"--alpha must be within [0, 1] (got {self.alpha})")
        for option, value in (
            ("batch-size", self.batch_size),
            ("grad-accumulation", self.grad_accumulation),
            ("eval-max-queries", self.eval_max_queries),
            ("eval-batch-size", self.eval_batch_size),
        ):
            if value < 1:
                problems.append(f"--{option} must be at least 1 (got {value})")
        for option, value in (
            ("steps", self.steps),
            ("final-eval-max-queries", self.final_eval_max_queries),
            ("warmup-steps", self.warmup_steps),
            ("eval-every", self.eval_every),
            ("checkpoint-every", self.checkpoint_every),
            ("grad-cache-chunk", self.grad_cache_chunk),
            ("forward-chunk", self.forward_chunk),
            ("keep-checkpoints", self.keep_checkpoints),
        ):
            if value < 0:
                problems.append(f"--{option} must be 0 or more (got {value})")
        if self.lr <= 0:
            problems.append(f"--lr must be positive (got {self.lr})")
        if self.temperature <= 0:
            problems.append(f"--temperature must be positive (got {self.temperature})")
        if self.weight_decay < 0:
            problems.append(f"--weight-decay must be 0 or more (got {self.weight_decay})")
        if not 0.0 <= self.validation_fraction < 1.0:
            problems.append(f"--validation-fraction must be within [0, 1) (got {self.validation_fraction})")
        if self.max_length is not None and self.max_length < 8:
            problems.append(f"--max-length must be at least 8 (got {self.max_length})")
        if not self.train:
            problems.append("--train names no training data")
        if problems:
            raise HybtuiError("invalid run configuration: " + "; ".join(problems))

    def _type_problems(self) -> list[str]:
        """Numbers of the right kind, every float finite (NaN would train to NaN and is not
        JSON), and a name that shows as typed (no control characters)."""
        problems = []
        for field in fields(self):
            value, option = getattr(self, field.name), "--" + field.name.replace("_", "-")
            kind = field.type.removesuffix(" | None")
            if value is None and field.type.endswith(" | None"):
                continue
            if kind == "float" and (not isinstance(value, Real) or isinstance(value, bool)):
                problems.append(f"{option} must be a number (got {visible(repr(value))})")
            elif kind == "float" and not math.isfinite(value):
                problems.append(f"{option} must be a finite number (got {value})")
            elif kind == "int" and (not isinstance(value, Integral) or isinstance(value, bool)):
                problems.append(f"{option} must be an integer (got {visible(repr(value))})")
        if self.name is not None and not isinstance(self.name, str):
            problems.append(f"--name must be text (got {visible(repr(self.name))})")
        elif self.name is not None and has_unsafe(self.name):
            problems.append(
                f"--name must not hold control characters such as newline or ESC (got '{visible(self.name)}')"
            )
        return problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["train"], data["eval"] = list(self.train), list(self.eval)
        return data

    def to_json(self) -> str:
        """Strict JSON (no NaN), which SQLite's JSON functions read."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> RunConfig:
        known = {f.name for f in fields(cls)}
        normalised = _legacy_bf16({key.replace("-", "_"): value for key, value in data.items()}, source)
        unknown = sorted(set(normalised) - known)
        if unknown:
            raise HybtuiError(f"{source}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**normalised)
        except TypeError as exc:
            raise HybtuiError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> RunConfig:
        """Read a TOML (`--config FILE.toml`) or JSON configuration."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise HybtuiError(f"cannot read configuration {path}: {exc.strerror}") from exc
        try:
            data = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise HybtuiError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'TOML'}: {exc}") from exc
        try:
            return cls.from_dict(data, str(path))
        except HybtuiError as exc:
            raise HybtuiError(str(exc) if str(exc).startswith(f"{path}:") else f"{path}: {exc}") from exc

    def to_toml(self) -> str:
        """The configuration as TOML (None values are left out: they mean "default")."""
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def replace(self, **changes: Any) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})


def _legacy_bf16(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Configurations stored before `precision` said `bf16: true/false`; they keep their meaning
    (bf16 or fp32, never `auto`), so an old run resumes exactly as it began."""
    if "bf16" not in data:
        return data
    data = dict(data)
    legacy = data.pop("bf16")
    if not isinstance(legacy, bool):
        raise HybtuiError(f"{source}: bf16 must be true or false (got {visible(repr(legacy))}); use precision")
    meant = "bf16" if legacy else "fp32"
    if data.setdefault("precision", meant) != meant:
        raise HybtuiError(
            f"{source}: bf16 = {str(legacy).lower()} contradicts precision = {visible(repr(data['precision']))}; "
            "give precision only"
        )
    return data


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
