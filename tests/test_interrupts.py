"""SIGTERM stops the one-shot commands as Ctrl-C does (docfoundry_grpc/interrupts.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

# An asyncio program whose event loop keeps running a callback that, like some library
# callbacks, swallows every exception raised while it runs; the main task waits in a
# try/finally that must run (as a server's stop does) before the process ends with 130.
PROGRAM = textwrap.dedent(
    """
    import asyncio, sys, time
    from docfoundry_grpc.interrupts import exit_interrupted, stop_on_sigterm

    def swallowing() -> None:
        try:
            time.sleep(0.02)
        except BaseException:
            pass
        asyncio.get_running_loop().call_soon(swallowing)

    async def main() -> None:
        asyncio.get_running_loop().call_soon(swallowing)
        print("ready", flush=True)
        try:
            await asyncio.sleep(60)
        finally:
            print("cleaned up", flush=True)

    stop_on_sigterm()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        exit_interrupted()
    """
)


def test_sigterm_cancels_the_main_task_even_where_a_callback_swallows_exceptions() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.2)  # the loop is busy in the swallowing callback
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert (process.returncode, out) == (130, "cleaned up\n"), err
