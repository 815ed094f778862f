"""Both pages in headless chromium against the real stack: the shopper's whole flow, its error paths, the API
going down and coming back, the admin flow, a phone-sized screen, the keyboard, and axe-core's accessibility
rules. Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.integration.orchestrator_process import ADMIN, ADMIN_TOKEN

pytestmark = pytest.mark.integration
SLOW_MS = 120_000  # a try-on or a Triton restart on a 2-core CPU
RECORD_MESSAGES = """
() => {
  window.__messages = [];
  const target = document.getElementById("segment-message");
  new MutationObserver(() => window.__messages.push(target.textContent)).observe(target, { childList: true,
    characterData: true, subtree: true });
}
"""
# images load lazily: the ones matched must be on screen (the first result, the first table row)
ALL_IMAGES_LOADED = "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)"


def open_sample_and_click(page, stack, sample: str = "dress") -> None:
    page.goto(f"{stack.base}/")
    page.get_by_role("button", name=sample, exact=True).click()
    expect(page.locator("#photo-message")).to_contain_text("Photo ready")
    page.evaluate(RECORD_MESSAGES)
    box = page.locator("#overlay").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45)  # the garment's middle
    expect(page.locator(".mask-choice")).to_have_count(3)


def painted_overlay_pixels(page) -> int:
    """Pixels of the overlay painted with the mask colour's alpha."""
    return page.evaluate("""() => {
      const canvas = document.getElementById("overlay");
      const alpha = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < alpha.length; i += 4) if (alpha[i] === 120) painted += 1;
      return painted;
    }""")


def search_for(page, text: str, tryon_ready_only: bool = False) -> None:
    page.locator("#search-text").fill(text)
    if tryon_ready_only:
        page.locator("summary", has_text="Filters").click()
        page.get_by_label("only products ready for try-on").check()
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#search-message")).to_contain_text("products, most similar first")


def upper_body_products(stack) -> set[str]:
    with (stack.catalog_dir / "catalog.csv").open(encoding="utf-8", newline="") as file:
        return {row["id"] for row in csv.DictReader(file) if row["category"] in ("top", "outer")}


def card(page, product_id: str):
    return page.locator(f'.card[data-product-id="{product_id}"]')


