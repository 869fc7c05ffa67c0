"""The baseline for the acknowledgement benchmark: a Bolt app whose one ``/jit`` listener
only acknowledges, on the bot's own server stack (``bot.server.HttpServer``: waitress,
16 threads, the same WSGI app with its signature pre-check and /healthz).

Run as ``python -m bench.bare_app [--on-request-thread]`` with PORT, SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN and SLACK_API_URL set, like the bot. By default the App has Bolt's
defaults: the listener runs on Bolt's executor and the request thread polls for its
``ack()`` every 10 ms. ``--on-request-thread`` sets ``process_before_response=True``, so the
ack runs on the request thread and is answered at once.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.server import HttpServer


class BareRuntime:
    """The things ``bot.server.wsgi_app`` asks of a runtime."""

    slack_connection = None

    def __init__(self, bolt: App) -> None:
        self.bolt = bolt
        self.settings = SimpleNamespace(signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    def healthy(self) -> bool:
        return True


def build(*, on_request_thread: bool = False) -> App:
    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = App(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=on_request_thread,
    )

    @app.command("/jit")
    def jit_command(ack: Ack) -> None:
        ack()

    return app


def main() -> None:
    runtime: Any = BareRuntime(build(on_request_thread="--on-request-thread" in sys.argv[1:]))
    HttpServer(runtime, "127.0.0.1", int(os.environ["PORT"])).serve_forever()


if __name__ == "__main__":
    main()
