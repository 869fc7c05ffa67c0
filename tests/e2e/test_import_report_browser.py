"""report.html of ``jit-bot import aws`` in a real headless browser (Debian's chromium):
the chaotic estate imported from moto's server by the CLI, then the page opened from disk.
Its charts draw, it fetches nothing, and names planted in the estate to break out of
their text (an account, a person) stay text. With JIT_UPDATE_DOCS_IMAGES=1 it leaves the
README's picture at docs/images/import-report.png; otherwise its screenshot goes to the
test's own directory, so a test run never rewrites a tracked file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.aws import MotoAws
from tests.fakes.aws_estate import ChaoticEstate, seed_chaos
from tests.fakes.processes import run_cli
from tests.kit.browser import headless_chromium, screenshot_path

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

ACCOUNT = "</svg><script>window.pwned = 1</script>"
PERSON = '"><img src=x onerror="window.pwned = 1">@example.com'


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with headless_chromium("1280,1280", logs=True) as driver:
        yield driver


def _import(moto: MotoAws, out: Path) -> tuple[Path, str]:
    done = run_cli(["import", "aws", "--output", str(out)], moto.environ())
    assert done.returncode == 0, done.stderr
    return out / "report.html", done.stdout.strip()


def _plant_hostile_names(moto: MotoAws, chaos: ChaoticEstate) -> None:
    """An account in the dev OU and a person whose names are markup, the person holding
    s3-read-logs there: both reach the page (the environments table, the matrix, the
    exceptions). AWS allows either name."""
    org, sso = moto.client("organizations"), moto.client("identitystore")
    root = org.list_roots()["Roots"][0]["Id"]
    dev = next(
        ou["Id"]
        for ou in org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]
        if ou["Name"] == "dev"
    )
    account = org.create_account(Email="odd@aws.example.com", AccountName=ACCOUNT)
    account_id = account["CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=dev)
    user = sso.create_user(
        IdentityStoreId=chaos.store_id,
        UserName="odd",
        DisplayName="odd",
        Name={"GivenName": "odd", "FamilyName": "Test"},
        Emails=[{"Value": PERSON, "Type": "work", "Primary": True}],
    )["UserId"]
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=chaos.instance_arn,
        TargetId=account_id,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=chaos.permission_sets["s3-read-logs"],
        PrincipalType="USER",
        PrincipalId=user,
    )


def _requests(driver: WebDriver) -> list[str]:
    """The URL of every request the page asked the network for."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            found.append(message["params"]["request"]["url"])
    return found


def _assert_fetches_nothing(driver: WebDriver, page: Path) -> None:
    assert set(_requests(driver)) == {page.as_uri()}
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    # nothing tried and stopped by the page's CSP, nothing failed to load
    assert [e["message"] for e in driver.get_log("browser")] == []


def test_the_report_draws_its_charts_and_fetches_nothing(
    moto: MotoAws, browser: WebDriver, tmp_path: Path
) -> None:
    seed_chaos(moto)
    page, headline = _import(moto, tmp_path / "out")

    browser.get(page.as_uri())

    assert browser.find_element(By.ID, "headline").text == headline
    assert headline.startswith("8 permission sets × 6 accounts (11 assignments, 5 people)")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg")
    assert len(charts) == 6
    for chart in charts:
        assert chart.size["width"] > 100 and chart.size["height"] > 20, chart.text
    cells = browser.find_elements(By.CSS_SELECTOR, "#matrix svg rect[fill-opacity]")
    assert len(cells) >= 8 and all(c.size["width"] > 0 for c in cells)
    assert "bob@example.com ×2" in browser.find_element(By.ID, "matrix").text
    _assert_fetches_nothing(browser, page)
    assert browser.save_screenshot(str(screenshot_path("import-report.png", tmp_path)))


def test_names_planted_in_the_estate_show_as_text(
    moto: MotoAws, browser: WebDriver, tmp_path: Path
) -> None:
    _plant_hostile_names(moto, seed_chaos(moto))
    page, _ = _import(moto, tmp_path / "out")

    browser.get(page.as_uri())

    text = browser.find_element(By.TAG_NAME, "main").text
    assert f"{ACCOUNT} (" in text  # under its environment
    assert PERSON in text  # as the one person holding s3-read-logs on that account
    assert browser.find_elements(By.CSS_SELECTOR, "script, img, b") == []
    assert browser.execute_script("return window.pwned") is None
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg")) == 6
    _assert_fetches_nothing(browser, page)
