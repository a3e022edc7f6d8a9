"""A readable console for the trainer: TensorFlow's native start-up lines filtered out.

TensorFlow 2.21 logs through absl before absl is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` no
longer silences its start-up notices (oneDNN, CPU features, missing CUDA drivers, a failed
``cuInit`` on a machine without a GPU): every run would open with lines that look like errors.
They are written by C++ straight to file descriptor 2, so the only place to drop them is there:
:func:`filter_native_stderr` puts a pipe on descriptor 2 and a thread copies everything else
through to the real stderr. ``--log-level DEBUG`` leaves the console untouched.
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's line prefix: severity, MMDD, time, thread id, file:line]
_ABSL = rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-]+:\d+\] "
NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: "  # the second line of cpu_feature_guard's notice
    rb"|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "  # every INFO line
    + rb"|" + _ABSL + rb".*(cuInit|cuda drivers|Unable to register cu(DNN|FFT|BLAS) factory|computation placer))"
)

_installed = False


def is_noise(line: bytes) -> bool:
    """Whether a line of native stderr is start-up chatter rather than something to read."""
    return NOISE.match(line) is not None


def quiet_tensorflow(level: str, own_process: bool) -> None:
    """Before TensorFlow is imported: its C++ logging from ERROR up (unless the user chose a level)
    and, in a process of our own (not a caller's, not under pytest), its start-up lines dropped."""
    if level == "DEBUG":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if own_process:
        filter_native_stderr()


def filter_native_stderr() -> None:
    """Route descriptor 2 through a filter thread for the rest of the process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        pending = b""
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
            # A partial line that cannot be a notice (a progress bar's \r update) goes out now.
            if pending and pending[:1] not in b"IWET":
                kept, pending = kept + pending, b""
            if kept:
                os.write(real, kept)
        if pending and not is_noise(pending):
            os.write(real, pending)
        os.close(read_end)

    thread = threading.Thread(target=forward, name="native-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        """At exit: the real stderr back on descriptor 2, and what the filter still holds written."""
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)  # closes the pipe's last write end (unless a child still holds it)
        thread.join(timeout=2)

    global _restore
    _restore = restore
    atexit.register(restore)


_restore = None


def drain() -> None:
    """Before ``os._exit`` (which skips atexit): everything written so far reaches the console."""
    if _restore is not None:
        _restore()
