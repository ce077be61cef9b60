"""A form for a new training run, checked as it is typed by the CLI's own rules
(``RunConfig.from_dict``, then ``prepare_data``, the model and device check and the GPU
count's), and launched through the launcher on as many GPUs as it asks for."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Header, Input, Label, Select, SelectionList, Static

from hybtui import inert
from hybtui.config import SAMPLERS, RunConfig
from hybtui.data import miracl
from hybtui.data.checks import prepare_data
from hybtui.data.lareqa import LANGUAGES as TRAINING_BENCHMARKS
from hybtui.data.sources import data_dir_from_env
from hybtui.errors import HybtuiError
from hybtui.modeling.registry import REGISTRY, check_model_and_device
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import launcher, slurm
from hybtui.runs.records import Placement
from hybtui.runs.store import Store
from hybtui.tui.screens.run_detail import RunDetailScreen

#: Seconds of quiet typing before the form is checked (the check loads the training data).
CHECK_DELAY_S = 0.3
#: The numeric fields: (RunConfig field, label, type); an empty max length means the model's own.
NUMBERS = (
    ("alpha", "α (mono share)", float),
    ("steps", "steps", int),
    ("batch_size", "batch size", int),
    ("lr", "lr", float),
    ("temperature", "temperature τ", float),
    ("max_length", "max length", int),
    ("seed", "seed", int),
)


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


def _row(label: str, *widgets) -> Horizontal:
    return Horizontal(Label(label, classes="form-label"), *widgets, classes="form-row")


#: Benchmarks by the form field offering them, each with its languages: training draws
#: from LAReQA's parallel sets; evaluation may also be MIRACL's monolingual corpora.
BENCHMARKS = {"train": TRAINING_BENCHMARKS, "eval": {**TRAINING_BENCHMARKS, miracl.NAME: miracl.LANGUAGES}}
#: Every benchmark of the form with its languages.
BENCHMARK_LANGUAGES = BENCHMARKS["eval"]


def _language_options(bench: str, chosen: tuple[str, ...]) -> list[tuple[str, str, bool]]:
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


class NewRunScreen(Screen):
    """Every change schedules a check; launch is refused until the current form has passed."""

    BINDINGS = [Binding("ctrl+s", "launch", "Launch", priority=True), Binding("escape", "app.pop_screen", "Cancel")]

    @dataclass
    class Checked(Message):
        """The outcome of checking ``config`` and where it is to execute against the data and
        this host (error None: ready to launch), with the GPUs free as it was checked (None: unknown)."""

        config: RunConfig
        placement: Placement
        error: str | None
        free: tuple[str, ...] | None = None

    @dataclass
    class Submitted(Message):
        """The id of the run the launcher recorded (or why it could not be launched)."""

        run_id: str | None
        error: str | None = None

    def __init__(self, store_path: Path, refresh_s: float) -> None:
        super().__init__()
        self.store_path = store_path
        self.refresh_s = refresh_s
        self._checking: RunConfig | None = None
        self._ready: RunConfig | None = None
        self._ready_placement = Placement()
        self._timer: Timer | None = None
        self._pool: tuple[str, ...] = ()
        self._gpu_default = 0
        #: the store's default backend: the form's runs are placed on it, as the CLI's are
        self._backend = Placement()

    def compose(self) -> ComposeResult:
        defaults = RunConfig()
        yield Header()
        with VerticalScroll(id="new-run-form"):
            yield _row("name", Input(placeholder="optional", id="name", compact=True))
            yield _row(
                "model",
                Select(
                    [(name, name) for name in REGISTRY],
                    value=defaults.model,
                    allow_blank=False,
                    id="model",
                    compact=True,
                ),
            )
            yield _row("", Input(placeholder="or a Hugging Face id / local path", id="model-path", compact=True))
            yield _row(
                "sampler",
                Select(
                    [(s, s) for s in SAMPLERS], value=defaults.sampler, allow_blank=False, id="sampler", compact=True
                ),
            )
            for kind, spec in (("train", defaults.train[0]), ("eval", defaults.eval[0])):
                bench, chosen = split_spec(spec)
                yield _row(
                    f"{kind} data" if kind == "train" else "evaluation",
                    Select(
                        [(b, b) for b in BENCHMARKS[kind]],
                        value=bench,
                        allow_blank=False,
                        id=f"{kind}-bench",
                        compact=True,
                    ),
                )
                yield _row(
                    "",
                    SelectionList(*_language_options(bench, chosen), id=f"{kind}-langs", classes="langs", compact=True),
                )
            for field, label, _ in NUMBERS:
                value = getattr(defaults, field)
                yield _row(label, Input("" if value is None else str(value), id=field, compact=True))
            yield _row("device", Input(defaults.device, id="device", compact=True))
            yield _row("GPUs", Input(id="gpus", compact=True))
            yield _row("", Static("", id="gpus-free"))
            yield _row("", Button("Launch (ctrl+s)", id="launch", disabled=True, compact=True))
        yield Static("checking…", id="form-message")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "new run"
        line = self.query_one("#gpus-free", Static)
        try:
            self._backend = launcher.default_backend(self.store_path)
            self._pool = () if self._remote else gpu_pool.pool()
            self._gpu_default = self._default_gpus(RunConfig().device)
        except (HybtuiError, OSError) as exc:  # a malformed HYBTUI_GPUS or settings file: the check says so
            line.update(inert.text(str(exc)))
        else:
            remote = f"GPUs from {self._backend.backend}: its scheduler places the run"
            line.update(inert.text(remote) if self._remote else gpus_line(self._pool, None))
        self.query_one("#gpus", Input).value = str(self._gpu_default)
        self.query_one("#model", Select).focus()
        self._changed()

    @on(Input.Changed, "#device")
    def _device_changed(self, event: Input.Changed) -> None:
        """A GPU count left at its default follows the device's (none for the CPU)."""
        gpus = self.query_one("#gpus", Input)
        if gpus.value.strip() == str(self._gpu_default):
            try:
                self._gpu_default = self._default_gpus(event.value.strip() or "auto")
            except HybtuiError:
                return
            gpus.value = str(self._gpu_default)

    @on(Select.Changed, "#train-bench, #eval-bench")
    def _bench_changed(self, event: Select.Changed) -> None:
        """A new benchmark offers its own languages, all chosen."""
        languages = self.query_one(f"#{event.select.id.removesuffix('-bench')}-langs", SelectionList)
        languages.clear_options()
        languages.add_options(_language_options(event.value, BENCHMARK_LANGUAGES[event.value]))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    def _changed(self) -> None:
        """Refuse launch until the form as it now stands has been checked."""
        self._ready = None
        self._checking = None
        self.query_one("#launch", Button).disabled = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DELAY_S, self._check_form)

    def _config(self) -> RunConfig:
        """The form as a validated RunConfig, with ``data_dir`` recorded as the CLI does."""
        values: dict = {
            "name": self.query_one("#name", Input).value.strip() or None,
            "model": self.query_one("#model-path", Input).value.strip() or self.query_one("#model", Select).value,
            "sampler": self.query_one("#sampler", Select).value,
            "device": self.query_one("#device", Input).value.strip() or "auto",
        }
        for kind in ("train", "eval"):
            values[kind] = [
                join_spec(
                    self.query_one(f"#{kind}-bench", Select).value,
                    self.query_one(f"#{kind}-langs", SelectionList).selected,
                )
            ]
        for field, _, kind in NUMBERS:
            text = self.query_one(f"#{field}", Input).value.strip()
            if field == "max_length" and not text:
                values[field] = None
                continue
            try:
                values[field] = kind(text)
            except ValueError:
                noun = "an integer" if kind is int else "a number"
                raise HybtuiError(f"--{field.replace('_', '-')} must be {noun} (got '{text}')") from None
        root = data_dir_from_env(None)
        values["data_dir"] = str(root.resolve()) if root else None
        return RunConfig.from_dict(values, source="new run")

    @property
    def _remote(self) -> bool:
        return self._backend.backend not in (None, "local")

    def _default_gpus(self, device: str) -> int:
        """The CLI's default: a cluster job on `cuda` asks for one GPU; here, one where the host has some."""
        return int(device == "cuda") if self._remote else gpu_pool.default_count(device)

    def _gpu_count(self) -> int:
        text = self.query_one("#gpus", Input).value.strip()
        try:
            return int(text)
        except ValueError:
            raise HybtuiError(f"--gpus must be an integer (got '{text}')") from None

    def _check_form(self) -> None:
        try:
            config = self._config()
            placement = Placement(self._gpu_count(), self._backend.backend, self._backend.options)
        except HybtuiError as exc:
            self._show(str(exc), ok=False)
            return
        self._checking = config
        self._show("checking the data…", ok=None)
        self._check(config, placement)

    @work(thread=True, group="new-run-check")
    def _check(self, config: RunConfig, placement: Placement) -> None:
        """The data rules (languages, pool sizes for the sampler) load the data, and the model,
        device and placement (GPU count, backend) are checked as the CLI checks them: off the UI
        thread. The GPUs free now are read alongside, for the form to show."""
        free = None
        try:
            with Store(self.store_path) as store:
                free = gpu_pool.free(store)
        except (HybtuiError, sqlite3.Error, OSError):
            pass  # an unreadable store is told when launching; the form shows the pool alone
        try:
            prepare_data(config, Path(config.data_dir) if config.data_dir else None)
            if self._remote:
                check_model_and_device(config.model, config.device, here=False)
                slurm.check(placement)
            else:
                check_model_and_device(config.model, config.device)
                gpu_pool.check_count(placement.gpu_count, config.device)
        except (HybtuiError, OSError) as exc:
            self.post_message(self.Checked(config, placement, str(exc), free))
            return
        self.post_message(self.Checked(config, placement, None, free))

    def on_new_run_screen_checked(self, message: Checked) -> None:
        if message.config is not self._checking:
            return  # the form changed while this was checked
        if self._pool:
            self.query_one("#gpus-free", Static).update(gpus_line(self._pool, message.free))
        if message.error:
            self._show(message.error, ok=False)
            return
        self._ready, self._ready_placement = message.config, message.placement
        self.query_one("#launch", Button).disabled = False
        config, count = message.config, message.placement.gpu_count
        on = f", {count} GPU{'s' if count > 1 else ''}" if count else ""
        self._show(f"ready: {config.model}, {config.sampler}, {config.steps} steps{on}", ok=True)

    def _show(self, text: str, ok: bool | None) -> None:
        """The form's message; it quotes what was typed (a name, a path): shown literally."""
        message = self.query_one("#form-message", Static)
        message.update(inert.text(text))
        message.set_class(ok is False, "error")
        message.set_class(ok is True, "ok")

    @on(Button.Pressed, "#launch")
    def action_launch(self) -> None:
        if self._ready is None:
            self.notify(
                str(self.query_one("#form-message", Static).content) or "the form is not checked yet",
                title="cannot launch",
                severity="warning",
                markup=False,
            )
            return
        config, self._ready = self._ready, None
        self.query_one("#launch", Button).disabled = True
        self._show("launching…", ok=None)
        self._submit(config, self._ready_placement)

    @work(thread=True, group="new-run-submit")
    def _submit(self, config: RunConfig, placement: Placement) -> None:
        """The launcher records the run and spawns its worker process: off the UI thread."""
        try:
            with Store(self.store_path) as store:
                run_id = launcher.submit(store, config, placement=placement)
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Submitted(None, str(exc)))
            return
        self.post_message(self.Submitted(run_id))

    def on_new_run_screen_submitted(self, message: Submitted) -> None:
        """The launched run's detail replaces the form; a refused launch is told on the form."""
        if message.run_id is None:
            self._show(f"cannot launch: {message.error}", False)
            return
        self.app.switch_screen(RunDetailScreen(self.store_path, message.run_id, self.refresh_s))
