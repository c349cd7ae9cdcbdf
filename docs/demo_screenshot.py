"""Screenshots of `hf-rec demo` for the docs: the ML-1M SASRec folder with titles from the dataset files, in headless
Chromium. `python docs/demo_screenshot.py` (needs the demo extra, chromium and chromedriver, ../shared/data/ml-1m)."""

import shutil
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from hf_rec.serving.demo import build_demo

REPO = Path(__file__).resolve().parents[1]
demo = build_demo(str(REPO / "model_cards" / "sasrec-ml1m"), data="ml-1m", data_dir=str(REPO.parent / "shared/data/ml-1m"))
demo.launch(server_name="127.0.0.1", server_port=7890, prevent_thread_lock=True, quiet=True)
options = webdriver.ChromeOptions()
options.binary_location = shutil.which("chromium")
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
    options.add_argument(flag)
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
try:
    driver.get("http://127.0.0.1:7890/")
    time.sleep(5)
    # Toy Story, Aladdin, The Lion King, Beauty and the Beast
    driver.find_element(By.CSS_SELECTOR, "#history textarea").send_keys("1, 588, 364, 595")
    driver.find_element(By.CSS_SELECTOR, "#recommend").click()
    time.sleep(8)
    driver.save_screenshot(str(REPO / "docs" / "demo-ml1m.png"))
finally:
    driver.quit()
    demo.close()
sys.exit(0)
