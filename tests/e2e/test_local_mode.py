"""Local mode over real HTTP: ``jit-bot serve`` with no Slack app, driven through the
page's routes as the page drives them, with the real bot answering on /slack/events and
the bundled example's webhook receiver checking every signed call."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any

import pytest

from bot.local.web import LONG_POLL_SECONDS
from tests.fakes.processes import BotProcess, Launcher, free_port, get
from tests.kit.local import ADA, GRACE, LINUS, SAM, LocalPage, dm, empty_env, wait_for_url

AUDIT = "C0JITAUDIT"
REQUEST_ID = re.compile(r"R-[0-9A-Z]{8}")


def _page(local_mode: tuple[LocalPage, BotProcess]) -> LocalPage:
    return local_mode[0]


def _open_request_modal(page: LocalPage, user: str) -> dict[str, Any]:
    assert page.command(user, "/jit request").status == 200
    return page.wait(
        user,
        lambda s: s["modal"] if s["modal"] and s["modal"]["submit"] else None,
        "the request form",
    )


def _values(role: str, env: str, duration: str, reason: str) -> dict[str, Any]:
    return {
        "role": {"role": role},
        "environment": {"environment": env},
        "duration": {"duration": duration},
        "reason": {"reason": reason},
    }


def _request(page: LocalPage, user: str, duration: str, reason: str) -> tuple[str, dict[str, Any]]:
    """Request grafana-admin in prod through the modal; the request id and the approver's
    DM card about it."""
    before = set(REQUEST_ID.findall(json.dumps(page.messages(page.state(user), dm(user)))))
    modal = _open_request_modal(page, user)
    answer = page.post(
        "submit",
        user,
        view_id=modal["id"],
        values=_values("grafana-admin", "prod", duration, reason),
    )
    assert answer.status == 200 and answer.json == {"ok": True, "errors": {}}, answer

    def new_request(state: dict[str, Any]) -> set[str]:
        texts = [m["text"] for m in page.messages(state, dm(user)) if "was sent to" in m["text"]]
        return set(REQUEST_ID.findall(" ".join(texts))) - before

    [request_id] = page.wait(user, new_request, "the requester's DM")

    def card(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            m
            for m in page.messages(state, dm(GRACE))
            if m["blocks"] and m["blocks"][0]["type"] == "header" and request_id in m["text"]
        ]

    return request_id, page.wait(GRACE, card, "the approver's card")[-1]


def _buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: {**element, "block_id": block.get("block_id", "")}
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


def _click(page: LocalPage, user: str, message: dict[str, Any], action_id: str) -> None:
    button = _buttons(message)[action_id]
    answer = page.post(
        "click",
        user,
        channel=dm(user),
        ts=message["ts"],
        action={"action_id": action_id, "value": button["value"], "block_id": button["block_id"]},
    )
    assert answer.status == 200, answer


def _received(page: LocalPage, event: str, request_id: str) -> dict[str, Any]:
    calls = page.wait(
        ADA,
        lambda s: [
            c
            for c in s["receiver"]
            if c["event"] == event and c["payload"]["request_id"] == request_id
        ],
        f"a {event} at the receiver",
    )
    return dict(calls[0])


# ---------------------------------------------------------------------------- the page


def test_page_says_local_mode_and_runs_no_inline_script(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    answer = page.request("/")
    html = answer.body.decode()

    assert answer.status == 200
    assert "local mode" in html
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), scripts
    for name in ("app.js", "blocks.js", "style.css"):
        assert page.request(f"/static/{name}").status == 200, name
    assert page.request("/static/../../bot/settings.py").status == 404
    assert page.request("/static/settings.py").status == 404


def test_state_lists_the_bundled_people_their_conversations_and_the_config(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    state = _page(local_mode).state(ADA)

    assert state["mode"] == "local"
    assert [p["id"] for p in state["people"]] == [ADA, GRACE, LINUS, SAM]
    assert state["names"][GRACE] == "Grace Hopper"
    assert [c["id"] for c in state["conversations"]] == [dm(ADA), AUDIT]
    assert "examples/local" in state["about"]["config"]
    # Its own file, fresh in the run's own directory: never the working directory's.
    assert state["about"]["database"].endswith("/jit-bot-local.db")
    assert state["about"]["database"] != "sqlite:///jit-bot-local.db"


def test_a_change_ends_a_long_poll(local_mode: tuple[LocalPage, BotProcess]) -> None:
    page = _page(local_mode)
    version = page.state(LINUS)["version"]
    answers: list[dict[str, Any]] = []
    poll = threading.Thread(target=lambda: answers.append(page.state(LINUS, since=version)))
    poll.start()
    poll.join(timeout=1)
    assert poll.is_alive() and not answers  # nothing changed: the poll waits

    asked = time.monotonic()
    assert page.command(LINUS, "/jit help").status == 200
    poll.join(timeout=20)

    assert answers and answers[0]["version"] > version
    # Ended by the change, not by the poll's 15 s running out.
    assert time.monotonic() - asked < LONG_POLL_SECONDS - 5


def test_waiting_pages_cannot_starve_the_bot_of_threads(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    version = page.state(SAM)["version"]
    answers: list[int] = []
    answered = threading.Condition()

    def poll() -> None:
        status = page.request(f"/local/api/state?as={SAM}&since={version}").status
        with answered:
            answers.append(status)
            answered.notify_all()

    polls = [threading.Thread(target=poll) for _ in range(5)]
    for thread in polls:
        thread.start()
    # Four pages may wait for a change; the fifth is told at once to ask again.
    with answered:
        assert answered.wait_for(lambda: 429 in answers, timeout=10), answers
    assert page.command(SAM, "/jit help").status == 200  # the bot still gets its events
    for thread in polls:
        thread.join(timeout=20)
    assert sorted(answers) == [200, 200, 200, 200, 429]


# ---------------------------------------------------------------------------- the flow


def test_request_approve_and_end_access_reach_the_receiver_signed_and_the_audit_channel(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    request_id, card = _request(page, ADA, "2m", "INC-7 <script>alert(1)</script>")

    # The approver's card, as the page receives it: header, fields naming the requester,
    # Approve (primary) and Deny (danger), and the reason escaped by the bot.
    kinds = [b["type"] for b in card["blocks"]]
    assert kinds[0] == "header" and request_id in card["blocks"][0]["text"]["text"]
    fields = [
        f["text"] for b in card["blocks"] if b["type"] == "section" for f in b.get("fields", [])
    ]
    assert any(f"<@{ADA}>" in f for f in fields), fields
    buttons = _buttons(card)
    assert buttons["approve"]["style"] == "primary" and buttons["deny"]["style"] == "danger"
    shown = json.dumps(card["blocks"])
    assert "&lt;script&gt;" in shown and "<script>" not in shown

    _click(page, GRACE, card, "approve")
    grant = _received(page, "grant", request_id)
    assert grant["verified"] and grant["status"] == 200
    assert grant["signature"].startswith("v2=")
    assert grant["payload"]["principal"]["email"] == "ada@example.com"
    assert grant["payload"]["target"]["name"] == "grafana-admin-prod"
    assert grant["payload"]["reason"] == "INC-7 <script>alert(1)</script>"

    granted = page.wait(
        ADA,
        lambda s: [m for m in page.messages(s, dm(ADA)) if "end_access" in _buttons(m)],
        "End access now",
    )
    _click(page, ADA, granted[-1], "end_access")
    revoke = _received(page, "revoke", request_id)
    assert revoke["verified"]

    audit = page.wait(
        ADA,
        lambda s: [
            m["text"]
            for m in page.messages(s, AUDIT)
            if request_id in m["text"] and "*revoked*" in m["text"]
        ],
        "the audit channel's revoked line",
    )
    assert audit


def test_a_refused_submission_shows_its_error_under_the_field_and_keeps_the_modal(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    modal = _open_request_modal(page, LINUS)

    answer = page.post(
        "submit",
        LINUS,
        view_id=modal["id"],
        values=_values("grafana-admin", "prod", "9h", "too long"),
    )

    assert answer.status == 200 and "4h" in answer.json["errors"]["duration"], answer
    state = page.state(LINUS)
    assert state["modal"]["id"] == modal["id"]
    assert "4h" in state["modal"]["errors"]["duration"]
    assert page.post("close", LINUS, view_id=modal["id"]).status == 200
    assert page.state(LINUS)["modal"] is None


def test_deny_opens_the_reason_modal_and_the_requester_reads_the_reason_escaped(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    request_id, card = _request(page, ADA, "5m", "look at the dashboards")

    _click(page, GRACE, card, "deny")
    modal = page.wait(
        GRACE,
        lambda s: s["modal"] if s["modal"] and s["modal"]["submit"] else None,
        "the deny form",
    )
    answer = page.post(
        "submit", GRACE, view_id=modal["id"], values={"reason": {"reason": "<b>not</b> today"}}
    )
    assert answer.status == 200 and answer.json["ok"], answer

    denied = page.wait(
        ADA,
        lambda s: [
            m
            for m in page.messages(s, dm(ADA))
            if request_id in m["text"]
            and "not" in json.dumps(m)
            and "denied" in json.dumps(m).lower()
        ],
        "the denial",
    )
    shown = json.dumps(denied[-1])
    assert "&lt;b&gt;not&lt;/b&gt; today" in shown and "<b>" not in shown


def test_someone_who_may_request_nothing_is_told_so_in_the_modal(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    assert page.command(SAM, "/jit request").status == 200  # Sam is not in @engineering

    def notice(state: dict[str, Any]) -> dict[str, Any] | None:
        modal = state["modal"]
        return modal if modal and "no role you may request" in json.dumps(modal) else None

    modal = page.wait(SAM, notice, "the notice")
    assert modal["submit"] is None
    assert page.post("close", SAM, view_id=modal["id"]).status == 200


def test_the_selected_role_re_renders_the_form_with_its_environments(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    modal = _open_request_modal(page, LINUS)
    answer = page.post(
        "choose",
        LINUS,
        view_id=modal["id"],
        values=_values("db-admin", "prod", "5m", ""),
        action={"action_id": "role", "block_id": "role", "value": "db-admin"},
    )
    assert answer.status == 200, answer

    def environments(state: dict[str, Any]) -> list[str] | None:
        view = state["modal"]
        block = next((b for b in view["blocks"] if b.get("block_id") == "environment"), None)
        options = [o["value"] for o in block["element"]["options"]] if block else []
        return options if options == ["prod"] else None

    assert page.wait(LINUS, environments, "db-admin's environments") == ["prod"]
    page.post("close", LINUS, view_id=modal["id"])


# ---------------------------------------------------------------------------- the edges


def test_the_api_takes_json_from_this_host_as_a_member_only(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    body = json.dumps({"as": ADA, "text": "/jit help", "channel": dm(ADA)}).encode()
    json_type = {"Content-Type": "application/json"}

    as_form = page.request("/local/api/command", body, {"Content-Type": "text/plain"}, "POST")
    other_host = page.request(
        "/local/api/command", body, {**json_type, "Host": "evil.example"}, "POST"
    )
    stranger = page.post("command", "UNOBODY", text="/jit help", channel=dm(ADA))
    not_jit = page.post("command", ADA, text="hello", channel=dm(ADA))

    assert as_form.status == 415
    assert other_host.status == 403
    assert stranger.status == 400 and "no such person" in stranger.json["error"]
    assert not_jit.status == 400 and "/jit" in not_jit.json["error"]


def test_what_no_page_would_send_gets_a_clear_answer_never_a_5xx(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    json_type = {"Content-Type": "application/json"}
    deep = b"[" * 30000 + b"]" * 30000  # nests past Python's recursion limit
    superscript_since = page.request(f"/local/api/state?as={ADA}&since=%C2%B2")
    nested = page.request("/local/api/command", deep, json_type, "POST")
    not_a_button = page.post(
        "click", ADA, channel=dm(ADA), ts="1.0", action={"action_id": "approve"}
    )

    assert superscript_since.status == 200 and superscript_since.json["me"] == ADA
    assert nested.status == 400 and "malformed" in nested.json["error"]
    assert not_a_button.status == 400


def test_nobody_clicks_or_types_in_someone_elses_dm(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    _, card = _request(page, ADA, "5m", "dm check")

    answer = page.post(
        "click",
        ADA,
        channel=dm(GRACE),
        ts=card["ts"],
        action={"action_id": "approve", "value": "x", "block_id": "decision"},
    )

    assert answer.status == 400 and "someone else" in answer.json["error"]
    typed_elsewhere = page.command(ADA, "/jit list", channel=dm(GRACE))
    assert typed_elsewhere.status == 400 and "someone else" in typed_elsewhere.json["error"]


def test_slack_events_still_take_only_signed_requests(
    local_mode: tuple[LocalPage, BotProcess],
) -> None:
    page = _page(local_mode)
    forged = page.request(
        "/slack/events",
        b"command=/jit&text=help&user_id=U0ADA",
        {"Content-Type": "application/x-www-form-urlencoded"},
        "POST",
    )
    assert forged.status == 401
    assert page.request("/healthz").json == {"status": "ok"}


# ---------------------------------------------------------------------------- start-up


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_serve_with_an_empty_environment_serves_the_page_on_loopback_only(
    launcher: Launcher,
) -> None:
    port = free_port()
    process = launcher.start(["serve"], empty_env(PORT=str(port)), name="empty")

    url = wait_for_url(process)

    assert url == f"http://127.0.0.1:{port}/"
    lines = [line for line in process.stdout.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and "SLACK_BOT_TOKEN" in lines[0], lines
    status, body = get(url)
    assert status == 200 and b"local mode" in body
    assert not (launcher.tmp_path / "jit-bot-local.db").exists()  # a fresh one per run
    outside = _outside_address()
    if outside is not None:
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=2).close()


@pytest.mark.parametrize(
    ("given", "missing"),
    [("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"), ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN")],
)
def test_serve_with_only_one_token_exits_2_naming_the_other(
    launcher: Launcher, given: str, missing: str
) -> None:
    env = empty_env(PORT=str(free_port()), **{given: "set"})
    process = launcher.start(["serve"], env, name="one-token")

    assert process.wait_exit() == 2, process.output()
    first_line = process.stderr.read_text().strip().splitlines()[0]
    named = first_line.split("missing environment variable(s):", 1)[1].split(".", 1)[0]
    assert named.strip() == missing, first_line
    assert not process.stdout.read_text().strip()


def test_a_config_of_ones_own_grants_nothing_anywhere_but_at_the_receiver(
    launcher: Launcher,
) -> None:
    """A config meant for a real deployment (an AWS permission set, a webhook elsewhere)
    tried in local mode: its people come from it, and what it grants reaches the embedded
    receiver, named after the target, with the shell's own keys and credentials unused."""
    (launcher.tmp_path / "roles.yaml").write_text(
        "roles:\n  tooling:\n    max_duration: 1h\n    requesters: ['@devs']\n"
        "    environments:\n      dev:\n        - provider: webhook\n"
        "          name: tools\n          url: https://hooks.corp.test/jit\n"
        "          secret_env: TOOLS_KEY\n"
        "        - provider: aws\n          permission_set: ProdSupport\n"
        "          accounts: ['111111111111']\n"
    )
    (launcher.tmp_path / "approvers.yaml").write_text(
        "groups:\n  leads: [U0BOSS, chief@corp.test]\nrules:\n  - approvers: [leads]\n"
        "settings:\n  allowed_email_domains: [corp.test]\n"
    )
    env = empty_env(
        PORT=str(free_port()),
        JIT_ROLES_FILE="roles.yaml",
        JIT_APPROVERS_FILE="approvers.yaml",
        TOOLS_KEY="the-real-key",
        AWS_ACCESS_KEY_ID="AKIAREALKEY",
        AWS_SECRET_ACCESS_KEY="real-secret",
    )
    process = launcher.start(["serve"], env, name="own")
    page = LocalPage(wait_for_url(process))

    state = page.state("U0BOSS")

    emails = {p["real_name"]: p["id"] for p in state["people"]}
    assert "U0BOSS" in emails.values() and "chief" in emails and "a member of @devs" in emails
    assert str(launcher.tmp_path / "roles.yaml") in state["about"]["config"]
    requester = state["people"][0]["id"]
    modal = _open_request_modal(page, requester)
    answer = page.post(
        "submit", requester, view_id=modal["id"], values=_values("tooling", "dev", "30m", "try")
    )
    assert answer.status == 200 and answer.json == {"ok": True, "errors": {}}, answer
    card = page.wait(
        "U0BOSS",
        lambda s: [m for m in page.messages(s, dm("U0BOSS")) if "approve" in _buttons(m)],
        "the approver's card",
    )[-1]
    [request_id] = set(REQUEST_ID.findall(card["text"]))
    _click(page, "U0BOSS", card, "approve")

    grants = page.wait(
        "U0BOSS",
        lambda s: (
            [
                c
                for c in s["receiver"]
                if c["event"] == "grant" and c["payload"]["request_id"] == request_id
            ]
            if len([c for c in s["receiver"] if c["event"] == "grant"]) >= 2
            else None
        ),
        "both grants at the receiver",
    )
    names = sorted(c["payload"]["target"]["name"] for c in grants)
    assert names[0].startswith("aws (") and "ProdSupport" in names[0], names
    assert names[1].startswith("webhook (") and "hooks.corp.test" in names[1], names
    assert all(c["verified"] for c in grants)  # signed with the run's key, not TOOLS_KEY


