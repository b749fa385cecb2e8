"""The training loop: timed steps, per-epoch evaluation, checkpoints and exact resume."""
import functools
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Optional, TextIO

import paddle

from .. import checkpoint as ckpt
from ..config import Config
from ..console import Console
from ..data import MEAN_STD, BatchLoader, load_cifar
from ..device import (MixedPrecision, all_reduce, average_running_statistics, describe,
                      gather_running_statistics, init_processes, restore_running_statistics,
                      to_device, use_device, wrap_model)
from ..errors import CheckpointError, ConfigError, UserError
from ..models import build_model, count_flops, count_parameters
from ..inference import cpu_threads
from ..launch import stop_message, under_parent
from ..speed import plan_speed
from .eval_engine import eval_forward, resolve_engine
from .evaluator import evaluate
from .step import train_step, training_model
from .meters import RunClock, format_duration
from .optim import build_optimizer, build_schedule
from .rundir import CONFIG_FILE, prepare_output_dir
from .runlog import RunLog, read_metrics, truncate_metrics
from .visual import VisualDLLog, model_arrays, stage_norms

HPARAM_KEYS = ("model.name", "data.dataset", "data.augment", "train.epochs", "train.batch_size",
               "optimizer.name", "optimizer.lr", "optimizer.weight_decay", "schedule.name",
               "seed")


NO_BAD_STEP = 2**62  # _first_bad_step when every loss so far was finite
STATUS_SECONDS = 1.0  # how often the live status line is refreshed
# SIGHUP: the terminal closed; a run that dies with it should still leave a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the run stops without saving the broken weights."""


