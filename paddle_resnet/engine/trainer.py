"""The training loop: timed steps, per-epoch evaluation, checkpoints and exact resume.

The Trainer coordinates; each piece has a home of its own: build.py turns the config into
the model, loaders, optimizer and schedule; step.py is the one training step; meters.py
keeps the running metrics, the clock and the lines; progress.py is where the run is;
signals.py turns signals into a stop at a step every process agrees on; resume.py is what
a checkpoint holds; rundir.py owns the output directory; header.py, runlog.py and
visual.py write what the run reports. The errors a run ends with (NonFiniteLoss,
Interrupted) are importable from here.
"""
import signal
import sys
import time
from typing import Any, Dict, Optional, TextIO

from .. import checkpoint as ckpt
from ..config import Config
from ..console import Console
from ..device import all_reduce, average_running_statistics, init_processes
from ..launch import under_parent
from ..runtime import prepare_process
from .build import build_training
from .eval_engine import evaluate_epoch
from .meters import (STATUS_SECONDS, RunClock, Ticker, TrainMeter, epoch_line, epoch_record,
                     eval_status_line, format_duration, iteration_record, progress_line,
                     status_line)
from .header import announce
from .progress import FiniteGuard, NonFiniteLoss, Progress
from .resume import checkpoint_state, load_resumable, restore
from .rundir import prepare_output_dir
from .runlog import RunLog, truncate_metrics
from .signals import Interrupted, StopRequests
from .step import train_step
from .visual import StepInspection, VisualDLLog, gradient_warnings


