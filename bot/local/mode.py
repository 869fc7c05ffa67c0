"""``jit-bot serve`` with no Slack app: the normal bot, its Web API calls answered by an
embedded Slack, its grants sent to an embedded webhook receiver, and a page on
127.0.0.1 that stands in for Slack's client.

Order matters: the embedded Slack and the receiver listen first (the bot asks Slack who
it is while it is built, and the bundled config names the receiver's URL), then the bot
and the page share one server on $PORT, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.local import assembly
from bot.local.assembly import AUDIT_CHANNEL
from bot.local.feed import About, Feed
from bot.local.interactions import Interactions
from bot.local.people import People
from bot.local.receiver import WebhookReceiver
from bot.local.slack import LocalSlack
from bot.local.web import LocalWeb

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.server import HttpServer

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def populate(slack: LocalSlack, people: People) -> None:
    """The workspace's members, user groups and audit channel, as Slack would hold them."""
    slack.add_channel(AUDIT_CHANNEL)
    for person in people:
        slack.add_user(person.id, person.email, person.name, real_name=person.real_name)
    for handle, members in people.groups().items():
        group_id = "S" + hashlib.sha256(handle.encode()).hexdigest()[:9].upper()
        slack.add_usergroup(group_id, handle, members)


def run(
    env: Mapping[str, str],
    stop_on_signals: Callable[[], threading.Event],
    *,
    out: TextIO = sys.stdout,
) -> int:
    """Serve local mode until SIGTERM or SIGINT; the exit status."""
    from bot.audit_key import AuditKeyError

    credentials = assembly.Credentials.new()
    config = assembly.choose_config(env, Path(os.getcwd()))
    # Set by SIGTERM/SIGINT; it also ends the page's long polls at once.
    stopping = stop_on_signals()
    slack = LocalSlack(token=credentials.bot_token).start()
    receiver = WebhookReceiver(credentials.webhook_secret).start()
    try:
        with tempfile.TemporaryDirectory(prefix="jit-bot-local-") as workdir:
            config = assembly.render_example(config, receiver.url, Path(workdir))
            populate(slack, config.people)
            assembled = assembly.assemble(
                env, config, slack.api_url, receiver.url, credentials, Path(workdir)
            )
            interactions = Interactions(slack, config.people.ids(), {AUDIT_CHANNEL})
            about = About(config.describe(), assembled.settings.database_url, receiver.url)
            feed = Feed(slack, receiver, interactions, config.people, about)
            web = LocalWeb(feed, interactions, stopping)
            try:
                started = _start(assembled, web)
            except AuditKeyError as exc:
                print(f"jit-bot: {exc}", file=sys.stderr)
                return 2
            if started is None:
                return 2
            runtime, server = started
            web.listening_on(server.port)
            interactions.connect(f"http://{HOST}:{server.port}", credentials.signing_secret)
            return _serve(runtime, server, stopping, out, config.describe())
    finally:
        stopping.set()
        receiver.stop()
        slack.stop()


def _start(assembled: assembly.Assembled, web: LocalWeb) -> tuple[Runtime, HttpServer] | None:
    """The bot, built as ``serve`` builds it, and its server with the page in front."""
    from bot.app import build_runtime
    from bot.server import HttpServer

    settings = assembled.settings
    runtime = build_runtime(settings, providers=assembled.providers, environ=assembled.environ)
    try:
        server = HttpServer(runtime, HOST, settings.port, wrap=web.wrap)
    except OSError as exc:
        runtime.stop()
        print(f"jit-bot: cannot listen on port {settings.port} (PORT): {exc}", file=sys.stderr)
        return None
    return runtime, server


def _serve(
    runtime: Runtime, server: HttpServer, stopping: threading.Event, out: TextIO, config: str
) -> int:
    try:
        runtime.start()
        url = f"http://{HOST}:{server.port}/"
        print(
            f"jit-bot: local mode, open {url} (config: {config}; no Slack app connected: "
            "to use a real one, set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, see docs/slack.md)",
            file=out,
            flush=True,
        )
        server.serve_forever()
    except SystemExit:
        pass  # a signal arrived before the server loop was running
    finally:
        stopping.set()
        server.close()
        runtime.stop()
    return 0
