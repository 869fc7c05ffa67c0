"""Injection through typed text: what a requester or an approver types (a reason, a deny
reason, a role name), and what a cloud answers, reaches Slack escaped and set apart.

Each hostile text goes the way an attacker would send it (a signed modal submission, a
signed slash command), and the test reads what the fake Slack received: the approver
DMs, the requester's DM, ``/jit list`` and the audit channel. In all of them:

- no live mention, channel link, link or date is made of the text, and no raw ``&``,
  ``<`` or ``>`` of it is left;
- every line the bot writes reads exactly as it does for a harmless text: the typed text
  adds lines only inside its quote (each starting with ``>``), with no formatting
  character that could make bold, code or a seal;
- and the text is still there for a reader, as typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from providers.base import TargetSpec
from providers.fake import FakeProvider
from tests.conftest import ALICE, BOB, CAROL, ROLES_YAML, Bot
from tests.e2e.helpers import click, latest, open_deny, opened_view, submit
from tests.fakes.slack_client import select_value, text_value

HARMLESS = "INC-1 checkout errors"
ELLIPSIS = "\u2026"  # where a text too long for Slack was cut

CATALOGUE = [
    pytest.param("please <@UBOB> and <@W0SEC|sec> approve this", id="user-mentions"),
    pytest.param("<!channel> <!here> <!everyone> prod is down", id="special-mentions"),
    pytest.param("@channel @here @everyone prod is down", id="bare-special-mentions"),
    pytest.param("<!subteam^S0SRE|@sre-leads> please look", id="subteam"),
    pytest.param("see <#C0AUDIT|audit> and <#C0GENERAL>", id="channel-links"),
    pytest.param(
        "ticket <https://evil.example/steal|https://tickets.example/INC-1> and "
        "<mailto:x@evil.example|security@example.com>",
        id="links-with-fake-text",
    ),
    pytest.param("due <!date^1700000000^{date_short_pretty}|today> at the latest", id="date"),
    pytest.param("*approved* by _security_ ~denied~ `ok` *bold*text", id="formatting"),
    pytest.param("INC-1\n*approved* by <@UBOB>\n:no_entry: *Denied*", id="newlines"),
    pytest.param(
        "INC-1\r\n*approved* by <@UBOB>\u2028*Will grant*\u2029• db-admin\x0b• root",
        id="other-line-breaks",
    ),
    pytest.param(
        "INC-1 ```\n*approved* by <@UBOB> · #1 `0123abcdef01`\n``` and `` ` ``", id="code-fences"
    ),
    pytest.param(
        "INC-1 · #1 `0123abcdef01`\n#2 `" + "0123456789abcdef" * 4 + "`", id="lookalike-seals"
    ),
    pytest.param(
        "INC-1\n\n*Will grant*\n• fake resource `read-only`\n• (nothing else)",
        id="fake-will-grant-list",
    ),
    pytest.param(
        ":white_check_mark: *Approved; granting access*\n:lock: *Access ended*",
        id="emoji-shortcode-lookalikes",
    ),
    pytest.param("&lt;!channel&gt; &amp; &#60;!here&#62; & done", id="pre-escaped-entities"),
    pytest.param("INC-1 \u202e*devorppa*\u202c ok", id="bidi-override"),
    pytest.param("> quoted\n>>> the rest of the message\n&gt; more", id="quote-markers"),
]

# What the bot itself puts in angle brackets: mentions of the people it names, and dates.
_BOT_SEQUENCE = re.compile(
    r"<@U[A-Z0-9]+>|<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+UTC>"
)
_LIVE = re.compile(
    r"<(?:[!@#]|https?:|mailto:)|<[^>]*\|[^>]*>|(?<![\w\u2060])@(?:channel|here|everyone)\b",
    re.IGNORECASE,
)
_RAW_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")
_SEAL = re.compile(r"#\d+ `[0-9a-f]{12,64}`")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# How Slack shows the text: its three entities decoded, our lookalikes read as the
# characters they stand for.
_SHOWN_AS = {"\u2217": "*", "\u223c": "~", "\u02cb": "`", "\u02cd": "_", "\u2060": ""}


def _texts(node: Any) -> Iterator[str]:
    """Every text object in a message or its blocks."""
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _shown_text(message: dict[str, Any]) -> str:
    """A message as its reader sees it now: its text and its blocks' texts."""
    message = latest(message)
    return "\n".join([message["text"], *_texts(message.get("blocks") or [])])


def _normalised(text: str, request_id: str) -> str:
    text = text.replace(request_id, "R-ID")
    text = _SEAL.sub("#N `HASH`", text)
    return re.sub(r"<!date\^\d+\^", "<!date^T^", text)