def test_shopper_flow_from_photo_to_masks_results_and_a_try_on_with_progress_and_cancel(stack, page, steps,
                                                                                      person_photo):
    page.goto(f"{stack.base}/")
    steps.shot("start")
    open_sample_and_click(page, stack)
    messages = page.evaluate("window.__messages")
    assert any("first click on a new photo" in m for m in messages), messages  # said while the photo encodes
    scores = page.locator(".mask-choice").all_text_contents()
    assert all(re.search(r"score -?\d\.\d\d", s) for s in scores), scores
    steps.shot("masks")
    # a second click on the same photo: no encoding this time
    box = page.locator("#overlay").bounding_box()
    with page.expect_response(lambda response: response.url.endswith("/masks")) as answer:
        page.keyboard.down("Shift")
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
        page.keyboard.up("Shift")
    expect(page.locator("#segment-message")).to_contain_text("masks, best first")
    assert "Finding the garment…" in page.evaluate("window.__messages")
    assert [p["label"] for p in answer.value.request.post_data_json["points"]] == [1, 0]  # shift-click: negative
    page.get_by_role("button", name=re.compile("Mask 2")).click()
    expect(page.get_by_role("button", name=re.compile("Mask 2"))).to_have_attribute("aria-pressed", "true")
    mask_pixels = sum(answer.value.json()["masks"][1]["rle"]["counts"][1::2])
    painted = painted_overlay_pixels(page)
    assert painted > 0 if mask_pixels else painted < 20, (mask_pixels, painted)
    steps.shot("mask-2-chosen")

    page.locator("#image-weight").fill("0.5")
    expect(page.locator("#image-weight-value")).to_have_text("0.50")
    search_for(page, "same but in black", tryon_ready_only=True)
    page.wait_for_function(ALL_IMAGES_LOADED, arg=".card:first-child img")  # a photo from the thumbnail endpoint
    cards = page.locator(".card")
    assert cards.count() >= 1
    assert all("try-on ready" in text for text in page.locator(".card .badge").all_text_contents())
    steps.shot("results")

    # the first upper-body result (the filter let only try-on ready ones through; the person photo shows no hips for
    # a lower-body try-on); which products random weights find depends on the catalog's photos
    upper_body = upper_body_products(stack)
    shown = [card_id for card_id in cards.evaluate_all("cards => cards.map(c => c.dataset.productId)")
             if card_id in upper_body]
    assert shown, "no upper-body product among the results"
    card(page, shown[0]).get_by_role("button", name=re.compile("^Try on")).click()
    page.set_input_files("#person-file", files=[{"name": "me.jpg", "mimeType": "image/jpeg", "buffer": person_photo}])
    page.get_by_role("button", name="Start the try-on").click()
    page.wait_for_function("() => document.getElementById('tryon-progress').value >= 1", timeout=SLOW_MS)
    expect(page.locator("#tryon-message")).to_contain_text("Dressing: step")
    steps.shot("try-on-progress")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#tryon-message")).to_have_text("Cancelled.", timeout=SLOW_MS)
    steps.shot("try-on-cancelled")

    page.get_by_role("button", name="Start the try-on").click()
    expect(page.locator("#tryon-result")).to_be_visible(timeout=SLOW_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#tryon-result img")
    assert page.evaluate("document.getElementById('tryon-image').naturalWidth") == 512  # the person photo's size
    assert page.locator("#tryon-progress").evaluate("p => p.value === p.max")
    steps.shot("try-on-result")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the result").click()
    with open(download.value.path(), "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_clear_refusals_for_a_file_that_is_not_an_image_a_photo_without_a_person_and_an_unready_product(
        stack, page, steps, no_person_photo, person_photo):
    page.goto(f"{stack.base}/")
    page.set_input_files("#photo-file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                "buffer": b"these are my notes, not a photo"}])
    message = page.locator("#photo-message")
    expect(message).to_have_class(re.compile("error"))
    expect(message).to_contain_text(re.compile("JPEG|PNG|image", re.IGNORECASE))
    steps.shot("not-an-image")

    search_for(page, "shirt")
    card(page, stack.ready_product).get_by_role("button", name=re.compile("^Try on")).click()
    page.set_input_files("#person-file", files=[{"name": "wall.jpg", "mimeType": "image/jpeg",
                                                 "buffer": no_person_photo}])
    page.get_by_role("button", name="Start the try-on").click()
    expect(page.locator("#tryon-message")).to_contain_text(re.compile("person", re.IGNORECASE), timeout=SLOW_MS)
    expect(page.locator("#tryon-message")).to_have_class(re.compile("error"))
    steps.shot("no-person")

    card(page, stack.unready_product).get_by_role("button", name=re.compile("^Try on")).click()
    expect(page.locator("#tryon-product")).to_contain_text("not usable for try-on")
    page.set_input_files("#person-file", files=[{"name": "me.jpg", "mimeType": "image/jpeg", "buffer": person_photo}])
    page.get_by_role("button", name="Start the try-on").click()
    expect(page.locator("#tryon-message")).to_contain_text("not usable for try-on", timeout=SLOW_MS)
    steps.shot("unready-product")


def test_the_page_says_when_the_models_are_down_and_recovers_when_they_are_back(stack, page, steps):
    page.goto(f"{stack.base}/")
    search_for(page, "dress")
    stack.stop_triton()
    try:
        page.locator("#search-text").fill("jacket")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator("#search-message")).to_have_class(re.compile("error"), timeout=30_000)
        banner = page.locator("#service-status")
        expect(banner).to_be_visible(timeout=30_000)
        expect(banner).to_contain_text("unavailable")
        steps.shot("models-down")
    finally:
        stack.start_triton()
    expect(page.locator("#service-status")).to_contain_text("back", timeout=SLOW_MS)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#search-message")).to_contain_text("products, most similar first", timeout=30_000)
    steps.shot("models-back")


def catalog_csv(stack, prefix: str) -> bytes:
    """3 good rows, one whose image file does not exist (its id a spreadsheet formula), one without an id; written
    as a spreadsheet exports it: a BOM, CRLF line ends, a quoted newline inside a name."""
    images = sorted((stack.catalog_dir / "images").iterdir())[:3]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "name", "image", "link", "brand", "price", "tags", "category"])
    for number, image in enumerate(images):
        writer.writerow([f"{prefix}-{number}", f"Admin test shirt {number}" + ("\nsecond line" if number == 2 else ""),
                         f"images/{image.name}", "https://shop.example/p", "Acme", "19,900", "shirt|test", "top"])
    writer.writerow([FORMULA_ID, "Missing photo", "images/does-not-exist.jpg", "", "Acme", "1000", "", "top"])
    writer.writerow(["", "No id", f"images/{images[0].name}", "", "Acme", "1000", "", "top"])
    return "\ufeff".encode() + buffer.getvalue().encode()


# a product id a spreadsheet would run; the admin page's error report must quote it
FORMULA_ID = '=HYPERLINK("https://evil.example","open me")'


