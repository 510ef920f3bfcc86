"""Reading a page of the MLflow UI in the headless Chromium of the `browser` fixture (tests/conftest.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

# Scrolls each element that scrolls on its own by 300 px, back to the top once at its end.
_SCROLL_EACH = """
for (const e of document.querySelectorAll('*')) {
  if (e.scrollHeight > e.clientHeight + 5 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY)) {
    e.scrollTop = e.scrollTop + e.clientHeight + 1 >= e.scrollHeight ? 0 : e.scrollTop + 300;
  }
}"""


def page_text_with(browser, url: str, wanted: list[str], screenshot: Path, values: tuple[float, ...] = (),
                   timeout: float = 90) -> str:
    """Open `url` and wait until the rendered page's text holds every string in `wanted` and shows
    every number in `values`. MLflow 3.17's compare page lists params and metrics in tables that
    scroll on their own (about 500 px tall, rows in name order), so a metric late in the
    alphabet (`eval.val.*`) is on the page only once its table has scrolled: the page is read as
    its scrolling parts move, and the text is every line seen so far."""
    browser.get(url)
    deadline = time.monotonic() + timeout
    lines: dict[str, None] = {}
    while True:
        lines.update(dict.fromkeys(browser.find_element("tag name", "body").text.splitlines()))
        text = "\n".join(lines)
        if (all(item in text for item in wanted) and all(shows(text, value) for value in values)) or time.monotonic() > deadline:
            break
        browser.execute_script(_SCROLL_EACH)
        time.sleep(1)
    browser.save_screenshot(str(screenshot))
    return text


def shows(text: str, value: float) -> bool:
    """Whether the page shows `value` as the UI writes it: five decimals in the metrics table, or three with
    trailing zeros dropped beside the charts (0.7796610 shows as 0.77966 and 0.78)."""
    numbers = set(re.findall(r"\d+\.\d+", text))
    return f"{value:.5f}" in numbers or f"{value:.3f}".rstrip("0").rstrip(".") in numbers