def _bot_lines(text: str, request_id: str) -> list[str]:
    return [_normalised(line, request_id) for line in text.splitlines() if not line.startswith(">")]


def _quotes(text: str) -> list[str]:
    """Each block quote in ``text`` (runs of lines starting with ``>``), unquoted."""
    found: list[list[str]] = []
    previous_quoted = False
    for line in text.splitlines():
        quoted = line.startswith(">")
        if quoted:
            if not previous_quoted:
                found.append([])
            found[-1].append(line[2:] if line.startswith("> ") else line[1:])
        previous_quoted = quoted
    return ["\n".join(lines) for lines in found]


def _shown(text: str) -> str:
    for lookalike, char in _SHOWN_AS.items():
        text = text.replace(lookalike, char)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _as_typed(text: str) -> str:
    return "\n".join(_BIDI.sub("", line) for line in text.splitlines())


def _assert_inert(text: str) -> None:
    """No live Slack syntax and no unescaped character in ``text`` but the bot's own."""
    rest = _BOT_SEQUENCE.sub("", text)
    rest = re.sub(r"^>", "", rest, flags=re.MULTILINE)  # the quote markers
    assert not _LIVE.search(rest), text
    assert "<" not in rest and ">" not in rest, text
    assert not _RAW_AMPERSAND.search(text), text


def _request(bot: Bot, reason: str) -> str:
    """Ask for prod-support in prod through the modal, as Slack submits it."""
    before = {r.id for r in bot.service.mine(ALICE)}
    reply = bot.sim.command(ALICE, "request")
    assert reply.status == 200
    bot.settle()
    form = {
        "role": {"role": select_value("prod-support")},
        "environment": {"environment": select_value("prod")},
        "duration": {"duration": text_value("1h")},
        "reason": {"reason": text_value(reason)},
    }
    assert bot.sim.submit_view(ALICE, opened_view(bot, reply.trigger_id), form).status == 200
    bot.settle()
    [request_id] = {r.id for r in bot.service.mine(ALICE)} - before
    return request_id


def _dm_about(bot: Bot, user: str, request_id: str) -> list[dict[str, Any]]:
    return [m for m in bot.dms_to(user) if request_id in str(m)]


def _what_slack_received(bot: Bot, reason: str, deny_reason: str) -> tuple[str, dict[str, str]]:
    """Request with ``reason``, read /jit list, deny with ``deny_reason``; return the
    request id and the text of every place Slack showed it."""
    request_id = _request(bot, reason)
    asked = _shown_text(_dm_about(bot, BOB, request_id)[0])
    listed = bot.command(BOB, "list")["text"]
    view = open_deny(bot, CAROL, request_id)
    reply = bot.sim.submit_view(CAROL, view, {"reason": {"reason": text_value(deny_reason)}})
    assert reply.status == 200
    bot.settle()
    assert bot.service.get(request_id).status == "denied"
    [decided] = _dm_about(bot, BOB, request_id)
    told = _dm_about(bot, ALICE, request_id)
    assert len(told) == 2  # "sent to …" and "was denied"
    posts = [p for p in bot.audit_posts() if request_id in p]
    assert len(posts) == 2  # requested, denied
    return request_id, {
        "approver DM, asked": asked,
        "approver DM, decided": _shown_text(decided),
        "requester DMs": "\n".join(_shown_text(m) for m in told),
        "/jit list": listed,
        **{f"audit post {i}": post for i, post in enumerate(posts)},
    }


@pytest.mark.parametrize("hostile", CATALOGUE)
def test_typed_reasons_reach_slack_escaped_quoted_and_readable(bot: Bot, hostile: str) -> None:
    harmless_id, harmless = _what_slack_received(bot, HARMLESS, "change freeze")
    request_id, shown = _what_slack_received(bot, hostile, hostile)
    assert list(shown) == list(harmless)
    for place, text in shown.items():
        _assert_inert(text)
        # The bot's own lines are exactly those of a harmless request: nothing typed
        # starts a line, fakes a field, a list, a decision or a seal.
        assert _bot_lines(text, request_id) == _bot_lines(harmless[place], harmless_id), place
        for quoted in _quotes(text):
            assert not set("*`~") & set(quoted), (place, quoted)
    # Where the words were typed they are shown, whole and as typed.
    expected = _as_typed(hostile)
    wanted = {
        "approver DM, asked": 1,  # the reason
        "approver DM, decided": 2,  # the reason and the deny reason
        "requester DMs": 1,  # the deny reason
        "/jit list": 1,  # the reason
        "audit post 0": 1,  # requested, with the reason
        "audit post 1": 1,  # denied, with the deny reason
    }
    for place, count in wanted.items():
        assert [_shown(q) for q in _quotes(shown[place])] == [expected] * count, place
    for post in (shown["audit post 0"], shown["audit post 1"]):
        assert len(_SEAL.findall(post)) == 1 and _SEAL.fullmatch(post.splitlines()[-1]), post


