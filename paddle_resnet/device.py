"""Device choice in one place: `auto` | `cpu` | `gpu` | `gpu:N`."""
import paddle

from .errors import ConfigError


def cuda_devices() -> int:
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def resolve_device(spec: str) -> str:
    """The Paddle place string for a config `device` value, checked against the machine."""
    available = cuda_devices()
    if spec == "auto":
        return "gpu:0" if available else "cpu"
    if spec == "cpu":
        return "cpu"
    index = 0 if spec == "gpu" else int(spec.split(":", 1)[1])
    if not paddle.device.is_compiled_with_cuda():
        raise ConfigError(f"device = {spec} but this Paddle build has no CUDA; install "
                          "paddlepaddle-gpu (see README) or use device=cpu or auto")
    if index >= available:
        raise ConfigError(f"device = {spec} but {available} GPU(s) are visible; use "
                          f"gpu:0..gpu:{max(0, available - 1)} or auto")
    return f"gpu:{index}"


def use_device(spec: str) -> str:
    place = resolve_device(spec)
    paddle.device.set_device(place)
    return place


def is_main_process() -> bool:
    """Rank 0 of a `paddle.distributed.launch` job, or the only process."""
    import paddle.distributed as dist
    return dist.get_rank() == 0
