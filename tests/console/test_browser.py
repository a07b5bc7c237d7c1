"""The console in a real headless Chromium (Selenium): the whole journey of a referral through the
screens of a case manager, a partner's coordinator and a counselor; what a browser must refuse
(another partner's record, a form without its CSRF token, a session signed out or left idle); and the
screenshots of the main pages at phone and desktop width that the README shows (docs/screenshots/),
with each page's weight as the browser received it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from console.i18n import NAIROBI
from domain.enums import Role
from tests.console.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.factories import Factory, User
from tests.flows import network, referred_case
from tests.oauth.test_staff_login import HASH, PASSWORD

PAGE_BUDGET_BYTES = 20_000  # one page's HTML and stylesheet as transferred, before any compression


@dataclass
class Screen:
    driver: webdriver.Chrome
    base: str

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base)

    @property
    def heading(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def body(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def fill(self, name: str, value: str) -> None:
        field = self.driver.find_element(By.CSS_SELECTOR, f"main [name='{name}']")
        if field.get_attribute("type") in ("datetime-local", "date"):
            self.driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.clear()
            field.send_keys(value)

    def choose(self, name: str, label: str) -> None:
        Select(self.driver.find_element(By.CSS_SELECTOR, f"main [name='{name}']")).select_by_visible_text(label)

    def tick(self, name: str, *values: str) -> None:
        for box in self.driver.find_elements(By.CSS_SELECTOR, f"main [name='{name}']"):
            if not values or box.get_attribute("value") in values:
                if not box.is_selected():
                    box.click()

    def press(self, by: str, value: str) -> None:
        """Click, and wait for the next page to replace this one and finish loading."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(by, value).click()
        WebDriverWait(self.driver, 15).until(lambda driver: replaced(page))
        WebDriverWait(self.driver, 15).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete")

    def choose_header_language(self, label: str) -> None:
        Select(self.driver.find_element(By.ID, "language")).select_by_visible_text(label)
        self.press(By.CSS_SELECTOR, "form[action='/app/language'] button")

    def save(self) -> None:
        self.press(By.ID, "submit")

    def click(self, text: str) -> None:
        self.press(By.LINK_TEXT, text)

    def sign_in(self, user: User) -> None:
        self.go("/app/sign-in")
        self.press(By.ID, "sign-in")
        self.driver.find_element(By.NAME, "email").send_keys(user.email)
        self.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.press(By.CSS_SELECTOR, "form button[type=submit]")
        assert self.path == "/app", self.body()

    def sign_out(self) -> None:
        self.press(By.ID, "sign-out")
        assert self.path.startswith("/app/sign-in"), self.path

    def weight(self) -> int:
        """The page's HTML and its stylesheet as this browser fetched them (bytes before decoding)."""
        sizes = self.driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return [n.encodedBodySize].concat(performance.getEntriesByType('resource').map(r => r.encodedBodySize));")
        return int(sum(sizes))

    def shoot(self, name: str) -> int:
        """Screenshots at phone and desktop width, whole page; returns the page's weight."""
        weight = self.weight()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in (("phone", PHONE), ("desktop", DESKTOP)):
            self.driver.set_window_size(width, height)
            full = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(width, min(max(height, int(full) + 120), 4000))
            self.driver.execute_script("window.scrollTo(0, 0)")
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
        self.driver.set_window_size(*PHONE)
        WEIGHTS[name] = weight
        return weight


WEIGHTS: dict[str, int] = {}


def replaced(page: WebElement) -> bool:
    """The element's document is gone. Mid-navigation ChromeDriver may answer "node does not belong to
    the document" rather than a stale reference: that, too, means the page was replaced."""
    try:
        page.is_enabled()
    except WebDriverException:  # StaleElementReferenceException included
        return True
    return False


@pytest.fixture
def screen(browser: webdriver.Chrome, live_url: str) -> Iterator[Screen]:
    yield Screen(browser, live_url)


@dataclass
class People:
    manager: User
    coordinator: User
    counselor: User
    partner_name: str


