"""The viewer page in a real browser (headless Chromium driven by Playwright), used as a new user would.

Every check of a position reads the frame number back from the barcode of the frame on screen
(the canvas cut out of a screenshot at 1:1 zoom), so a view that shows a neighbouring frame fails.
"""

import io
import os
import shutil
import time

import numpy as np
import pytest

from web_helpers import A_NUMBERS, A_TIMES, B_TIMES, FPS, Server, barcode, make_stores

pytestmark = pytest.mark.beyond_original

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path():
    for p in (os.environ.get("IMGSTORE_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
              "/usr/bin/chromium"):
        if p and os.path.exists(p):
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("webui"))


@pytest.fixture(scope="module")
def server(stores):
    s = Server(stores["a"], stores["b"])
    yield s
    assert s.stop() == 0


@pytest.fixture()
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)  # for wait_for_function
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def open_at(page, server, fragment=""):
    page.goto(server.url + fragment)
    page.wait_for_selector("body[data-ready='1']", timeout=20000)


def shown(page, store=0):
    v = page.locator(f".view[data-store='{store}']")
    return int(v.get_attribute("data-index"))


def wait_index(page, i, store=0, timeout=10000):
    page.wait_for_function(f"document.querySelector(\".view[data-store='{store}']\").dataset.index === '{i}'",
                           timeout=timeout)


def screen_number(page, store=0):
    """The frame number in the barcode of the frame on screen in view *store*."""
    from PIL import Image

    canvas = page.locator(f".view[data-store='{store}'] canvas")
    assert page.locator(f".view[data-store='{store}']").get_attribute("data-scale") == "1"
    img = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"))
    return barcode(img)


def b_index_for(a_index):
    """Store B's frame aligned by time to store A's frame *a_index* (-1: none within two intervals)."""
    j = int(np.argmin(np.abs(B_TIMES - A_TIMES[a_index])))
    return j if abs(B_TIMES[j] - A_TIMES[a_index]) <= 2 / FPS else -1


def check_both(page, a_index):
    """Both views show the frames for A's frame *a_index*, by their barcodes on screen."""
    wait_index(page, a_index)
    assert screen_number(page, 0) == A_NUMBERS[a_index]
    j = b_index_for(a_index)
    assert shown(page, 1) == j
    if j >= 0:
        assert screen_number(page, 1) == j


def test_fragment_opens_the_frame_and_follows_moves(page, server):
    open_at(page, server, "#index=37")
    check_both(page, 37)
    page.keyboard.press("ArrowRight")
    check_both(page, 38)
    page.wait_for_function("location.hash === '#index=38'")
    page.evaluate("location.hash = '#number=150'")
    check_both(page, 145)
    page.evaluate("location.hash = '#time=' + encodeURIComponent('2026-12-02T08:26:41.000')")
    check_both(page, 30)
    status = page.inner_text(".view[data-store='0'] .view-status")
    assert "#30" in status and "index 30" in status and "08:26:41" in status


def test_keys_step_and_jump(page, server):
    open_at(page, server, "#index=50")
    check_both(page, 50)
    for key, want in (("ArrowRight", 51), ("Shift+ArrowRight", 61), ("ArrowLeft", 60), ("Shift+ArrowLeft", 50),
                      ("PageDown", 60), ("End", len(A_NUMBERS) - 1), ("Home", 0)):
        page.keyboard.press(key)
        check_both(page, want)


def test_slider_seeks_to_the_frame_it_shows(page, server):
    open_at(page, server)
    box = page.locator(".slider").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('.view[data-store=\"0\"]').dataset.index !== '0'")
    i = int(page.locator(".slider").input_value())
    assert 150 < i < 250
    check_both(page, i)


def test_jump_by_number_index_and_time(page, server):
    open_at(page, server)
    page.fill("#jump-number input", "250")
    page.press("#jump-number input", "Enter")
    check_both(page, 245)
    page.fill("#jump-index input", "12")
    page.press("#jump-index input", "Enter")
    check_both(page, 12)
    page.fill("#jump-time input", "2026-12-02 08:26:43.5")  # frame number 105 (after the gap)
    page.press("#jump-time input", "Enter")
    check_both(page, 100)
    page.fill("#jump-number input", "102")  # dropped: the nearest is shown, and said so
    page.press("#jump-number input", "Enter")
    check_both(page, 99)
    assert "no frame #102" in page.inner_text("#message")


