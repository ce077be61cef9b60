"""A form for a new training run, checked as it is typed by the CLI's own rules
(``RunConfig.from_dict``, then ``prepare_data``, the model and device check and the GPU
count's, with the CLI's warnings), and launched through the launcher on as many GPUs as it
asks for. It opens on the store's last launch, or on a run it clones."""

from __future__ import annotations

import contextlib
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
from hybtui.data.checks import prepare_data, run_warnings
from hybtui.data.sources import data_dir_from_env
from hybtui.errors import HybtuiError
from hybtui.modeling.registry import REGISTRY, check_model_and_device
from hybtui.runs import gpus as gpu_pool
from hybtui.runs import launcher, slurm
from hybtui.runs.records import Placement
from hybtui.runs.store import Store
from hybtui.tui.screens.confirm import ConfirmScreen
from hybtui.tui.screens.new_run_fields import (
    BENCHMARK_LANGUAGES,
    BENCHMARKS,
    NUMBERS,
    PRECISION_AFTER,
    PRECISIONS,
    REMEMBERED,
    LanguageList,
    form_spec,
    gpus_line,
    join_spec,
    language_options,
    remembered,
    to_remember,
    unshown,
)

#: Seconds of quiet typing before the form is checked (the check loads the training data).
CHECK_DELAY_S = 0.3


def _row(label: str, *widgets) -> Horizontal:
    return Horizontal(Label(label, classes="form-label"), *widgets, classes="form-row")


