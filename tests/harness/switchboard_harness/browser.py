"""A person at the approval page, played by headless Chromium (Debian's chromium and chromedriver,
driven by Selenium; nothing is downloaded): signs in (with a dev token, tests/approvals, or at the
authorization server, tests/oidc), reads the page, approves or denies, and keeps a screenshot of
what they saw. Only suites whose venv has Selenium import this module."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def new_browser() -> webdriver.Chrome:
    """A fresh headless Chromium with its own profile (no cookie of another test)."""
    # Selenium must not look for, or fetch, a driver or browser of its own.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


class Approver:
    """One person with one browser. `sign_in` signs them in once the page has sent the browser to
    its sign-in (the browser is then at the sign-in form, or at the authorization server)."""

    def __init__(self, sign_in: Callable[["Approver"], None], shots: Path):
        self.sign_in = sign_in
        self.shots = shots
        self.driver = new_browser()

    def close(self) -> None:
        self.driver.quit()

    def wait(self, condition, timeout: float = 15):
        """Waits until `condition` holds. An element of the page being left (a click navigates)
        can go stale between finding and reading it: that is "not yet", not a failure."""
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(self.driver, timeout, ignored_exceptions=ignored).until(condition)

    def open(self, url: str) -> None:
        """Opens an approval page, signing in first when the page asks for it."""
        self.driver.get(url)
        if self.driver.current_url != url:
            self.sign_in(self)
            self.wait(lambda d: d.current_url == url and d.find_elements(By.ID, "status"))
        assert self.driver.current_url == url, self.driver.current_url

    def text(self, element_id: str) -> str:
        return self.driver.find_element(By.ID, element_id).text

    def has(self, element_id: str) -> bool:
        return bool(self.driver.find_elements(By.ID, element_id))

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def decide(self, url: str, decision: str, reason: str = "", shot: str | None = None) -> str:
        """Opens `url`, decides ("approve" or "deny") with `reason`; returns the status shown after."""
        self.open(url)
        if shot:
            self.screenshot(shot)
        if reason:
            self.driver.find_element(By.ID, "reason-input").send_keys(reason)
        self.driver.find_element(By.ID, decision).click()
        self.wait(lambda d: "Waiting" not in d.find_element(By.ID, "status").text)
        return self.text("status")


def with_dev_token(token: str) -> Callable[[Approver], None]:
    """The `--dev` sign-in: the page's own form takes `token` (`switchboard dev-token`)."""

    def sign_in(person: Approver) -> None:
        box = person.wait(ec.presence_of_element_located((By.ID, "token")))
        box.send_keys(token)
        person.driver.find_element(By.ID, "sign-in").click()

    return sign_in
