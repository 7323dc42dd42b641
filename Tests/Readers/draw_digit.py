"""Draws an MNIST test digit on `mnist-dist serve`'s page in a real browser (Debian's chromium, driven by Selenium)
and reads the class the page shows.

    draw_digit.py URL MNIST_DIR INDEX [SCREENSHOT.png]

The digit (t10k image INDEX) is traced row by row: each run of ink pixels (above 127) becomes one stroke of the
pointer across the 280 x 280 canvas (10 canvas pixels per MNIST pixel, the page's 20-pixel pen). After the last
stroke it waits until the page has shown the answer to the final drawing, then prints JSON: the class shown, the ten
percentages, the page's note, and how many strokes were drawn.
"""
import gzip
import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By


def digit(directory, index):
    path = os.path.join(directory, "t10k-images-idx3-ubyte.gz")
    raw = gzip.open(path).read() if os.path.exists(path) else open(path[:-3], "rb").read()
    start = 16 + 784 * index
    return [raw[start + 28 * r:start + 28 * (r + 1)] for r in range(28)]


def main():
    url, directory, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
    screenshot = sys.argv[4] if len(sys.argv) > 4 else None
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,640"]:
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(url)
        pad = browser.find_element(By.ID, "pad")
        box = pad.rect
        strokes = 0
        for r, row in enumerate(digit(directory, index)):
            c = 0
            while c < 28:
                if row[c] <= 127:
                    c += 1
                    continue
                start = c
                while c < 28 and row[c] > 127:
                    c += 1
                # Offsets from the canvas's centre (Selenium 4), in CSS pixels: the canvas is 280 x 280.
                x0, x1, y = start * 10 + 5 - box["width"] / 2, (c - 1) * 10 + 5 - box["width"] / 2, r * 10 + 5 - box["height"] / 2
                ActionChains(browser, duration=10).move_to_element_with_offset(pad, int(x0), int(y)).click_and_hold() \
                    .move_by_offset(int(x1 - x0), 0).release().perform()
                strokes += 1
        # The page sends one request at a time and the last drawing after it: wait until it has settled.
        deadline, settled = time.time() + 20, 0
        while time.time() < deadline and settled < 3:
            status = browser.find_element(By.ID, "status").text
            settled = settled + 1 if status == "ready" and browser.execute_script("return !busy && !again") else 0
            time.sleep(0.2)
        shown = browser.find_element(By.ID, "digit").text
        percentages = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#probabilities td:nth-child(3)")]
        note = browser.find_element(By.ID, "note").text
        if screenshot:
            browser.save_screenshot(screenshot)
        print(json.dumps({"class": int(shown) if shown else None, "percentages": percentages, "note": note, "strokes": strokes,
                          "status": browser.find_element(By.ID, "status").text}))
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
