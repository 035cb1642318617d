"""Starts moto's server on 127.0.0.1; exits when stdin closes.

    .peers/venv/bin/python scripts/peers/run_moto.py PORT
"""
import os
import sys
import threading


def exit_with_parent() -> None:
    # The test harness keeps our stdin open while it lives; EOF means it is gone.
    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader makes the
        # interpreter abort at shutdown.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: run_moto.py PORT")
    exit_with_parent()
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", sys.argv[1]])


if __name__ == "__main__":
    main()
