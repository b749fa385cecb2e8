"""paddle_resnet/console.py: a live status line on a terminal, plain lines elsewhere."""
import io

from paddle_resnet import console as console_module
from paddle_resnet.console import HEARTBEAT_SECONDS, Console, read_status


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_on_a_terminal_the_status_is_redrawn_in_place_and_never_wraps(monkeypatch):
    monkeypatch.setattr(console_module.shutil, "get_terminal_size",
                        lambda fallback: type("Size", (), {"columns": 32})())
    out = io.StringIO()
    shown = Console(out, live=True)
    shown.status("epoch 1/2  iter 1/10  loss 2.30")
    shown.status("epoch 1/2  iter 2/10  loss 2.25  with more than fits")
    # cut to 31 columns: one short of the width, so the cursor never wraps
    assert out.getvalue() == ("\r\x1b[Kepoch 1/2  iter 1/10  loss 2.30"
                              "\r\x1b[Kepoch 1/2  iter 2/10  loss 2.25")
    shown.line("epoch 1/2 done")  # a line takes the status's place, which is stale now
    shown.end_status()
    assert out.getvalue().endswith("\r\x1b[Kepoch 1/2 done\n")


def test_in_a_file_the_status_is_a_plain_line_at_first_and_then_every_heartbeat():
    out, clock = io.StringIO(), Clock()
    shown = Console(out, live=False, clock=clock)
    shown.line("model resnet20")
    shown.status("iter 1")  # the first sign of progress shows at once,
    clock.now += 1
    shown.status("iter 2")  # and the first with a speed
    clock.now += 1
    shown.status("iter 3")
    clock.now += HEARTBEAT_SECONDS - 1
    shown.status("iter 17")  # nothing printed for a heartbeat: say where the run is
    clock.now += 5
    shown.line("iter 20 (log_every)")
    clock.now += HEARTBEAT_SECONDS - 1
    shown.status("iter 34")  # a line is as good as a heartbeat
    clock.now += 1
    shown.status("iter 35")
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == ["model resnet20", "iter 1", "iter 2", "iter 17",
                                           "iter 20 (log_every)", "iter 35"]


def test_a_relayed_status_goes_to_its_file_for_the_parent_to_draw(tmp_path):
    out, path = io.StringIO(), str(tmp_path / "status")
    shown = Console(out, live=False, relay_to=path)
    shown.status("epoch 1/2  iter 3/10")
    shown.line("a log line")
    shown.status("epoch 1/2  iter 4/10")
    assert read_status(path) == "epoch 1/2  iter 4/10"
    assert out.getvalue() == "a log line\n"
    assert read_status(str(tmp_path / "none")) is None
    # The parent follows the lines and the status apart: a line withdraws the status
    # before it is written, so the parent can never draw a status older than a line.
    shown.line("epoch 1/2  iter 10/10  loss 2.1")
    assert read_status(path) is None


def test_a_closed_terminal_does_not_stop_the_run():
    out = io.StringIO()
    shown = Console(out, live=True)
    out.close()
    shown.status("still training")
    shown.line("still logging")
