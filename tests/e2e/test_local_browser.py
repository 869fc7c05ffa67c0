"""The local workspace page in a real headless browser (Debian's chromium), against a real
``jit-bot serve`` in local mode: request through the modal, approve as an approver, watch
the grant arrive at the receiver, end access, read the audit channel. With
JIT_UPDATE_DOCS_IMAGES=1 it leaves the README's screenshot at
docs/images/local-workspace.png (tests/kit/browser.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.processes import BotProcess
from tests.kit.browser import headless_chromium, screenshot_path
from tests.kit.local import ADA, GRACE, LocalPage

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT = 30
REASON = "INC-7 <script>window.pwned = 1</script> <b>bold?</b>"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with headless_chromium("1400,900") as driver:
        yield driver


def _open(driver: WebDriver, page: LocalPage) -> None:
    """The local workspace, once it says it is one."""
    driver.get(page.url + "/")
    _wait(driver).until(
        seen.text_to_be_present_in_element((By.CLASS_NAME, "local-mode"), "local mode")
    )


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    # The page redraws a conversation when it changes: an element found a moment ago may
    # be gone, and is looked up again.
    return WebDriverWait(driver, WAIT, ignored_exceptions=[StaleElementReferenceException])


def _be(driver: WebDriver, person: str) -> None:
    Select(driver.find_element(By.ID, "who")).select_by_value(person)
    _wait(driver).until(
        lambda d: d.execute_script("return localStorage.getItem('jit-local-me')") == person
    )


def _show(driver: WebDriver, conversation: str) -> None:
    _wait(driver).until(
        seen.element_to_be_clickable(
            (By.CSS_SELECTOR, f".conversation-link[data-id='{conversation}']")
        )
    ).click()


def _message_with(driver: WebDriver, text: str) -> WebElement:
    """The newest message in the open conversation whose text contains ``text``."""

    def find(d: WebDriver) -> WebElement | bool:
        found = [
            m for m in d.find_elements(By.CSS_SELECTOR, "#messages .message") if text in m.text
        ]
        return found[-1] if found else False

    element: WebElement = _wait(driver).until(find)
    return element


def _check_message(driver: WebDriver, text: str, check: Callable[[WebElement], None]) -> None:
    """Run ``check`` on the newest message containing ``text``, looked up afresh should a
    redraw replace it meanwhile."""

    def checked(d: WebDriver) -> bool:
        check(_message_with(d, text))
        return True

    _wait(driver).until(checked)


def _click_in(driver: WebDriver, text: str, action_id: str) -> None:
    """Click button ``action_id`` of the newest message containing ``text``."""
    css = f"button[data-action-id='{action_id}']"

    def click(d: WebDriver) -> bool:
        _message_with(d, text).find_element(By.CSS_SELECTOR, css).click()
        return True

    _wait(driver).until(click)


def _field(driver: WebDriver, block_id: str) -> WebElement:
    return _wait(driver).until(
        seen.visibility_of_element_located(
            (By.CSS_SELECTOR, f"#modal [data-block-id='{block_id}']")
        )
    )


def _receiver_shows(driver: WebDriver, event: str) -> None:
    """Wait for the receiver panel to list a ``event`` call whose signature checked out."""

    def listed(d: WebDriver) -> bool:
        calls = d.find_elements(By.CSS_SELECTOR, "#receiver-calls .call.verified")
        return any(
            c.find_elements(By.CSS_SELECTOR, f".event-{event}") and "signature verified" in c.text
            for c in calls
        )

    _wait(driver).until(listed)


def _fill(element: WebElement, text: str) -> None:
    element.clear()
    element.send_keys(text)


def test_request_approve_grant_and_end_access_in_the_browser(
    local_mode: tuple[LocalPage, BotProcess], browser: WebDriver, tmp_path: Path
) -> None:
    page, _ = local_mode
    _open(browser, page)

    # Ada asks for access through the modal; too long a duration is refused under the field.
    _be(browser, ADA)
    _show(browser, "D" + ADA[1:])
    _fill(browser.find_element(By.ID, "composer"), "/jit request")
    browser.find_element(By.ID, "send").click()
    _fill(_field(browser, "duration"), "9h")
    _fill(_field(browser, "reason"), REASON)
    browser.find_element(By.CSS_SELECTOR, "#modal .modal-submit").click()
    error = _wait(browser).until(
        seen.visibility_of_element_located((By.CSS_SELECTOR, "#modal .field-error"))
    )
    assert "4h" in error.text
    _fill(_field(browser, "duration"), "2m")
    browser.find_element(By.CSS_SELECTOR, "#modal .modal-submit").click()
    _wait(browser).until(seen.invisibility_of_element_located((By.ID, "modal")))
    _check_message(browser, "was sent to", _names_grace)

    # Grace sees the request card, rendered from the bot's blocks, and approves.
    _be(browser, GRACE)
    _check_message(browser, "Access request", _reads_as_the_request_card)
    assert browser.find_elements(By.CSS_SELECTOR, "#messages script, #messages b") == []
    _click_in(browser, "Access request", "approve")
    _receiver_shows(browser, "grant")
    _wait(browser).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "#messages button[data-action-id='approve']")
    )
    assert browser.save_screenshot(str(screenshot_path("local-workspace.png", tmp_path)))

    # Ada ends her access early; the receiver is told, and so is the audit channel.
    _be(browser, ADA)
    _check_message(browser, "Access granted", _has_a_rendered_date)
    _click_in(browser, "Access granted", "end_access")
    _receiver_shows(browser, "revoke")
    _show(browser, "C0JITAUDIT")
    _check_message(browser, "revoked", lambda line: _has(line, "code"))
    shown = browser.find_element(By.ID, "messages").text
    assert "granted" in shown
    assert "<!date" not in shown and "<@U" not in shown  # dates and mentions rendered


def _names_grace(message: WebElement) -> None:
    assert "@Grace Hopper" in message.text  # <@U…> shown as a name


def _reads_as_the_request_card(card: WebElement) -> None:
    assert card.find_element(By.CSS_SELECTOR, "h3.header").text.startswith("Access request R-")
    assert "@Ada Lovelace" in card.text  # <@U…> shown as a name
    # The reason as text: its tags are shown, none of them became an element.
    assert "<script>window.pwned = 1</script> <b>bold?</b>" in card.text
    assert card.find_elements(By.CSS_SELECTOR, "script, b") == []
    _has(card, "blockquote")  # > quoted
    approve = card.find_element(By.CSS_SELECTOR, "button[data-action-id='approve']")
    deny = card.find_element(By.CSS_SELECTOR, "button[data-action-id='deny']")
    assert "btn-primary" in _classes(approve) and "btn-danger" in _classes(deny)


def _has_a_rendered_date(message: WebElement) -> None:
    _has(message, "time.date")
    assert "<!date" not in message.text


def _has(element: WebElement, css: str) -> None:
    assert element.find_elements(By.CSS_SELECTOR, css), css


def _classes(element: WebElement) -> set[str]:
    value: Any = element.get_attribute("class")
    return set(str(value or "").split())


# What the bot never sends, but a page standing in for Slack must still render safely:
# a block type it does not know, and links whose scheme is not the web's or mail's. Text
# comes as Slack's mrkdwn, escaped as the bot escapes what people type.
UNUSUAL_BLOCKS = [
    {
        "type": "rich_text_preview",
        "text": {"type": "mrkdwn", "text": "falls *back* &lt;b&gt;x&lt;/b&gt;"},
    },
    {"type": "video", "title": {"type": "plain_text", "text": "no text to show"}},
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "<javascript:alert(1)|run me> <data:text/html,hi|data> "
            "<https://example.com/a?b=1&amp;c=2|site> <mailto:sec@example.com|mail>",
        },
    },
]


def test_unknown_blocks_fall_back_to_their_text_and_only_web_links_are_links(
    local_mode: tuple[LocalPage, BotProcess], browser: WebDriver
) -> None:
    page, _ = local_mode
    _open(browser, page)

    rendered = browser.execute_script(
        """
        const node = JitBlocks.render(arguments[0], {names: {}, onAction: () => {}});
        return {
          blocks: node.children.length,
          unknown: [...node.querySelectorAll(".unknown")].map((n) => n.textContent),
          bold: [...node.querySelectorAll("strong")].map((n) => n.textContent),
          raw_tags: node.querySelectorAll("b, script").length,
          links: [...node.querySelectorAll("a")].map((a) => [a.textContent, a.href]),
          text: node.textContent,
        };
        """,
        UNUSUAL_BLOCKS,
    )

    assert rendered["blocks"] == 2  # the block with no text shows nothing
    assert rendered["unknown"] == ["falls back <b>x</b>"]
    assert rendered["bold"] == ["back"] and rendered["raw_tags"] == 0
    assert rendered["links"] == [
        ["site", "https://example.com/a?b=1&c=2"],
        ["mail", "mailto:sec@example.com"],
    ]
    assert "run me" in rendered["text"] and "data" in rendered["text"]  # shown as text