class Interrupted(UserError):
    """The run stopped on a signal; the run log has said where its checkpoint is."""

    shown = True  # cli.run prints nothing more

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class Trainer:
    def __init__(self, cfg: Config, resume: Optional[str] = None, overwrite: bool = False,
                 stream: TextIO = None):
        self.cfg = cfg
        self.output_dir = cfg["output_dir"]
        self.resume_path = resume
        self.overwrite = overwrite
        self.stream = stream or sys.stdout
        self.console = Console.for_this_process(self.stream)
        self._stop_signal: Optional[int] = None
        self._step_hook = None  # called after every step; tests use it to interrupt
        self._resume_note: Optional[str] = None

    # --- set-up --------------------------------------------------------------------------
    def _build(self):
        cfg = self.cfg
        resume_state = ckpt.load_checkpoint(self.resume_path) if self.resume_path else None
        if resume_state is not None:
            stored = resume_state.get("config", {}).get("model", {}).get("name")
            if stored != cfg["model.name"]:
                raise CheckpointError(f"{self.resume_path} holds a {stored} run but the config "
                                      f"says model.name = {cfg['model.name']}; resume with "
                                      "the run's own config")
        self.procs = init_processes()
        batch = cfg["train.batch_size"]
        if batch % self.procs.world:
            raise ConfigError(f"train.batch_size = {batch} (the global batch) must be divisible "
                              f"by the {self.procs.world} processes")
        prepare_output_dir(self.output_dir, resume_state is not None, self.overwrite, self.procs)
        self.place = use_device(cfg["device"])
        # A bad combination fails before training.
        self.eval_inference = resolve_engine(cfg["eval.engine"], self.place,
                                             cfg["eval.precision"]) == "inference"
        self.speed = plan_speed(cfg, self.place, self.procs.world, say=self._say)
        self.amp = MixedPrecision(cfg["speed.amp"], cfg["speed.amp_dtype"],
                                  cfg["speed.loss_scale"], self.place)
        paddle.seed(cfg["seed"])
        self._say(f"loading {cfg['data.dataset']} from "
                  f"{cfg['data.data_file'] or 'the paddle dataset cache'}")
        train, evaluation, _ = load_cifar(cfg["data.dataset"], cfg["data.data_file"],
                                          cfg["data.train_samples"], cfg["data.test_samples"],
                                          cfg["data.val_samples"])
        if batch > len(train):
            raise ConfigError(f"train.batch_size = {batch} is larger than the {len(train):,} "
                              "training images, so an epoch would be one short step; lower "
                              "train.batch_size or raise data.train_samples")
        self.eval_name = "val" if cfg["data.val_samples"] else "test"
        mean, std = MEAN_STD[cfg["data.dataset"]]
        shard = {"rank": self.procs.rank, "world": self.procs.world,
                 "to_tensor": functools.partial(to_device, place=self.place,
                                                pin_memory=cfg["speed.pin_memory"])}
        # Host augmentation writes batches in the model's layout; the device's writes NCHW.
        layout = self.speed.data_format if cfg["data.augment_on"] == "host" else "NCHW"
        self.train_loader = BatchLoader(train, batch, mean, std, augment=cfg["data.augment"],
                                        shuffle=True, drop_last=True, seed=cfg["seed"],
                                        augment_on=cfg["data.augment_on"], layout=layout,
                                        **shard)
        self.eval_loader = BatchLoader(evaluation, max(batch, 256), mean, std,
                                       layout="NCHW" if self.eval_inference else layout,
                                       **shard)
        model = training_model(cfg["model.name"], self.speed, layout, **cfg.model_kwargs())
        if cfg["speed.to_static"]:
            model = paddle.jit.to_static(model)
        self.model, self.forward_model = wrap_model(model, self.procs, cfg["dist.sync_bn"],
                                                    self.place)
        self.schedule = build_schedule(cfg, len(self.train_loader))
        self.optimizer = build_optimizer(cfg, self.model.parameters(), self.schedule)
        self.model, self.optimizer = self.amp.decorate(self.model, self.optimizer)
        epochs = cfg["train.epochs"]
        every = cfg["train.eval_every"]
        self.eval_epochs = {e for e in range(1, epochs + 1) if e % every == 0 or e == epochs}
        self._first_bad_step = paddle.full([], NO_BAD_STEP, "int64")
        self.clock = RunClock(len(self.train_loader), epochs, len(evaluation),
                              len(self.eval_epochs), self.train_loader.batch_size)
        self.state = {"epoch": 0, "batch_index": 0, "global_step": 0, "best_top1": None,
                      "best_epoch": None, "elapsed": 0.0, "evals_done": 0,
                      "train_sums": self._zero_sums()}
        if resume_state is not None:
            self._restore(resume_state)

    def _nchw_twin(self):
        """The model in NCHW with this run's weights: what Paddle Inference runs best."""
        if self.speed.data_format == "NCHW":
            return self.model
        twin = build_model(self.cfg["model.name"],
                           **dict(self.cfg.model_kwargs(), data_format="NCHW"))
        twin.set_state_dict(self.model.state_dict())
        return twin

    def _say(self, line: str):
        """A set-up step's line, before the run log exists (rank 0 only)."""
        if self.procs.main:
            self.console.line(line)

    @staticmethod
    def _zero_sums() -> Dict[str, paddle.Tensor]:
        # Kept on the device and read back only when logging: no host sync per step.
        return {"loss": paddle.zeros([], "float64"), "top1": paddle.zeros([], "int64"),
                "top5": paddle.zeros([], "int64"), "samples": paddle.zeros([], "int64")}

    def _restore(self, state: Dict[str, Any]):
        ckpt.load_model_state(self.model, state["model"], self.resume_path)
        per_rank = state.get("running_statistics")  # None: written by one process
        written_by = len(per_rank) if per_rank is not None else 1
        if per_rank is not None and written_by == self.procs.world:
            restore_running_statistics(self.model, per_rank[self.procs.rank])
        elif written_by != self.procs.world:
            self._resume_note = (f"{self.resume_path} was written by {written_by} "
                                 f"process(es), this run has {self.procs.world}: every "
                                 "process starts from rank 0's BN running statistics, so the "
                                 "run will not equal an uninterrupted one bit for bit")
        ckpt.load_optimizer_state(self.optimizer, self.model, state["optimizer"])
        self.schedule.set_state_dict(state["schedule"])
        if state.get("rng") is not None:
            paddle.set_rng_state(state["rng"])
        self.amp.set_state_dict(state.get("amp", {}))
        for key in self.state:
            if key in state["progress"]:
                self.state[key] = state["progress"][key]
        if self.procs.main:  # the run directory is rank 0's
            truncate_metrics(self.output_dir, self.state["global_step"])

    # --- checkpoints ---------------------------------------------------------------------
    def _checkpoint_state(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(),
                "running_statistics": gather_running_statistics(self.model, self.procs),
                "optimizer": ckpt.optimizer_state_for_saving(self.optimizer, self.model),
                "schedule": self.schedule.state_dict(), "rng": paddle.get_rng_state(),
                "amp": self.amp.state_dict(),
                "progress": dict(self.state), "config": self.cfg.to_dict()}

    def _save(self, *names: str):
        state = self._checkpoint_state()  # collective: every process takes part
        if not self.procs.main:
            return
        for name in names:
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.output_dir, name), state)

    # --- signals -------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: leave now; checkpoints are atomic
            return  # the launcher repeats its SIGTERM while a worker is still alive
        self._stop_signal = signum
        # Under tools/train.py's launch the parent has told the user already, once.
        self.log.info(stop_message(signum), console=not under_parent())

    def request_stop(self, signum: int = signal.SIGINT):
        self._stop_signal = signum

    def _install_signal_handlers(self):
        self._previous_handlers = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    # --- the loop ------------------------------------------------------------------------
    def fit(self) -> Dict[str, Any]:
        self._build()
        self.log = RunLog(self.output_dir, self.console, enabled=self.procs.main)
        self.vdl = VisualDLLog(self.output_dir, self.cfg["log.visualdl"] and self.procs.main)
        self._install_signal_handlers()
        try:
            return self._run()
        except KeyboardInterrupt:  # a second Ctrl-C
            message = (f"stopped at once at epoch {self.state['epoch'] + 1}, iteration "
                       f"{self.state['batch_index']}; {self._last_checkpoint()}")
            self.log.info(message)
            raise Interrupted(message, signal.SIGINT) from None
        finally:
            self.console.end_status()
            self._restore_signal_handlers()
            self.vdl.close()
            self.log.close()

    def _last_checkpoint(self) -> str:
        latest = ckpt.checkpoint_path(self.output_dir, "latest")
        if not os.path.exists(latest):
            return "no checkpoint was written yet"
        return f"the last checkpoint, {latest}, resumes with the same command plus --resume"

    def _announce(self):
        cfg = self.cfg
        if not self.procs.main:
            return  # the run directory and the console are rank 0's
        path = os.path.join(self.output_dir, CONFIG_FILE)
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(cfg.dump())
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}; free space or fix "
                            "permissions") from None
        s = self.state
        hardware = describe(self.place, self.procs.world)
        self.log.info(hardware)
        self.log.info(self.speed.describe())
        if self.speed.note:
            self.log.info(f"note: {self.speed.note}")
        if self.resume_path:
            self.log.info(f"resumed from {self.resume_path} at epoch {s['epoch'] + 1}, "
                          f"iteration {s['batch_index']}, global step {s['global_step']}")
            if self._resume_note:
                self.log.info(f"note: {self._resume_note}")
        self.log.info(
            f"model {cfg['model.name']} ({count_parameters(self.model):,} parameters) on "
            f"{self.place}; {self.train_loader.num_samples:,} training images per epoch in "
            f"{len(self.train_loader)} iterations of {self.train_loader.batch_size}"
            + (f" (global batch = {self.procs.world} processes x "
               f"{self.train_loader.batch_size // self.procs.world})"
               if self.procs.distributed else "") + "; "
            f"{len(self.eval_loader.split):,} {self.eval_name} images")
        self.log.info(f"recipe: {recipe(cfg)}; output and full config in {self.output_dir}")
        if self.resume_path:
            self.vdl.replay(read_metrics(self.output_dir), self.eval_name)
        else:
            self.log.record({"kind": "run", "global_step": 0, "model": cfg["model.name"],
                             "params": count_parameters(self.model),
                             "flops": count_flops(self.model), "device": self.place,
                             "train_images": self.train_loader.num_samples,
                             "eval_images": len(self.eval_loader.split),
                             "eval_split": self.eval_name, "epochs": cfg["train.epochs"],
                             "batch_size": cfg["train.batch_size"],
                             "processes": self.procs.world,
                             "hardware": hardware, "speed": self.speed.describe()})
        self.vdl.hparams({key: cfg[key] for key in HPARAM_KEYS},
                         ["eval/top1", "eval/loss", "train/loss"])

    def _run(self) -> Dict[str, Any]:
        self._announce()
        cfg = self.cfg
        epochs = cfg["train.epochs"]
        self.model.train()
        run_start = time.perf_counter() - self.state["elapsed"]
        last_record = None
        while self.state["epoch"] < epochs:
            epoch = self.state["epoch"]
            self._train_epoch(epoch, run_start)
            if self._agreed_to_stop():
                break
            last_record = self._end_epoch(epoch, run_start)
            if self._agreed_to_stop():
                break
        if self._stop_signal is not None:
            self._check_finite()
            self.state["elapsed"] = time.perf_counter() - run_start
            self._save("latest")
            s = self.state
            message = (f"interrupted at epoch {s['epoch'] + 1}, iteration {s['batch_index']}; "
                       f"saved {ckpt.checkpoint_path(self.output_dir, 'latest')}; resume "
                       "with the same command plus --resume")
            self.log.info(message)
            raise Interrupted(message, self._stop_signal)
        summary = {"best_top1": self.state["best_top1"], "best_epoch": self.state["best_epoch"],
                   "elapsed": time.perf_counter() - run_start}
        if last_record is not None:
            summary.update(last_record)
        self.log.info(f"done in {format_duration(summary['elapsed'])}; best {self.eval_name} "
                      f"top-1 {summary['best_top1']:.2f}% at epoch {summary['best_epoch']}; "
                      f"checkpoints in {self.output_dir}")
        return summary

    def _train_epoch(self, epoch: int, run_start: float):
        cfg, s = self.cfg, self.state
        steps = len(self.train_loader)
        log_every = cfg["train.log_every"]
        smoothing = cfg["train.label_smoothing"]
        sums = s["train_sums"]
        histogram_every = cfg["log.histogram_every"]
        window_start, window_images = time.perf_counter(), 0
        step_start = self._epoch_start = time.perf_counter()
        self._next_status = step_start  # the first step already shows
        self._histograms = None
        for images, labels in self.train_loader.epoch(epoch, start=s["batch_index"]):
            will_log = (s["batch_index"] + 1) % log_every == 0 or s["batch_index"] + 1 == steps
            histograms = (s["batch_index"] + 1 == steps and histogram_every
                          and (epoch + 1) % histogram_every == 0 and self.vdl.enabled)
            seen = {}

            def inspect():
                if will_log:
                    seen["norms"] = stage_norms(self.model)
                if histograms:
                    self._histograms = model_arrays(self.model, with_grads=True)

            loss, logits = train_step(self.forward_model, images, labels, self.optimizer,
                                      self.amp, smoothing, inspect)
            norms = seen.get("norms")
            self.schedule.step()
            self._track_finite(loss, s["global_step"] + 1)
            with paddle.no_grad():
                batch = labels.shape[0]
                top_k = paddle.topk(logits, min(5, logits.shape[1]), axis=1)[1]
                hits = top_k == labels.unsqueeze(1)
                sums["loss"] += loss.detach().astype("float64") * batch
                sums["top1"] += hits[:, 0].astype("int64").sum()
                sums["top5"] += hits.astype("int64").sum()
                sums["samples"] += batch
            s["batch_index"] += 1
            s["global_step"] += 1
            window_images += batch
            now = time.perf_counter()
            self.clock.record_step(now - step_start)
            step_start = now
            if will_log:
                self._check_finite()
                self._log_progress(epoch, loss, self._global_sums(sums),
                                   self.procs.world * window_images / (now - window_start),
                                   now - run_start, norms)
                window_start, window_images = time.perf_counter(), 0
            if self.procs.main and now >= self._next_status:
                self._next_status = now + STATUS_SECONDS
                self.log.status(self._status_line(epoch, loss, now - run_start))
            if self._step_hook is not None:
                self._step_hook(self)
            if self._agreed_to_stop():
                return

    def _agreed_to_stop(self) -> bool:
        """A signal reaches each process at its own moment; all stop at the same step."""
        if not self.procs.distributed:
            return self._stop_signal is not None
        flag = paddle.to_tensor(self._stop_signal or 0, dtype="int64")
        agreed = int(all_reduce(flag, self.procs, "max"))
        if agreed and self._stop_signal is None:
            self._stop_signal = agreed
        return agreed != 0

    def _global_sums(self, sums):
        return {k: all_reduce(v, self.procs) for k, v in sums.items()}

    def _track_finite(self, loss, step: int):
        # Remember the first step whose loss was NaN/inf without a host sync per step.
        bad_here = paddle.where(paddle.isfinite(loss), paddle.full([], NO_BAD_STEP, "int64"),
                                paddle.full([], step, "int64"))
        self._first_bad_step = paddle.minimum(self._first_bad_step, bad_here)

    def _check_finite(self):
        step = int(all_reduce(self._first_bad_step, self.procs, "min"))
        if step == NO_BAD_STEP:
            return
        steps = len(self.train_loader)
        latest = ckpt.checkpoint_path(self.output_dir, "latest")
        kept = (f"the last good checkpoint {latest} is kept" if os.path.exists(latest)
                else "no checkpoint was written")
        message = (f"the loss became non-finite at step {step} (epoch {(step - 1) // steps + 1}, "
                   f"iteration {(step - 1) % steps + 1}); {kept}; lower optimizer.lr, add "
                   "schedule.warmup_epochs or set train.grad_clip")
        self.log.record({"kind": "error", "global_step": self.state["global_step"],
                         "message": message})
        self.log.info(message)
        raise NonFiniteLoss(message)

    def _warn_on_gradients(self, norms, step: int):
        low, high = self.cfg["log.grad_vanish_below"], self.cfg["log.grad_explode_above"]
        for stage, norm in norms["grad"].items():
            if norm < low:
                which = "smallest"
                problem = f"vanishing: {norm:.2e} < log.grad_vanish_below = {low:g}"
            elif norm > high:
                which = "largest"
                problem = f"exploding: {norm:.2e} > log.grad_explode_above = {high:g}"
            else:
                continue
            layer, value = norms[which][stage]
            message = (f"warning: step {step}: gradient norm of {stage} is {problem}; "
                       f"{which} in {layer} ({value:.2e})")
            self.log.record({"kind": "warning", "global_step": step, "stage": stage,
                             "layer": layer, "grad_norm": norm, "message": message})
            self.log.info(message)

    def _log_progress(self, epoch, loss, sums, ips, elapsed, norms):
        cfg, s = self.cfg, self.state
        steps = len(self.train_loader)
        samples = int(sums["samples"])
        record = {
            "kind": "train_iter", "epoch": epoch + 1, "iter": s["batch_index"],
            "global_step": s["global_step"], "loss": float(loss),
            "avg_loss": float(sums["loss"]) / samples,
            "top1": 100.0 * int(sums["top1"]) / samples, "lr": self.optimizer.get_lr(),
            "ips": ips, "elapsed": elapsed, "eta_epoch": self.clock.eta_epoch(s["batch_index"]),
            "eta_run": self.clock.eta_run(s["global_step"], s["evals_done"]),
        }
        if norms is not None:
            record["grad_norms"], record["weight_norms"] = norms["grad"], norms["weight"]
        self.log.record(record)
        self.vdl.train_iter(record)
        if norms is not None:
            self._warn_on_gradients(norms, s["global_step"])
        self.log.info(
            f"epoch {epoch + 1}/{cfg['train.epochs']}  iter {s['batch_index']}/{steps}  "
            f"loss {record['loss']:.4f} (avg {record['avg_loss']:.4f})  "
            f"top1 {record['top1']:.2f}%  lr {record['lr']:.6f}  {ips:.1f} img/s  "
            f"elapsed {format_duration(elapsed)}  "
            f"eta epoch {format_duration(record['eta_epoch'])}  "
            f"eta run {format_duration(record['eta_run'])}")

    def _status_line(self, epoch: int, loss, elapsed: float) -> str:
        s, clock = self.state, self.clock
        line = (f"epoch {epoch + 1}/{self.cfg['train.epochs']}  iter {s['batch_index']}/"
                f"{len(self.train_loader)}  loss {float(loss):.4f}  ")
        if clock.steps_timed() < 2:
            # The first step also pays for one-time set-up (primitives, allocations): a
            # speed from it alone would be off by an order of magnitude.
            return line + f"elapsed {format_duration(elapsed)}  (timing the first steps)"
        return (line + f"{self.train_loader.batch_size / clock.step_time():.0f} img/s  "
                f"elapsed {format_duration(elapsed)}  "
                f"eta epoch {format_duration(clock.eta_epoch(s['batch_index']))}  "
                f"eta run {format_duration(clock.eta_run(s['global_step'], s['evals_done']))}")

    def _eval_status(self, epoch: int):
        def show(done: int, total: int):
            if self.procs.main and time.perf_counter() >= self._next_status:
                self._next_status = time.perf_counter() + STATUS_SECONDS
                self.log.status(f"epoch {epoch + 1}/{self.cfg['train.epochs']}  evaluating "
                                f"on the {self.eval_name} images: batch {done}/{total}")
        return show

    def _end_epoch(self, epoch: int, run_start: float) -> Dict[str, Any]:
        cfg, s = self.cfg, self.state
        sums = self._global_sums(s["train_sums"])
        samples = int(sums["samples"])
        average_running_statistics(self.model, self.procs)
        record = {"kind": "epoch", "epoch": epoch + 1, "global_step": s["global_step"],
                  "train_loss": float(sums["loss"]) / samples,
                  "train_top1": 100.0 * int(sums["top1"]) / samples,
                  "train_top5": 100.0 * int(sums["top5"]) / samples,
                  "lr": self.optimizer.get_lr(),
                  "epoch_seconds": time.perf_counter() - self._epoch_start}
        if epoch + 1 in self.eval_epochs:
            eval_start = time.perf_counter()
            with eval_forward(self.model, cfg["eval.engine"], self.place,
                              cpu_threads(cfg["eval.threads"], self.procs.world),
                              cfg["eval.precision"], self._nchw_twin) as forward, \
                    self.amp.autocast():
                result = evaluate(self.model, self.eval_loader, cfg["model.num_classes"],
                                  reduce=lambda t: all_reduce(t, self.procs), forward=forward,
                                  progress=self._eval_status(epoch))
            eval_seconds = time.perf_counter() - eval_start
            self.clock.record_eval(eval_seconds)
            s["evals_done"] += 1
            record.update({f"{self.eval_name}_loss": result["loss"],
                           f"{self.eval_name}_top1": result["top1"],
                           f"{self.eval_name}_top5": result["top5"],
                           "eval_seconds": eval_seconds})
        improved = (f"{self.eval_name}_top1" in record and
                    (s["best_top1"] is None or record[f"{self.eval_name}_top1"] > s["best_top1"]))
        if improved:
            s["best_top1"], s["best_epoch"] = record[f"{self.eval_name}_top1"], epoch + 1
        s["epoch"], s["batch_index"] = epoch + 1, 0
        s["train_sums"] = self._zero_sums()
        s["elapsed"] = time.perf_counter() - run_start
        record.update({"best_top1": s["best_top1"], "best_epoch": s["best_epoch"],
                       "elapsed": s["elapsed"]})
        names = ["latest"] + (["best"] if improved else [])
        every = cfg["train.checkpoint_every"]
        if every and (epoch + 1) % every == 0:
            names.append(f"epoch_{epoch + 1:03d}")
        self._save(*names)
        self.log.record(record)
        self.vdl.epoch(record, self.eval_name)
        if self._histograms is not None:
            for kind, arrays in self._histograms.items():
                self.vdl.histograms(arrays, kind, epoch + 1)
        self.log.info(self._epoch_line(record))
        return record

    def _epoch_line(self, r: Dict[str, Any]) -> str:
        name = self.eval_name
        line = (f"epoch {r['epoch']}/{self.cfg['train.epochs']} done  "
                f"train loss {r['train_loss']:.4f} top1 {r['train_top1']:.2f}% "
                f"top5 {r['train_top5']:.2f}%")
        if f"{name}_top1" in r:
            line += (f"  {name} loss {r[f'{name}_loss']:.4f} top1 {r[f'{name}_top1']:.2f}% "
                     f"top5 {r[f'{name}_top5']:.2f}% ({format_duration(r['eval_seconds'])})")
        if r["best_top1"] is not None:
            line += f"  best {r['best_top1']:.2f}% (epoch {r['best_epoch']})"
        eta = self.clock.eta_run(self.state["global_step"], self.state["evals_done"])
        return line + (f"  elapsed {format_duration(r['elapsed'])}  "
                       f"eta run {format_duration(eta)}")


def recipe(cfg: Config) -> str:
    """The training recipe in one line (config.yaml holds every key)."""
    optimizer = f"{cfg['optimizer.name']} lr {cfg['optimizer.lr']:g}"
    if cfg["optimizer.name"] == "sgd":
        optimizer += f" momentum {cfg['optimizer.momentum']:g}"
    optimizer += f" wd {cfg['optimizer.weight_decay']:g}"
    schedule = cfg["schedule.name"]
    if schedule == "multistep":
        schedule += (f" x{cfg['schedule.gamma']:g} at "
                     + ", ".join(f"{m:.0%}" for m in cfg["schedule.milestones"])
                     + " of the run")
    if cfg["schedule.warmup_epochs"]:
        schedule += f", {cfg['schedule.warmup_epochs']:g} warm-up epochs"
    epochs = cfg["train.epochs"]
    return (f"{epochs} epoch{'s' if epochs > 1 else ''} of batch {cfg['train.batch_size']}, {optimizer}, "
            f"{schedule}, augment {cfg['data.augment']}, seed {cfg['seed']}")
