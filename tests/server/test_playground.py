"""The playground page in a real browser (Debian's Chromium, headless, driven by Selenium):
a WSD answer in two colours with the switch marker where the API puts it, the chart of the
draft's scores, the compare mode, keyboard use, narrow windows and the API key prompt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # `make test` installs chromium and its driver

PROMPT = "Give me three tips for a good night's sleep."
# On the embedded models the window means of this prompt's draft climb to 0.54, then pass 0.6
# at draft token 20 (0.82): a clear switch, with a chart worth looking at
SWITCH = {"threshold": 0.6, "window": 4}
MAX_TOKENS = 80
ANSWER_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,800"):  # fmt: skip
        options.add_argument(argument)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout_s=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(condition)


def open_page(driver, server, path="/"):
    driver.get(f"{server.base_url}{path}")
    wait_for(driver, lambda d: "Models:" in d.find_element("id", "status").text)


def fill(driver, element_id, value):
    element = driver.find_element("id", element_id)
    element.clear()
    element.send_keys(str(value))


def finished_answers(driver, count):
    def done(d):
        answers = d.find_elements("css selector", "article.answer")
        finished = [a for a in answers if a.get_attribute("data-done") == "true"]
        return finished if len(finished) == count else False

    return wait_for(driver, done, ANSWER_TIMEOUT_S)


def test_a_wsd_answer_shows_the_pilot_the_base_and_the_switch(browser, live_server, ids, tmp_path):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, live_server)
    fill(browser, "prompt", PROMPT)
    fill(browser, "max-tokens", MAX_TOKENS)
    fill(browser, "threshold", SWITCH["threshold"])
    fill(browser, "window", SWITCH["window"])
    # keyboard only: Ctrl+Enter in the message box sends it
    browser.find_element("id", "prompt").send_keys(Keys.CONTROL, Keys.ENTER)
    (article,) = finished_answers(browser, 1)

    body = {
        "model": ids["wsd"], "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS, "temperature": 0, "wsd": {**SWITCH, "return_scores": True},
    }  # fmt: skip
    api = httpx.post(f"{live_server.base_url}/v1/chat/completions", json=body, timeout=300)
    text, wsd = api.json()["choices"][0]["message"]["content"], api.json()["wsd"]
    assert wsd["reason"] == "threshold"

    pilot = article.find_element("css selector", ".text .pilot").get_attribute("textContent")
    base = article.find_element("css selector", ".text .base").get_attribute("textContent")
    assert pilot + base == text
    assert len(pilot) == wsd["prefix_chars"] == int(article.get_attribute("data-prefix-chars"))
    marker = article.find_element("css selector", ".text .marker")
    assert marker.get_attribute("aria-label") == "switch: threshold"
    points = article.find_elements("css selector", ".chart circle.point")
    assert len(points) == len(wsd["scored_tokens"])
    first = points[0].find_element("css selector", "title").get_attribute("textContent")
    assert f"{wsd['scored_tokens'][0]['probability']:.3f}" in first
    assert article.find_elements("css selector", ".chart line.threshold")
    assert article.find_elements("css selector", ".chart line.switch")
    save_screenshot(browser, tmp_path)


def save_screenshot(browser, tmp_path: Path) -> None:
    """The whole page, into the test's folder and where $WSD_PLAYGROUND_SCREENSHOT says (the
    README's)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(height + 120, 2400))
    try:
        browser.save_screenshot(str(tmp_path / "playground.png"))
        target = os.environ.get("WSD_PLAYGROUND_SCREENSHOT")
        if target:
            browser.save_screenshot(target)
    finally:
        browser.set_window_size(1280, 800)
    assert (tmp_path / "playground.png").stat().st_size > 10_000


def test_compare_mode_streams_three_models_side_by_side(browser, live_server, ids):
    open_page(browser, live_server)
    fill(browser, "prompt", "Name a colour.")
    fill(browser, "max-tokens", 12)
    browser.find_element("id", "compare").click()
    browser.find_element("id", "send").click()
    answers = finished_answers(browser, 3)
    assert [a.get_attribute("data-model") for a in answers] == [ids["wsd"], ids["pilot"],
                                                                ids["base"]]  # fmt: skip
    for article in answers:
        figures = article.find_element("css selector", ".figures").text
        assert "time to first token" in figures and "tokens/s" in figures
        assert article.get_attribute("data-text")
    tops = {a.rect["y"] for a in answers}
    assert len(tops) == 1  # side by side at 1280 x 800


@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_fits_the_window(browser, live_server, width):
    browser.set_window_size(width, 800)
    try:
        open_page(browser, live_server)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        for element_id in ("prompt", "model", "max-tokens", "send"):
            assert browser.find_element("id", element_id).is_displayed()
    finally:
        browser.set_window_size(1280, 800)


def test_the_page_asks_for_the_api_key(browser, own_scripted_server, ids):
    server = own_scripted_server(api_keys=["sesame"])
    browser.get(f"{server.base_url}/playground")
    wait_for(browser, lambda d: d.find_element("id", "key-row").is_displayed())
    fill(browser, "api-key", "sesame")
    fill(browser, "prompt", "Hi")
    browser.find_element("id", "send").click()
    (article,) = finished_answers(browser, 1)
    assert article.get_attribute("data-model") == ids["wsd"]
    assert article.find_element("css selector", ".text").text
