"""`python .../launcher_main.py ARGS`: Paddle's launcher, tied to the process that started it.

launch.py starts this file instead of `python -m paddle.distributed.launch`, so that the
launcher ends when tools/train.py ends, however it ends: Linux sends the launcher SIGTERM
when its parent dies (PR_SET_PDEATHSIG; SIGKILL of the parent included), and the launcher
passes SIGTERM to every worker, which writes its resumable checkpoint and exits. The
workers tie themselves to the launcher the same way (launch.die_with_launcher), by the PID
this file leaves in their environment. A file run by path, importing nothing of the
package: the launcher starts before anything else, whatever sys.path the user has.
"""
import ctypes
import os
import runpy
import signal
import sys

PARENT_ENV = "PADDLE_RESNET_PARENT_PID"
LAUNCHER_ENV = "PADDLE_RESNET_LAUNCHER_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """SIGTERM to this process when its parent dies; False if the parent is gone already
    (it may have died before the request was made, which the kernel would never report)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    return os.getppid() == parent_pid


if __name__ == "__main__":
    if not die_with_parent(int(os.environ[PARENT_ENV])):
        sys.exit(1)
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    sys.argv[0] = "paddle.distributed.launch"
    runpy.run_module("paddle.distributed.launch", run_name="__main__", alter_sys=True)
