"""The environment switches of process-wide settings (`PADDLE_RESNET_MKL_FAST_PATH`,
`PADDLE_RESNET_KEEP_MEMORY`): one reading of "off" for all. Imports nothing of Paddle."""
from typing import Mapping, Optional

OFF = ("0", "false", "off", "no")


def switched_off(environ: Mapping[str, str], switch: str) -> Optional[str]:
    """The state for the run's speed line when the user switched `switch` off, else None."""
    if environ.get(switch, "1").strip().lower() in OFF:
        return f"off ({switch}={environ[switch]})"
    return None