class NewRunScreen(Screen):
    """Every change schedules a check; launch is refused until the current form has passed.
    The form opens on ``base`` (a run being cloned, ``cloned_from``), else on the store's last
    launch; what it does not show (prefixes, pooling, …) is the base's."""

    BINDINGS = [Binding("ctrl+s", "launch", "Launch", priority=True), Binding("escape", "discard", "Cancel")]

    @dataclass
    class Checked(Message):
        """The outcome of checking ``config`` and where it is to execute against the data and
        this host (error None: ready to launch, with the CLI's ``warnings``), with the GPUs free
        as it was checked (None: unknown)."""

        config: RunConfig
        placement: Placement
        error: str | None
        free: tuple[str, ...] | None = None
        warnings: tuple[str, ...] = ()

    @dataclass
    class Submitted(Message):
        """The id of the run the launcher recorded (or why it could not be launched)."""

        run_id: str | None
        error: str | None = None

    def __init__(self, store_path: Path, base: RunConfig | None = None, cloned_from: str | None = None) -> None:
        super().__init__()
        self.store_path = store_path
        self.base = remembered(store_path) if base is None else base
        self.cloned_from = cloned_from
        self._checking: RunConfig | None = None
        self._ready: RunConfig | None = None
        self._ready_placement = Placement()
        self._timer: Timer | None = None
        self._pool: tuple[str, ...] = ()
        self._gpu_default = 0
        #: the store's default backend: the form's runs are placed on it, as the CLI's are
        self._backend = Placement()
        #: everything typed or chosen as the form opened: Escape asks only once it changed
        self._opened: tuple = ()

    def compose(self) -> ComposeResult:
        base, registered = self.base, self.base.model in REGISTRY
        yield Header()
        with VerticalScroll(id="new-run-form"):
            yield _row("name", Input(base.name or "", placeholder="optional", id="name", compact=True))
            models = [(name, name) for name in REGISTRY]
            model = base.model if registered else RunConfig().model
            yield _row("model", Select(models, value=model, allow_blank=False, id="model", compact=True))
            path = "" if registered else base.model
            yield _row("", Input(path, placeholder="or a Hugging Face id / local path", id="model-path", compact=True))
            samplers = [(s, s) for s in SAMPLERS]
            yield _row("sampler", Select(samplers, value=base.sampler, allow_blank=False, id="sampler", compact=True))
            for kind in ("train", "eval"):
                bench, chosen = form_spec(kind, getattr(base, kind))
                benches = [(b, b) for b in BENCHMARKS[kind]]
                label = "train data" if kind == "train" else "evaluation"
                yield _row(label, Select(benches, value=bench, allow_blank=False, id=f"{kind}-bench", compact=True))
                languages = LanguageList(
                    *language_options(bench, chosen), id=f"{kind}-langs", classes="langs", compact=True
                )
                yield _row("", languages)
            yield from self._number_rows()
            yield _row("device", Input(base.device, id="device", compact=True))
            yield _row("GPUs", Input(id="gpus", compact=True))
            yield _row("", Static("", id="gpus-free"))
        with Horizontal(id="form-bar"):
            yield Button("Launch (ctrl+s)", id="launch", disabled=True, compact=True)
            yield Static("checking…", id="form-message")
        yield Footer()

    def _number_rows(self) -> ComposeResult:
        for field, label, _ in NUMBERS:
            value = getattr(self.base, field)
            yield _row(label, Input("" if value is None else str(value), id=field, compact=True))
            if field == PRECISION_AFTER:
                choice = Select(PRECISIONS, value=self.base.precision, allow_blank=False, id="precision", compact=True)
                yield _row("precision", choice)

    def on_mount(self) -> None:
        self.sub_title = f"new run like {self.cloned_from}" if self.cloned_from else "new run"
        line = self.query_one("#gpus-free", Static)
        try:
            self._backend = launcher.default_backend(self.store_path)
            self._pool = () if self._remote else gpu_pool.pool()
            self._gpu_default = self._default_gpus(self.base.device)
        except (HybtuiError, OSError) as exc:  # a malformed HYBTUI_GPUS or settings file: the check says so
            line.update(inert.text(str(exc)))
        else:
            remote = f"GPUs from {self._backend.backend}: its scheduler places the run"
            line.update(inert.text(remote) if self._remote else gpus_line(self._pool, None))
        self.query_one("#gpus", Input).value = str(self._gpu_default)
        self.query_one("#name", Input).focus()
        self._opened = self._values()
        left = unshown(self.base)
        if left:
            self.notify(
                inert.visible(
                    f"the form holds one benchmark each to train and evaluate on: {', '.join(left)} left out"
                ),
                title="not in the form",
                severity="warning",
                markup=False,
            )
        self._changed()

    def _values(self) -> tuple:
        """Everything typed or chosen, to tell a changed form from the one opened."""
        form = self.query_one("#new-run-form")
        return (
            tuple(field.value for field in form.query(Input)),
            tuple(choice.value for choice in form.query(Select)),
            tuple(tuple(sorted(languages.selected)) for languages in form.query(SelectionList)),
        )

    def action_discard(self) -> None:
        """Close the form; a changed one only once the researcher says its changes may go."""
        if self._values() == self._opened:
            self.app.pop_screen()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("discard this new run's changes?"), answered)

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
        """A new benchmark offers its own languages, all chosen (the Select's first Changed,
        as it mounts, keeps the languages the form opened with)."""
        languages = self.query_one(f"#{event.select.id.removesuffix('-bench')}-langs", SelectionList)
        if [option.value for option in languages.options] == list(BENCHMARK_LANGUAGES[event.value]):
            return
        languages.clear_options()
        languages.add_options(language_options(event.value, BENCHMARK_LANGUAGES[event.value]))

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
        self._show("checking…", None)  # never a "ready" of the form as it was

    def _config(self) -> RunConfig:
        """The form as a validated RunConfig, with ``data_dir`` recorded as the CLI does."""
        values: dict = {
            "name": self.query_one("#name", Input).value.strip() or None,
            "model": self.query_one("#model-path", Input).value.strip() or self.query_one("#model", Select).value,
            "sampler": self.query_one("#sampler", Select).value,
            "device": self.query_one("#device", Input).value.strip() or "auto",
            "precision": self.query_one("#precision", Select).value,
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
        if root is not None:  # else a clone keeps its run's data folder
            values["data_dir"] = str(root.resolve())
        return RunConfig.from_dict({**self.base.to_dict(), **values}, source="new run")

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
            self._show(str(exc), "error")
            return
        self._checking = config
        self._show("checking the data…", None)
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
                check_model_and_device(config.model, config.device, here=False, precision=config.precision)
                slurm.check(placement)
            else:
                check_model_and_device(config.model, config.device, precision=config.precision)
                gpu_pool.check_count(placement.gpu_count, config.device)
            warnings = tuple(run_warnings(config))
        except (HybtuiError, OSError) as exc:
            self.post_message(self.Checked(config, placement, str(exc), free))
            return
        self.post_message(self.Checked(config, placement, None, free, warnings))

    def on_new_run_screen_checked(self, message: Checked) -> None:
        if message.config is not self._checking:
            return  # the form changed while this was checked
        if self._pool:
            self.query_one("#gpus-free", Static).update(gpus_line(self._pool, message.free))
        if message.error:
            self._show(message.error, "error")
            return
        self._ready, self._ready_placement = message.config, message.placement
        self.query_one("#launch", Button).disabled = False
        config, count = message.config, message.placement.gpu_count
        on = f", {count} GPU{'s' if count > 1 else ''}" if count else ""
        ready = f"ready: {config.model}, {config.sampler}, {config.steps} steps{on}"
        if message.warnings:
            self._show("; ".join([ready, *(f"warning: {w}" for w in message.warnings)]), "warning")
        else:
            self._show(ready, "ok")

    def _show(self, text: str, kind: str | None) -> None:
        """The form's message (``kind``: error, warning, ok or None while checking); it quotes
        what was typed (a name, a path): shown literally."""
        message = self.query_one("#form-message", Static)
        message.update(inert.text(text))
        for state in ("error", "warning", "ok"):
            message.set_class(kind == state, state)

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
        self._show("launching…", None)
        self._submit(config, self._ready_placement)

    @work(thread=True, group="new-run-submit")
    def _submit(self, config: RunConfig, placement: Placement) -> None:
        """The launcher records the run and spawns its worker process: off the UI thread."""
        try:
            with Store(self.store_path) as store:
                run_id = launcher.submit(store, config, placement=placement)
                with contextlib.suppress(OSError):  # a launch not remembered is launched all the same
                    launcher.keep_settings(store.path, **{REMEMBERED: to_remember(config)})
        except (HybtuiError, sqlite3.Error, OSError) as exc:
            self.post_message(self.Submitted(None, str(exc)))
            return
        self.post_message(self.Submitted(run_id))

    def on_new_run_screen_submitted(self, message: Submitted) -> None:
        """The launched run's page replaces the form (the app opens it: the page is above the
        form, whose clone action it offers); a refused launch is told on the form."""
        if message.run_id is None:
            self._show(f"cannot launch: {message.error}", "error")
            return
        self.app.open_launched_run(message.run_id)