async def people(factory: Factory) -> People:
    ngo = await factory.ngo()
    # Samburu: no other test's partner serves it, so this one ranks first among the matches.
    partner = await factory.org(counties=("025",), services=("PSYCHOSOCIAL_COUNSELING", "SHELTER"))
    return People(manager=await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH),
                  coordinator=await factory.user(partner, Role.PARTNER_COORDINATOR, password_hash=HASH),
                  counselor=await factory.user(partner, Role.COUNSELOR, password_hash=HASH, name="Grace Achieng"),
                  partner_name=partner.name)


def referral_path(screen: Screen) -> str:
    found = re.match(r"^(/app/referrals/[A-Za-z0-9_-]+)", screen.path)
    assert found, screen.path
    return found.group(1)


async def test_a_referral_travels_through_the_screens(screen: Screen, factory: Factory,
                                                       owner_engine: AsyncEngine) -> None:
    cast = await people(factory)
    pseudonym = f"Nyota-{datetime.now(UTC):%H%M%S%f}"

    # The case manager registers a survivor, records consent and refers her.
    screen.go("/app")
    assert screen.path == "/app/sign-in"
    screen.shoot("sign-in")
    screen.sign_in(cast.manager)
    screen.shoot("home-case-manager")
    screen.click("Register a survivor")
    screen.fill("pseudonym", pseudonym)
    screen.fill("legalName", "Amina Wanjiru Test")
    screen.fill("birthYear", "2011")
    screen.choose("sex", "Female")
    screen.fill("county", "Samburu")
    screen.fill("languages", "sw, nyf")
    screen.choose("riskLevel", "High")
    screen.save()
    assert screen.heading == pseudonym, screen.body()
    screen.press(By.CSS_SELECTOR, "form[action$='/partners'] button")
    assert cast.partner_name in screen.body(), screen.body()
    screen.click(f"Record consent for {cast.partner_name}")
    screen.tick("purposes")
    screen.tick("dataCategories")
    screen.choose("givenBy", "Guardian")
    screen.tick("childAssent")
    screen.fill("formVersion", "IJM-CONSENT-2024-1")
    screen.fill("language", "sw")
    screen.shoot("consent-form")
    screen.save()
    assert "Saved." in screen.body() and "Active" in screen.body(), screen.body()
    survivor_page = screen.path.split("?")[0]
    screen.shoot("survivor")
    screen.press(By.CSS_SELECTOR, "form[action$='/partners'] button")
    screen.shoot("partner-matches")
    screen.click(f"Refer to {cast.partner_name}")
    screen.choose("priority", "Urgent")
    screen.fill("reason", "Needs trauma-informed counseling near home.")
    screen.save()
    referral = referral_path(screen)
    assert "Requested" in screen.body(), screen.body()
    screen.sign_out()

    # The partner's coordinator accepts it from the intake queue and assigns a counselor by name.
    screen.sign_in(cast.coordinator)
    screen.click("Intake")
    assert pseudonym in screen.body()
    screen.shoot("intake")
    screen.go(referral)
    screen.click("Accept the referral")
    screen.save()
    assert "Accepted" in screen.body(), screen.body()
    screen.click("Assign a counselor")
    screen.choose("counselorId", "Grace Achieng (0)")
    screen.save()
    assert "Grace Achieng" in screen.body(), screen.body()
    screen.sign_out()

    # The counselor logs a session, sets a goal, records a milestone and an assessment.
    screen.sign_in(cast.counselor)
    screen.click("My caseload")
    assert pseudonym in screen.body()
    screen.shoot("caseload")
    screen.go(referral)
    screen.click("Log a session")
    screen.fill("startedAt", (datetime.now(NAIROBI) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    screen.fill("durationMinutes", "50")
    screen.choose("modality", "Individual")
    screen.choose("sessionType", "Intake")
    screen.choose("attendance", "Attended")
    screen.fill("notes", "Settled; spoke about school.")
    screen.choose("safeguardingConcern.level", "Low")
    screen.shoot("log-session")
    screen.save()
    assert "50 min" in screen.body(), screen.body()
    screen.click("Set a care goal")
    screen.choose("domain", "Mental wellbeing")
    screen.fill("description", "Sleeps through most nights")
    screen.save()
    assert "Sleeps through most nights" in screen.body()
    screen.click("Record a milestone")
    screen.fill("title", "Returned to school")
    screen.fill("achievedOn", datetime.now(UTC).strftime("%Y-%m-%d"))
    screen.save()
    assert "Returned to school" in screen.body()
    screen.press(By.CSS_SELECTOR, "form[action='/app/act/recordAssessment'] button")
    screen.fill("administeredOn", datetime.now(UTC).strftime("%Y-%m-%d"))
    for box in screen.driver.find_elements(By.CSS_SELECTOR, "input[name^='score.']"):
        box.send_keys("3")
    screen.shoot("assessment-form")
    screen.save()
    assert "Restoration" in screen.body() or "Assessments" in screen.body()
    screen.shoot("referral-counselor")
    screen.sign_out()

    # The case manager sees the feedback the consent allows, the concern, and withdraws consent.
    screen.sign_in(cast.manager)
    screen.go(referral)
    assert "50 min" in screen.body() and "Safeguarding concerns" in screen.body(), screen.body()
    screen.shoot("referral-case-manager")
    screen.go("/app")
    screen.click("Safeguarding concerns")
    assert pseudonym in screen.body() and "Safeguarding concern: Low" in screen.body(), screen.body()
    screen.go(survivor_page)
    screen.click("Withdraw consent")
    screen.fill("reason", "The family asked to stop sharing.")
    screen.save()
    assert "Withdrawn" in screen.body(), screen.body()
    screen.sign_out()

    # The counselor's page is emptied: the referral is no longer hers to see.
    screen.sign_in(cast.counselor)
    screen.click("My caseload")
    assert pseudonym not in screen.body()
    screen.go(referral)
    assert screen.heading == "Not found"

    # In Kiswahili, remembered for her session.
    screen.go("/app")
    screen.choose_header_language("Kiswahili")
    assert screen.heading.startswith("Habari") and "Kesi zangu" in screen.body(), screen.body()
    screen.shoot("home-counselor-kiswahili")

    # The figures the README reports, beside the screenshots they belong to.
    (SCREENSHOTS / "page-weights.json").write_text(json.dumps(dict(sorted(WEIGHTS.items())), indent=2) + "\n")
    over = {name: weight for name, weight in WEIGHTS.items() if weight >= PAGE_BUDGET_BYTES}
    assert not over, over


async def test_what_a_browser_is_refused(screen: Screen, factory: Factory, owner_engine: AsyncEngine) -> None:
    cast = await people(factory)
    stranger = await factory.user(await factory.org(), Role.COUNSELOR, password_hash=HASH)
    theirs = await referred_case(factory, await network(factory), accept=True, assign=True)
    screen.sign_in(cast.manager)
    # A form whose CSRF token was taken out is refused.
    screen.click("Register a survivor")
    screen.driver.execute_script("document.querySelector('main form input[name=csrf]').remove()")
    screen.fill("pseudonym", "Csrf-probe")
    screen.save()
    assert screen.heading == "This form has expired"
    # A referral of a partner the person does not belong to looks like one that does not exist.
    screen.sign_out()
    screen.sign_in(stranger)
    screen.go("/app/referrals/UmVmZXJyYWw6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw")
    missing = screen.body()
    screen.go(f"/app/referrals/{theirs.referral['id']}")
    assert screen.body() == missing and screen.heading == "Not found"
    # Signing out ends the session: the browser's back button shows nothing but the sign-in page.
    screen.sign_out()
    screen.driver.back()
    screen.go("/app/referrals?view=caseload")
    assert screen.path.startswith("/app/sign-in")
    # A session left idle ends.
    screen.sign_in(stranger)
    idle = 0
    for _ in range(50):  # the session row is written as the sign-in completes in the server: wait for it
        async with owner_engine.begin() as connection:
            idle = (await connection.execute(
                text("UPDATE console_session SET last_seen_at = :t WHERE staff_user_id = :u"),
                {"t": datetime.now(UTC) - timedelta(hours=2), "u": stranger.id})).rowcount
        if idle:
            break
        await asyncio.sleep(0.1)
    assert idle == 1
    screen.go("/app")
    assert screen.path == "/app/sign-in?notice=session-ended" and "Your session ended" in screen.body()
