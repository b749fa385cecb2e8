"""Devices and processes in one place: device choice (`auto` | `cpu` | `gpu` | `gpu:N`),
host-to-device batches, mixed precision, and data parallelism under
`python -m paddle.distributed.launch`.

Under the launcher every process trains on its share of each global batch and Paddle's
DataParallel averages the gradients, so every process holds the same parameters. On a CPU
the launcher picks the gloo backend by itself; on GPUs, NCCL, one GPU per process. CPU
processes of one host average their gradients (and make their other all-reduces) through
shared memory instead where they can (`host_allreduce.py`, `dist.shared_memory`).
Starting the launcher for `tools/train.py` is `launch.py`'s job; the host CPU and MKL's
dispatch are `cpu.py`'s and `speed/`'s.
"""
import contextlib
import ctypes
import io
import os
import platform
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Tuple

import numpy as np
import paddle

from . import cpu
from .errors import ConfigError
from .host_allreduce import HostAllReduce, unavailable_reason
from .schema import SCHEMA


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1
    # the processes' shared-memory channel (open_host_channel), if they have one
    host: Optional[HostAllReduce] = field(default=None, compare=False, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_world_size() -> int:
    """Processes started by paddle.distributed.launch (1 when run directly)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def init_processes() -> Processes:
    world = launched_world_size()
    if world == 1:
        return Processes()
    import paddle.distributed as dist
    # init_parallel_env prints a banner of the FLAGS the launcher itself set
    # (FLAGS_enable_pir_in_executor) to stderr in every process; anything else it prints
    # is passed on.
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        dist.init_parallel_env()
    notice = re.sub(r"=+ Modified FLAGS detected =+\n(FLAGS\(.*\)\n)*=+\n", "",
                    printed.getvalue())
    if notice:
        sys.stderr.write(notice)
    _remove_environment_backup()
    return Processes(dist.get_rank(), dist.get_world_size())


def _remove_environment_backup() -> None:
    """The launcher writes this process's whole environment (tokens included) to
    `backup_env.<rank>.json` in the run's folder, for Paddle to read once, in
    init_parallel_env, and keep in memory (paddle/distributed/backup_env.py); then it is
    only a copy of secrets in a folder users share."""
    path = os.environ.get("PADDLE_BACKUP_ENV_PATH")
    if path and os.path.basename(path).startswith("backup_env."):
        try:
            os.remove(path)
        except OSError:
            pass


def cuda_devices() -> int:
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def resolve_device(spec: str) -> str:
    """The Paddle place string for a config `device` value, checked against the machine."""
    available = cuda_devices()
    if spec == "cpu" or (spec == "auto" and not available):
        return "cpu"
    if not paddle.device.is_compiled_with_cuda():
        raise ConfigError(f"device = {spec} but this Paddle build has no CUDA; install "
                          "paddlepaddle-gpu (see README) or use device=cpu or auto")
    if launched_world_size() > 1:
        # The launcher gives each process its GPU; a fixed gpu:N would put all on one.
        selected = os.environ.get("FLAGS_selected_gpus", "0").split(",")[0]
        return f"gpu:{int(selected)}"
    index = 0 if spec in ("auto", "gpu") else int(spec.split(":", 1)[1])
    if index >= available:
        raise ConfigError(f"device = {spec} but {available} GPU(s) are visible; use "
                          f"gpu:0..gpu:{max(0, available - 1)} or auto")
    return f"gpu:{index}"


def use_device(spec: str) -> str:
    place = resolve_device(spec)
    paddle.device.set_device(place)
    return place


def to_device(array, place: str, pin_memory: bool = False) -> paddle.Tensor:
    """A host batch as a tensor on `place`. With `pin_memory` on a GPU the batch goes
    through page-locked host memory and the copy does not block the host."""
    if pin_memory and place.startswith("gpu"):
        return paddle.to_tensor(array, place=paddle.CUDAPinnedPlace()).cuda(blocking=False)
    return paddle.to_tensor(array)


AMP_LEVELS = SCHEMA["speed.amp"].choices


class MixedPrecision:
    """Automatic mixed precision as Paddle documents it: `paddle.amp.auto_cast` around the
    forward pass (O1: white-listed ops such as conv and matmul in `dtype`; O2: the whole
    model in `dtype`, with float32 master weights in the optimizer), and for float16 a
    dynamic `GradScaler` so that small gradients do not underflow (bfloat16 keeps
    float32's exponent range and needs none). `off` runs everything in float32.

    Paddle's auto_cast only acts on CUDA places (on a CPU it warns and does nothing), so
    a level other than `off` is an error there."""

    def __init__(self, level: str, dtype: str, loss_scale: float, place: str):
        if level not in AMP_LEVELS:
            raise ConfigError(f"speed.amp = {level!r}; expected one of {', '.join(AMP_LEVELS)}")
        if level != "off" and not place.startswith("gpu"):
            raise ConfigError(f"speed.amp = {level} needs a GPU (Paddle's auto_cast only acts "
                              f"on CUDA places) but the device is {place}; set speed.amp=off")
        self.level, self.dtype = level, dtype
        self.scaler = (paddle.amp.GradScaler(init_loss_scaling=loss_scale)
                       if level != "off" and dtype == "float16" else None)

    @property
    def enabled(self) -> bool:
        return self.level != "off"

    def decorate(self, model: paddle.nn.Layer, optimizer):
        """O2 casts the model to `dtype` once; checkpoints still hold float32 weights."""
        if self.level != "O2":
            return model, optimizer
        return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2",
                                   dtype=self.dtype, master_weight=True, save_dtype="float32")

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=self.level, dtype=self.dtype)

    def backward_and_step(self, loss: paddle.Tensor, optimizer,
                          after_backward: Optional[Callable[[], None]] = None) -> None:
        """`after_backward` (data_parallel's gradient average) runs on the gradients before
        the step uses them."""
        if self.scaler is None:
            loss.backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if after_backward is not None:
            after_backward()
        self.scaler.step(optimizer)  # unscales the gradients first; skips inf/NaN steps
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def set_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def check_sync_bn(sync_bn: bool, place: str) -> None:
    if sync_bn and not place.startswith("gpu"):
        raise ConfigError("dist.sync_bn needs GPUs: Paddle has no CPU kernel for "
                          "sync_batch_norm; set -o dist.sync_bn=false on the CPU")


def convert_sync_bn(model: paddle.nn.Layer, processes: Processes, sync_bn: bool,
                    place: str) -> paddle.nn.Layer:
    """BatchNorm as SyncBatchNorm when launched on several processes and asked to; before
    the optimizer is built, which must hold the converted layers' parameters."""
    check_sync_bn(sync_bn, place)
    if sync_bn and processes.distributed:
        return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def open_host_channel(processes: Processes, setting: Optional[bool], place: str,
                      capacity: int) -> Tuple[Processes, str]:
    """`processes` with a shared-memory channel for vectors of up to `capacity` bytes where
    `dist.shared_memory` (`setting`) asks for one and all of them can open it, and the
    note of a default that could not (`true` fails instead). Collective."""
    if not processes.distributed or setting is False or not place.startswith("cpu"):
        if setting and processes.distributed:
            raise ConfigError(f"dist.shared_memory = true averages CPU processes' gradients, "
                              f"but the device is {place}; set dist.shared_memory=null")
        return processes, ""
    import paddle.distributed as dist
    reason, channel = unavailable_reason(), None
    if reason is None:
        try:
            channel = _open_channel(processes, capacity)
        except OSError as e:
            reason = f"its shared memory could not be opened ({e.strerror or e})"
    opened = all_reduce(paddle.to_tensor(int(channel is not None)), processes, "min")
    if channel is not None:
        dist.barrier()  # every rank attached before the name goes
        channel.unlink()
    if int(opened):
        return replace(processes, host=channel), ""
    if channel is not None:
        channel.close()
    reason = reason or "another process could not open it (the processes are on several hosts?)"
    if setting:
        raise ConfigError(f"dist.shared_memory = true, but {reason}; set "
                          "dist.shared_memory=null to average gradients through gloo")
    return processes, (f"shared-memory all-reduce unavailable: {reason}; averaging gradients "
                       "by DataParallel over gloo")


def _open_channel(processes: Processes, capacity: int) -> Optional[HostAllReduce]:
    """Rank 0 makes the segment and passes its name over gloo; the others attach. None on
    a rank that cannot (another host): the caller's all-reduce makes every rank agree."""
    import paddle.distributed as dist
    channel, error = None, None
    if processes.main:
        try:
            channel = HostAllReduce.create(processes.world, capacity)
        except OSError as e:
            error = e
    name = [channel.name if channel is not None else ""]
    dist.broadcast_object_list(name, src=0)
    if error is not None:
        raise error
    if not processes.main and name[0]:
        try:
            channel = HostAllReduce.attach(name[0], processes.rank, processes.world, capacity)
        except FileNotFoundError:
            return None
    return channel


def channel_capacity(model: paddle.nn.Layer) -> int:
    """The bytes a run's shared-memory channel needs: the model's gradients in float32 (a
    CPU's training), with room for the run's other all-reduces (BN statistics, metric
    sums), which are smaller."""
    return max(4 * sum(int(np.prod(p.shape)) for p in _trainable_parameters(model)), 1 << 16)


def writable_view(tensor: paddle.Tensor) -> np.ndarray:
    """A flat numpy view of a dense float32 CPU tensor's memory that numpy may write into.
    Paddle 3.3's DLPack capsule says its memory is writable; Paddle 3.0's older capsule
    says nothing, and numpy then makes its view read-only: there the view is built on the
    tensor's data pointer instead (`pointer_view`)."""
    view = np.from_dlpack(tensor)
    return view.reshape(-1) if view.flags.writeable else pointer_view(tensor)


def pointer_view(tensor: paddle.Tensor) -> np.ndarray:
    """`writable_view` through `Tensor.data_ptr()`: the view does not keep the memory
    alive, so the tensor that owns it must outlive the view (a gradient, held by its
    parameter, does)."""
    if tensor.dtype != paddle.float32 or not tensor.place.is_cpu_place():
        raise TypeError(f"pointer_view takes float32 CPU tensors, not {tensor.dtype} on "
                        f"{tensor.place}")
    size = int(np.prod(tensor.shape))
    pointer = ctypes.cast(tensor.data_ptr(), ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(pointer, shape=(size,))


class GradientAverage:
    """Between backward and the optimizer's step: every parameter's gradient replaced by
    the average over processes, through the shared-memory channel. As DataParallel does,
    each process scales its gradients by 1/world and the scaled ones are summed, so
    parameters move as they do under DataParallel (bit for bit with two processes:
    tests/test_distributed.py)."""

    def __init__(self, model: paddle.nn.Layer, processes: Processes):
        self.parameters = _trainable_parameters(model)
        sizes = [int(np.prod(p.shape)) for p in self.parameters]
        ends = np.cumsum(sizes).tolist()
        self.parts = [slice(end - size, end) for size, end in zip(sizes, ends)]
        self.host, self.scale = processes.host, np.float32(1.0 / processes.world)

    @paddle.no_grad()
    def __call__(self) -> None:
        # Two passes over the gradients' bytes: each scaled straight into this process's
        # slot, then the slots summed straight into the gradients (numpy views of their
        # memory through DLPack). Copies through .numpy() and set_value took seven: 42 ms
        # of ResNet-18's 1.3 s step against 11 (benchmarks/gradient_exchange.py).
        outgoing = self.host.outgoing(np.float32, self.parts[-1].stop)
        targets = []
        for parameter, part in zip(self.parameters, self.parts):
            grad = parameter.grad
            if grad is None:
                # It took no part in this process's forward: it adds zeros and keeps no
                # gradient here (the package's models use every parameter).
                outgoing[part] = 0.0
                targets.append(np.empty(part.stop - part.start, np.float32))
                continue
            view = writable_view(grad.detach())
            np.multiply(view, self.scale, out=outgoing[part])
            targets.append(view)
        self.host.reduce(outgoing, out=targets)


def data_parallel(model: paddle.nn.Layer, processes: Processes
                  ) -> Tuple[paddle.nn.Layer, Optional[Callable[[], None]]]:
    """The layer a training step calls and what it calls between backward and the
    optimizer's step: over processes with a shared-memory channel the model itself and
    GradientAverage; otherwise DataParallel over several processes (after AMP's
    decoration), which averages during backward. Checkpoints hold `model`, whose names
    carry no wrapper."""
    if not processes.distributed:
        return model, None
    if processes.host is not None:
        _broadcast_parameters(model)
        return model, GradientAverage(model, processes)
    return paddle.DataParallel(model), None


@paddle.no_grad()
def _broadcast_parameters(model: paddle.nn.Layer) -> None:
    """Rank 0's parameters and buffers in every process, as DataParallel starts."""
    import paddle.distributed as dist
    for tensor in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(tensor, src=0)


def all_reduce(tensor: paddle.Tensor, processes: Processes, op: str = "sum") -> paddle.Tensor:
    """The sum (or "max", "min") over processes, as a new tensor; the argument is left as
    it was."""
    if not processes.distributed:
        return tensor
    if processes.host is not None and tensor.place.is_cpu_place():
        array = tensor.numpy()
        if processes.host.fits(array):
            return paddle.to_tensor(processes.host.reduce(array, op))
    import paddle.distributed as dist
    total = tensor.clone()
    dist.all_reduce(total, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                               "min": dist.ReduceOp.MIN}[op])
    return total


def barrier(processes: Processes) -> None:
    if processes.distributed:
        import paddle.distributed as dist
        dist.barrier()


def _trainable_parameters(model: paddle.nn.Layer):
    return [t for t in model.parameters() if not t.stop_gradient]


def _running_statistics(model: paddle.nn.Layer):
    # Paddle keeps BN _mean/_variance among the parameters, as ones without gradients.
    return [t for t in model.parameters() if t.stop_gradient]


@paddle.no_grad()
def average_running_statistics(model: paddle.nn.Layer, processes: Processes) -> None:
    """Average BN running statistics over processes (as timm's distribute_bn). With plain
    BN each process updates them from its own shard only; without this, processes would
    evaluate, and rank 0 would save, different models."""
    if not processes.distributed:
        return
    for tensor in _running_statistics(model):
        tensor.set_value(all_reduce(tensor, processes) / processes.world)


@paddle.no_grad()
def gather_running_statistics(model: paddle.nn.Layer, processes: Processes):
    """Every process's BN running statistics, flattened, in rank order (None for one
    process). Mid-epoch they differ between processes (each updates them from its own
    shard), so a checkpoint that should resume every process exactly keeps them all.
    Collective: every process must call it."""
    if not processes.distributed:
        return None
    import paddle.distributed as dist
    flat = paddle.concat([t.flatten() for t in _running_statistics(model)])
    gathered = []
    dist.all_gather(gathered, flat)
    return [t.numpy() for t in gathered]


@paddle.no_grad()
def restore_running_statistics(model: paddle.nn.Layer, flat) -> None:
    """The inverse of one process's entry of gather_running_statistics."""
    offset = 0
    for tensor in _running_statistics(model):
        size = int(tensor.numel())
        tensor.set_value(paddle.to_tensor(flat[offset:offset + size]).reshape(tensor.shape))
        offset += size


def kernel_hardware(place: str) -> str:
    """What decides which code the kernels run, and so how they round: on a CPU its widest
    vector extension (oneDNN and MKL dispatch on it, not on the model name), else the GPU."""
    if place == "cpu":
        return f"cpu ({cpu.vector_extension() or platform.machine()})"
    return f"{place} ({paddle.device.cuda.get_device_name(int(place.split(':')[1]))})"


def describe(place: str, processes: int) -> str:
    """The run's first line: the hardware and how it is used."""
    count = f"{processes} process{'es' if processes > 1 else ''}"
    if place == "cpu":
        extension = cpu.vector_extension()
        name = cpu.cpu_name() + (f" ({extension})" if extension else "")
        usable, quota = cpu.usable_cores(), cpu.cpu_quota()
        cores = f"{usable} core{'s' if usable > 1 else ''}"
        if quota is not None and quota < cpu.affinity_cores():
            cores += f" (a CPU quota of {quota:g} of the {cpu.affinity_cores()} it may run on)"
        return f"cpu: {name}, {cores}; {count}"
    name = paddle.device.cuda.get_device_name(int(place.split(":")[1]))
    return f"{place}: {name}; {count}"