class Trainer:
    def __init__(self, cfg: Config, resume: Optional[str] = None, overwrite: bool = False,
                 stream: TextIO = None):
        prepare_process()  # a run started from Python, not through tools/train.py
        self.cfg = cfg
        self.output_dir = cfg["output_dir"]
        self.resume_path = resume
        self.overwrite = overwrite
        self.console = Console.for_this_process(stream or sys.stdout)
        self.progress = Progress()
        self.meter = TrainMeter()
        self.finite = FiniteGuard()
        # Under tools/train.py's launch the parent has told the user already, once.
        self.stops = StopRequests(lambda line: self.log.info(line, console=not under_parent()))
        self._step_hook = None  # called after every step; tests use it to interrupt
        self._resume_note: Optional[str] = None
        self.status_due = Ticker(STATUS_SECONDS)

    # --- set-up --------------------------------------------------------------------------
    def _build(self):
        cfg = self.cfg
        resume_state = load_resumable(self.resume_path, cfg) if self.resume_path else None
        self.procs = init_processes()
        prepare_output_dir(self.output_dir, resume_state is not None, self.overwrite, self.procs)
        self.parts = parts = build_training(cfg, self.procs, self._say)
        self.procs = parts.procs  # with the shared-memory channel, if the processes have one
        self.model, self.optimizer, self.schedule = parts.model, parts.optimizer, parts.schedule
        self.train_loader, self.eval_loader = parts.train_loader, parts.eval_loader
        epochs, every = cfg["train.epochs"], cfg["train.eval_every"]
        self.eval_epochs = {e for e in range(1, epochs + 1) if e % every == 0 or e == epochs}
        self.clock = RunClock(len(self.train_loader), epochs, len(self.eval_loader.split),
                              len(self.eval_epochs), self.train_loader.batch_size)
        if resume_state is not None:
            self._restore(resume_state)

    def _say(self, line: str):
        """A set-up step's line, before the run log exists (rank 0 only)."""
        if self.procs.main:
            self.console.line(line)

    def _restore(self, state: Dict[str, Any]):
        self.progress, self.meter, self._resume_note = restore(state, self.resume_path,
                                                               self.parts, self.procs)
        if self.procs.main:  # the run directory is rank 0's
            truncate_metrics(self.output_dir, self.progress.global_step)

    # --- checkpoints ---------------------------------------------------------------------
    def _save(self, *names: str):
        state = checkpoint_state(self.parts, self.procs, self.progress, self.meter, self.cfg)
        if self.procs.main:
            for name in names:
                ckpt.save_checkpoint(ckpt.checkpoint_path(self.output_dir, name), state)

    def request_stop(self, signum: int = signal.SIGINT):
        self.stops.request(signum)

    # --- the loop ------------------------------------------------------------------------
    def fit(self) -> Dict[str, Any]:
        self._build()
        self.log = RunLog(self.output_dir, self.console, enabled=self.procs.main)
        self.vdl = VisualDLLog(self.output_dir, self.cfg["log.visualdl"] and self.procs.main)
        try:
            with self.stops:
                return self._run()
        except KeyboardInterrupt:  # a second Ctrl-C
            message = (f"stopped at once at {self.progress.position}; "
                       f"{ckpt.last_checkpoint_note(self.output_dir)}")
            self.log.info(message)
            raise Interrupted(message, signal.SIGINT) from None
        finally:
            self.console.end_status()
            self.vdl.close()
            self.log.close()

    def _run(self) -> Dict[str, Any]:
        if self.procs.main:  # the run directory and the console are rank 0's
            announce(self.log, self.vdl, self.cfg, self.parts, self.procs, self.progress,
                     self.resume_path, self._resume_note)
        p, epochs = self.progress, self.cfg["train.epochs"]
        self.model.train()
        run_start = time.perf_counter() - p.elapsed
        last_record = None
        while p.epoch < epochs:
            self._train_epoch(run_start)
            if self.stops.agreed(self.procs):
                break
            last_record = self._end_epoch(run_start)
            if self.stops.agreed(self.procs):
                break
        if self.stops.signum is not None:
            self._check_finite()
            p.elapsed = time.perf_counter() - run_start
            self._save("latest")
            latest = ckpt.checkpoint_path(self.output_dir, "latest")
            message = (f"interrupted at {p.position}; saved {latest}; resume with the same "
                       "command plus --resume")
            self.log.info(message)
            raise Interrupted(message, self.stops.signum)
        summary = {"best_top1": p.best_top1, "best_epoch": p.best_epoch,
                   "elapsed": time.perf_counter() - run_start, **(last_record or {})}
        self.log.info(f"done in {format_duration(summary['elapsed'])}; best "
                      f"{self.parts.eval_name} top-1 {summary['best_top1']:.2f}% at epoch "
                      f"{summary['best_epoch']}; checkpoints in {self.output_dir}")
        return summary

    def _train_epoch(self, run_start: float):
        cfg, p = self.cfg, self.progress
        steps, log_every = len(self.train_loader), cfg["train.log_every"]
        histogram_every = cfg["log.histogram_every"]
        window_start, window_images = time.perf_counter(), 0
        step_start = self._epoch_start = time.perf_counter()
        self.status_due.reset()  # the first step already shows
        self._histograms = None
        for images, labels in self.train_loader.epoch(p.epoch, start=p.batch_index):
            will_log = (p.batch_index + 1) % log_every == 0 or p.batch_index + 1 == steps
            histograms = bool(p.batch_index + 1 == steps and histogram_every
                              and p.current % histogram_every == 0 and self.vdl.enabled)
            inspection = StepInspection(self.model, norms=will_log, arrays=histograms)
            loss, logits = train_step(self.parts.forward_model, images, labels, self.optimizer,
                                      self.parts.amp, cfg["train.label_smoothing"], inspection,
                                      self.parts.average_gradients)
            self._histograms = inspection.arrays or self._histograms
            self.schedule.step()
            self.finite.track(loss, p.global_step + 1)
            self.meter.add(loss, logits, labels)
            p.batch_index += 1
            p.global_step += 1
            window_images += labels.shape[0]
            now = time.perf_counter()
            self.clock.record_step(now - step_start)
            step_start = now
            if will_log:
                self._check_finite()
                self._log_progress(loss, self.procs.world * window_images / (now - window_start),
                                   now - run_start, inspection.norms)
                window_start, window_images = time.perf_counter(), 0
            if self.procs.main and self.status_due(now):
                self.log.status(status_line(p.current, cfg["train.epochs"], p.batch_index,
                                            steps, float(loss), self.clock, p.global_step,
                                            p.evals_done, now - run_start))
            if self._step_hook is not None:
                self._step_hook(self)
            if self.stops.agreed(self.procs):
                return

    def _last_step_lr(self) -> float:
        # The rate the last step used. optimizer.get_lr() is already the next step's after
        # schedule.step(): at a decay it would put an epoch's last step under the next rate.
        return self.schedule.lr_at(max(0, self.progress.global_step - 1))

    def _reduce(self, tensor):
        return all_reduce(tensor, self.procs)

    def _check_finite(self):
        message = self.finite.failure(lambda t: all_reduce(t, self.procs, "min"),
                                      len(self.train_loader),
                                      ckpt.checkpoint_path(self.output_dir, "latest"))
        if message is None:
            return
        self.log.record({"kind": "error", "global_step": self.progress.global_step,
                         "message": message})
        self.log.info(message)
        raise NonFiniteLoss(message)

    def _log_progress(self, loss, ips, elapsed, norms):
        p = self.progress
        record = iteration_record(p, self.meter.averages(self._reduce), float(loss),
                                  self._last_step_lr(), ips, elapsed, self.clock, norms)
        self.log.record(record)
        self.vdl.train_iter(record)
        if norms is not None:
            for warning in gradient_warnings(norms, p.global_step,
                                             self.cfg["log.grad_vanish_below"],
                                             self.cfg["log.grad_explode_above"]):
                self.log.record(warning)
                self.log.info(warning["message"])
        self.log.info(progress_line(record, self.cfg["train.epochs"], len(self.train_loader)))

    def _eval_status(self):
        def show(done: int, total: int):
            if self.procs.main and self.status_due(time.perf_counter()):
                self.log.status(eval_status_line(self.progress.current, self.cfg["train.epochs"],
                                                 self.parts.eval_name, done, total))
        return show

    def _evaluate(self) -> Dict[str, Any]:
        record = evaluate_epoch(self.parts, self.cfg, self.procs, self._reduce,
                                progress=self._eval_status())
        self.clock.record_eval(record["eval_seconds"])
        self.progress.evals_done += 1
        return record

    def _end_epoch(self, run_start: float) -> Dict[str, Any]:
        cfg, p, name = self.cfg, self.progress, self.parts.eval_name
        averages = self.meter.averages(self._reduce)
        average_running_statistics(self.model, self.procs)
        epoch = p.current
        record = epoch_record(epoch, p.global_step, averages, self._last_step_lr(),
                              time.perf_counter() - self._epoch_start)
        if epoch in self.eval_epochs:
            record.update(self._evaluate())
        improved = (f"{name}_top1" in record and
                    (p.best_top1 is None or record[f"{name}_top1"] > p.best_top1))
        if improved:
            p.best_top1, p.best_epoch = record[f"{name}_top1"], epoch
        p.epoch, p.batch_index = epoch, 0
        self.meter = TrainMeter()
        p.elapsed = time.perf_counter() - run_start
        record.update({"best_top1": p.best_top1, "best_epoch": p.best_epoch,
                       "elapsed": p.elapsed})
        self._save(*ckpt.epoch_checkpoints(epoch, improved, cfg["train.checkpoint_every"]))
        self.log.record(record)
        self.vdl.epoch(record, name)
        if self._histograms is not None:
            for kind, arrays in self._histograms.items():
                self.vdl.histograms(arrays, kind, epoch)
        self.log.info(epoch_line(record, cfg["train.epochs"], name,
                                 self.clock.eta_run(p.global_step, p.evals_done)))
        return record

