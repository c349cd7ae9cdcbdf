"""The Gradio demo page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium): the page
loads, a history is built by searching the catalogue and typing ids, and the recommendations shown equal
`model.recommend`'s."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'hf-rec[demo]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the demo extra)")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("headless Chromium is not installed: apt-get install chromium chromium-driver", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from hf_rec.hub import load_recommender  # noqa: E402
from hf_rec.serving.demo import build_demo  # noqa: E402
from hub_helpers import tiny_model_folder  # noqa: E402

@pytest.fixture(scope="module")
def page():
    folder = tiny_model_folder("sasrec")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = build_demo(str(folder))
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, folder
    finally:
        driver.quit()
        demo.close()


def shown_recommendations(driver, count: int, timeout: float = 60) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Gradio's data frame is an ARIA grid (rows rendered virtually, outside a plain <tbody>)
        rows = driver.find_elements(By.CSS_SELECTOR, "#recommendations [role=row]")
        cells = [[cell.text.strip() for cell in row.find_elements(By.CSS_SELECTOR, "[role=gridcell], td")]
                 for row in rows if row.get_attribute("aria-rowindex") != "1"]  # fmt: skip
        cells = [row for row in cells if len(row) == 4 and row[0].isdigit()]
        if len(cells) == count:
            return cells
        time.sleep(0.2)
    raise AssertionError(f"the page did not show {count} recommendations: {driver.page_source[:2000]}")


def test_page_builds_a_history_and_shows_recommend(page):
    driver, folder = page
    wait = WebDriverWait(driver, 60)
    history = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#history textarea")))
    # search the catalogue by title and add the first match ("Item i12 title")
    search = driver.find_element(By.CSS_SELECTOR, "#search textarea, #search input")
    search.send_keys("i12 title", Keys.ENTER)
    wait.until(lambda d: "i12" in (d.find_element(By.CSS_SELECTOR, "#matches input").get_attribute("value") or ""))
    driver.find_element(By.CSS_SELECTOR, "#add").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#history textarea").get_attribute("value") == "i12")
    history.send_keys(", i3, i7")
    driver.find_element(By.CSS_SELECTOR, "#recommend").click()
    rows = shown_recommendations(driver, 10)
    model, tok = load_recommender(folder)
    indices, scores = model.recommend([tok.encode(["i12", "i3", "i7"])], k=10)
    assert [row[1] for row in rows] == tok.decode(indices[0].tolist())
    assert [float(row[3]) for row in rows] == pytest.approx([round(s, 4) for s in scores[0].tolist()], abs=1e-4)
    assert [row[2] for row in rows] == [tok.text(i) or "" for i in indices[0].tolist()]