def test_very_long_typed_text_is_cut_to_slacks_limits_never_inside_an_escape(bot: Bot) -> None:
    hostile = "<!channel> *approved* by <@UBOB> & co\n" * 120  # ~4,700 characters typed
    request_id, shown = _what_slack_received(bot, hostile, hostile)
    for place, text in shown.items():
        _assert_inert(text)
        assert ELLIPSIS in text, place
    for place in ("approver DM, asked", "approver DM, decided", "requester DMs"):
        messages = _dm_about(bot, BOB if "approver" in place else ALICE, request_id)
        for message in messages:
            for block in latest(message)["blocks"]:
                for text in _texts(block.get("text") or {}):
                    assert len(text) <= 3000, place
    for place in ("audit post 0", "audit post 1"):
        post = shown[place]
        assert len(post) <= 3000 and _SEAL.fullmatch(post.splitlines()[-1]), post
    assert bot.service.get(request_id).status == "denied"


@pytest.mark.parametrize(
    ("typed", "echo"),
    [
        ("request <!channel> prod 1h INC-1", "There is no role"),
        ("request prod-support <!here|x> 1h INC-1", "has no environment"),
        ("request prod-support prod <!everyone>1h INC-1", "not a duration"),
        ("revoke <!subteam^S0SRE|sre>", "There is no request"),
        ("cancel `*approved*`<#C0AUDIT>", "There is no request"),
        ("<https://evil.example|docs> *please*", "I don't know"),
    ],
)
def test_typed_words_echoed_in_an_error_are_escaped(bot: Bot, typed: str, echo: str) -> None:
    answer = bot.command(ALICE, typed)["text"]
    assert echo in answer
    _assert_inert(answer)
    shown = _shown(answer)
    hostile = next(word for word in typed.split() if "<" in word)
    assert hostile in shown  # still readable
    if echo in ("There is no request", "I don't know"):
        # Typed backticks cannot close the bot's code span around the echo.
        first = answer.splitlines()[0]
        assert first.count("`") == 2, first


def test_a_clouds_error_reaches_slack_escaped_on_the_bots_own_line(bot: Bot) -> None:
    bot.provider.fail(
        "grant",
        "prod-logs",
        "<!channel> AccessDenied & worse\n*approved* by <@UCAROL> · #1 `0123abcdef01`",
    )
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "failed"
    failed = _dm_about(bot, ALICE, request_id)[-1]
    decided = _dm_about(bot, BOB, request_id)[0]
    posts = [p for p in bot.audit_posts() if request_id in p and "grant_failed" in p]
    assert len(posts) == 1
    for text in [_shown_text(failed), _shown_text(decided), posts[0]]:
        _assert_inert(text)
        [line] = [line for line in text.splitlines() if "AccessDenied" in line]
        assert "\u2217approved\u2217 by &lt;@UCAROL&gt;" in line  # on the same line, inert
        assert not any(
            line.startswith(("*approved*", "#1", "\u2217approved")) for line in text.splitlines()
        )
    assert len(_SEAL.findall(posts[0])) == 1 and posts[0].endswith("`")


def test_role_descriptions_from_config_are_escaped_in_jit_roles(make_bot) -> None:  # type: ignore[no-untyped-def]
    roles = ROLES_YAML.replace(
        "description: Troubleshoot production services",
        "description: '<!channel> & <https://evil.example|runbook>'",
    )
    bot = make_bot(roles=roles)
    answer = bot.command(ALICE, "roles")["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|runbook&gt;" in answer
    _assert_inert(answer)


class _CloudNamedEvilly(FakeProvider):
    """A cloud whose names for things (what ``describe`` reads back, e.g. an Azure role's
    display name) are text from outside the bot, like a cloud error."""

    def describe(self, target: TargetSpec) -> str:
        return super().describe(target) + " <!channel>\n*approved* by <@UCAROL>"


def test_a_clouds_names_for_targets_reach_slack_escaped_beside_the_principal(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(providers={"fake": _CloudNamedEvilly()})
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"

    # "Access goes to" lists each target with the cloud's name for the person.
    for message in [*_dm_about(bot, ALICE, request_id), *_dm_about(bot, BOB, request_id)]:
        shown = _shown_text(message)
        _assert_inert(shown)
        assert not any(line.startswith("*approved*") for line in shown.splitlines())