def test_admin_imports_a_csv_with_progress_and_an_error_report_then_edits_and_deletes_a_product(stack, page,
                                                                                               steps):
    page.goto(f"{stack.base}/admin")
    page.set_input_files("#import-file", files=[{"name": "catalog.csv", "mimeType": "text/csv",
                                                 "buffer": catalog_csv(stack, "ADM")}])
    page.locator("#import-base-dir").fill(str(stack.catalog_dir))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-message")).to_contain_text("admin token")
    expect(page.locator("#import-message")).to_have_class(re.compile("error"))
    steps.shot("refused-without-token")

    page.locator("#admin-token").fill("not-the-right-token-at-all")
    page.get_by_role("button", name="Use this token").click()
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-message")).to_contain_text("wrong admin token")

    page.locator("#admin-token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Use this token").click()
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-message")).to_contain_text("Done: 5 of 5 rows", timeout=SLOW_MS)
    expect(page.locator("#import-progress")).to_have_js_property("value", 5)
    expect(page.locator("#import-counts")).to_contain_text("inserted: 3")
    errors = page.locator("#import-error-rows tr")
    expect(errors).to_have_count(2)
    assert "does-not-exist.jpg" in errors.all_text_contents()[0] + errors.all_text_contents()[1]
    steps.shot("imported-with-errors")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the error report (CSV)").click()
    with open(download.value.path(), encoding="utf-8-sig") as file:
        report = list(csv.reader(file))
    assert len(report) == 3
    cells = [cell for row in report for cell in row]
    assert "'" + FORMULA_ID in cells and FORMULA_ID not in cells  # quoted, so a spreadsheet shows it as text

    page.get_by_label("Find by id, name or brand").fill("ADM-1")
    page.get_by_role("button", name="Find").click()
    row = page.locator('tr[data-product-id="ADM-1"]')
    expect(row).to_be_visible()
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#product-rows tr:first-child img")
    steps.shot("product-found")
    row.get_by_role("button", name="Edit ADM-1").click()
    page.get_by_label("Name", exact=True).fill("Renamed by the admin page")
    page.get_by_label("Price").fill("25000")
    page.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("Renamed by the admin page")
    steps.shot("product-edited")
    with httpx.Client(base_url=stack.base) as client:
        product = client.get("/v1/products/ADM-1").json()
        assert (product["name"], product["price"]) == ("Renamed by the admin page", 25000)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete ADM-1").click()
    expect(row).to_have_count(0)
    expect(page.locator("#products-message")).to_contain_text("Deleted ADM-1")
    steps.shot("product-deleted")
    with httpx.Client(base_url=stack.base, headers=ADMIN) as client:
        assert client.get("/v1/products/ADM-1").status_code == 404


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_a_phone_sized_screen_scrolls_only_vertically(stack, browser, path, request):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    try:
        from tests.browser.conftest import Steps

        steps = Steps(page, request.node.name)
        if path == "/":
            open_sample_and_click(page, stack, "outfit")
            search_for(page, "jacket")
        else:
            page.goto(f"{stack.base}/admin")
            expect(page.locator("#product-rows tr").first).to_be_visible()
        steps.shot("phone")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_the_photo_is_usable_with_the_keyboard(stack, page):
    page.goto(f"{stack.base}/")
    page.get_by_role("button", name="dress", exact=True).click()
    expect(page.locator("#photo-message")).to_contain_text("Photo ready")
    expect(page.locator("#overlay")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator(".mask-choice")).to_have_count(3)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused  # focus moved on to a control, not trapped in the photo


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_no_serious_or_critical_accessibility_violations(stack, page, path):
    from axe_playwright_python.sync_playwright import Axe

    if path == "/":
        open_sample_and_click(page, stack)
        search_for(page, "red dress")
        page.wait_for_function(ALL_IMAGES_LOADED, arg=".card:first-child img")
    else:
        page.goto(f"{stack.base}/admin")
        expect(page.locator("#product-rows tr").first).to_be_visible()
    results = Axe().run(page)
    violations = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
                  for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not violations, violations


def test_a_photo_dropped_on_the_page_is_uploaded_and_a_dragged_box_is_sent_as_a_box(stack, page):
    page.goto(f"{stack.base}/")
    sample = httpx.get(f"{stack.base}/ui/samples/outfit.jpg").content
    # what a file dragged from the desktop delivers: a drop event whose DataTransfer holds the file
    page.evaluate("""bytes => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(bytes)], "dropped.jpg", { type: "image/jpeg" }));
      document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true,
                                                                                 cancelable: true }));
    }""", list(sample))
    expect(page.locator("#photo-message")).to_contain_text("Photo ready (600 × 800)")
    box = page.locator("#overlay").bounding_box()
    with page.expect_response(lambda response: response.url.endswith("/masks")) as answer:
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4, steps=5)
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
    sent = answer.value.request.post_data_json
    assert sent["points"] == []
    assert sent["box"]["x0"] == pytest.approx(180, abs=8) and sent["box"]["x1"] == pytest.approx(420, abs=8)
    assert sent["box"]["y0"] == pytest.approx(160, abs=8) and sent["box"]["y1"] == pytest.approx(400, abs=8)
    expect(page.locator(".mask-choice")).to_have_count(3)