def test_serve_with_a_config_of_ones_own_named_takes_its_people_from_it(
    launcher: Launcher,
) -> None:
    (launcher.tmp_path / "roles.yaml").write_text(
        "roles:\n  tooling:\n    max_duration: 1h\n    requesters: ['@devs']\n"
        "    environments:\n      dev:\n        - provider: webhook\n"
        "          name: tools\n          url: http://127.0.0.1:9/jit\n"
        "          secret_env: TOOLS_KEY\n          allow_insecure: true\n"
    )
    (launcher.tmp_path / "approvers.yaml").write_text(
        "groups:\n  leads: [U0BOSS, chief@corp.test]\nrules:\n  - approvers: [leads]\n"
        "settings:\n  allowed_email_domains: [corp.test]\n"
    )
    env = empty_env(
        PORT=str(free_port()), JIT_ROLES_FILE="roles.yaml", JIT_APPROVERS_FILE="approvers.yaml"
    )
    process = launcher.start(["serve"], env, name="own")
    page = LocalPage(wait_for_url(process))

    state = page.state("U0BOSS")

    emails = {p["real_name"]: p["id"] for p in state["people"]}
    assert "U0BOSS" in emails.values() and "chief" in emails and "a member of @devs" in emails
    assert str(launcher.tmp_path / "roles.yaml") in state["about"]["config"]
    requester = state["people"][0]["id"]
    assert page.command(requester, "/jit roles").status == 200
    page.wait(
        requester,
        lambda s: any("tooling" in m["text"] for m in page.messages(s, dm(requester))),
        "the roles answer",
    )
