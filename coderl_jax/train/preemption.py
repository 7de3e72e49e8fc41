"""SIGTERM (a maintenance event or a preemption notice): checkpoint the last completed step and
exit, within a bounded time.

`StopSignal.install(timeout_s)` replaces the SIGTERM handler (also the one `jax.distributed`
installs, which only records the notice) with one that asks the loop to stop. From the signal on,
a watchdog thread counts `timeout_s` seconds and then ends the process with `os._exit(EXIT_TIMEOUT)`
whatever it is doing (a step that does not finish, a save stuck in storage retries, a collective
waiting for a host that is gone). The signal also reaches the watchdog through `signal.set_wakeup_fd`,
so the count starts at once even while the main thread is blocked inside a C call.

The loop checks `requested()` between steps; on a job of several processes the processes gather
their flags (`agreed()`), so all of them stop after the same step even when only one host was
told. The trainer then saves that step, waits for the save and raises `Preempted`, a SystemExit
with status EXIT_PREEMPTED.

Exit statuses: EXIT_PREEMPTED (75, EX_TEMPFAIL: the checkpoint of the last completed step is
written; run the same command to resume), EXIT_TIMEOUT (76: the stop did not finish in time; the
run resumes from its last checkpoint that was complete).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger("coderl_jax.train")

EXIT_PREEMPTED = 75
EXIT_TIMEOUT = 76


class Preempted(SystemExit):
    """The run stopped on SIGTERM after checkpointing `step` (SystemExit: `coderl train` exits with
    EXIT_PREEMPTED)."""

    def __init__(self, step: int | None, message: str):
        super().__init__(EXIT_PREEMPTED)
        self.step = step
        self.message = message

    def __str__(self) -> str:
        return self.message


class StopSignal:
    """A SIGTERM handler with a watchdog. A no-op object when it cannot be installed (not on the
    main thread) or when `timeout_s` <= 0 (SIGTERM keeps its previous meaning)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self.installed = False
        self._flag = False  # set by the handler (main thread) or the wakeup thread
        self._armed_at: float | None = None
        self._arm_lock = threading.RLock()  # the handler may run while the main thread holds it
        self._previous = None
        self._previous_wakeup = -1
        self._pipe: tuple[int, int] | None = None

    @classmethod
    def install(cls, timeout_s: float) -> "StopSignal":
        stop = cls(timeout_s)
        if stop.timeout_s <= 0:
            return stop
        if threading.current_thread() is not threading.main_thread():
            log.warning("SIGTERM handling is off: train() is not running on the main thread")
            return stop
        stop._previous = signal.signal(signal.SIGTERM, stop._on_signal)
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            stop._previous_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r), os.close(w)
        else:
            if stop._previous_wakeup != -1:  # someone else's (an asyncio loop): leave it theirs
                signal.set_wakeup_fd(stop._previous_wakeup)
                os.close(r), os.close(w)
            else:
                stop._pipe = (r, w)
                threading.Thread(target=stop._wakeup_reader, args=(r,), name="coderl-sigterm", daemon=True).start()
        stop.installed = True
        return stop

    # --------------------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:  # the main thread, between bytecodes
        self._flag = True
        self.arm("SIGTERM")

    def _wakeup_reader(self, fd: int) -> None:  # at the signal itself, whatever the main thread does
        try:
            while True:
                data = os.read(fd, 64)
                if not data:  # uninstall() closed the write end
                    return
                if signal.SIGTERM in data:
                    self._flag = True
                    self.arm("SIGTERM")
        except OSError:
            return
        finally:
            os.close(fd)

    def arm(self, why: str) -> None:
        """Start the watchdog (once): the process ends `timeout_s` from now unless it has exited."""
        if self.timeout_s <= 0:
            return
        with self._arm_lock:
            if self._armed_at is not None:
                return
            self._armed_at = time.monotonic()
        log.warning("%s: checkpointing the last completed step and exiting (status %d); the process "
                    "ends in %.0f s whatever it is doing (status %d)", why, EXIT_PREEMPTED, self.timeout_s,
                    EXIT_TIMEOUT)
        threading.Thread(target=self._watchdog, name="coderl-stop-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        time.sleep(self.timeout_s)
        try:
            os.write(2, (f"coderl train: no clean stop within {self.timeout_s:.0f} s of SIGTERM; exiting "
                         f"with status {EXIT_TIMEOUT} (the run resumes from its last complete checkpoint)\n").encode())
        finally:
            os._exit(EXIT_TIMEOUT)

    # --------------------------------------------------------------------------------------------

    def requested(self) -> bool:
        """This process was asked to stop."""
        return self._flag

    def agreed(self) -> bool:
        """Any process of the job was asked to stop (a collective on a multi-process job: every
        process must call it at the same point). Arms this process's watchdog when so."""
        import jax

        if jax.process_count() == 1:
            stop = self._flag
        else:
            from coderl_jax.parallel.hosts import gather_objects

            stop = any(gather_objects(self._flag))
        if stop and not self._flag:
            self._flag = True
            self.arm("another process received SIGTERM")
        return stop

    def uninstall(self) -> None:
        """Put the previous SIGTERM handler back. An armed watchdog stays armed: the process was
        told to end."""
        if not self.installed or threading.current_thread() is not threading.main_thread():
            return
        self.installed = False
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        if self._pipe is not None:
            signal.set_wakeup_fd(-1)
            _, w = self._pipe
            self._pipe = None
            os.close(w)  # the reader thread sees end of file and closes the read end