def test_play_at_the_recorded_rate_and_pause(page, server):
    open_at(page, server, "#index=0")
    check_both(page, 0)
    page.keyboard.press("Space")
    page.wait_for_function("window.imgstoreViewer.player.playing")
    t0 = time.monotonic()
    page.wait_for_timeout(2000)
    page.keyboard.press("Space")
    elapsed = time.monotonic() - t0
    page.wait_for_function("!window.imgstoreViewer.player.playing")
    i = shown(page)
    played = A_TIMES[i] - A_TIMES[0]
    assert 0.6 * elapsed < played < 1.3 * elapsed, (i, played, elapsed)
    time.sleep(0.3)
    assert shown(page) == i  # paused
    check_both(page, i)
    page.keyboard.press("+")  # x2
    assert page.input_value("#speed") == "2"


def test_plot_click_seeks_and_cursor_follows(page, server):
    open_at(page, server, "#index=10")
    page.wait_for_selector(".plot[data-column='spike'] .u-over")
    over = page.locator(".plot[data-column='spike'] .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    cx = round(box["x"] + box["width"] * 0.5)
    x = cx - box["x"]
    want_t = page.evaluate(f"window.imgstoreViewer.page.plots.charts[0].u.posToVal({x}, 'x')")
    per_px = page.evaluate(f"(u => u.posToVal({x} + 1, 'x') - u.posToVal({x}, 'x'))"
                           "(window.imgstoreViewer.page.plots.charts[0].u)")
    page.mouse.click(cx, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector(\".view[data-store='0']\").dataset.index !== '10'")
    i = shown(page)
    assert abs(A_TIMES[i] - want_t) <= 0.5 / FPS + 2 * per_px, (i, A_TIMES[i], want_t)
    check_both(page, i)
    line = page.locator(".plot[data-column='spike'] .plot-cursor").bounding_box()
    assert abs(line["x"] - cx) < 4


def test_gaps_listed_marked_and_clickable(page, server):
    open_at(page, server, "#index=5")
    rows = page.locator(".panel.gaps[data-store='0'] tr.gap")
    assert rows.count() == 2
    assert page.locator(".panel.gaps[data-store='0']").get_attribute("data-gaps") == "2"
    rows.nth(1).click()
    check_both(page, 200)
    marks = page.evaluate("""() => { const c = document.querySelector('.gap-marks');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let k = 0; k < d.length; k += 4) if (d[k + 3] > 0) n++; return n; }""")
    assert marks > 0


def test_two_stores_aligned_by_frame_number(page, server):
    open_at(page, server, "#index=150")
    page.select_option("#align", "frame_number")
    wait_index(page, 150)
    page.wait_for_function("document.querySelector(\".view[data-store='1']\").dataset.index === '155'")
    assert screen_number(page, 0) == 155 and screen_number(page, 1) == 155


def test_sixteen_bit_levels(browser, stores):
    s = Server(stores["c"])
    pg = browser.new_page(viewport={"width": 900, "height": 700}, bypass_csp=True)
    try:
        open_at(pg, s, "#index=17")
        wait_index(pg, 17)
        assert screen_number(pg) == 17
        assert float(pg.input_value(".level-hi")) == 65535  # the frame's own range, the bars at the top
        pg.fill(".level-lo", "30000")
        pg.press(".level-lo", "Enter")
        pg.wait_for_function("window.imgstoreViewer.player.sources[0].levels[0] === 30000")
        pg.wait_for_function("window.imgstoreViewer.player.shown === 17")
        pg.keyboard.press("Escape")  # out of the levels field
        pg.keyboard.press("ArrowRight")
        wait_index(pg, 18)
        assert screen_number(pg) == 18
    finally:
        pg.close()
        assert s.stop() == 0


def test_zoom_pan_and_step_buttons(page, server):
    open_at(page, server, "#index=20")
    check_both(page, 20)
    view = page.locator(".view[data-store='0']")
    box = view.locator(".viewport").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    page.mouse.wheel(0, -200)
    page.wait_for_function("Number(document.querySelector(\".view[data-store='0']\").dataset.scale) > 1")
    before = view.locator("canvas").bounding_box()
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 90, steps=4)
    page.mouse.up()
    after = view.locator("canvas").bounding_box()
    assert (after["x"] - before["x"], after["y"] - before["y"]) == pytest.approx((40, 30), abs=1)
    view.locator(".one-to-one").click()
    assert view.get_attribute("data-scale") == "1"
    page.click("#fwd10")
    check_both(page, 30)
    page.click("#back1")
    check_both(page, 29)
    page.click("#play")
    page.wait_for_function("window.imgstoreViewer.player.playing")
    page.click("#play")
    page.wait_for_function("!window.imgstoreViewer.player.playing")
