"""The moderation queue in a real headless browser: log in, filter needs review, approve one."""

import pytest

from listings import services
from listings.models import Listing, ModerationDecision
from tests.support.listings import MISMATCHING_TEXT

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_moderator_approves_a_listing_from_the_needs_review_filter(
    browser_page, live_server, moderator, make_listing, split_threshold
):
    queued = make_listing(description=MISMATCHING_TEXT, category="bags")
    approved = make_listing(category="shoes")
    services.listings_check(listings=[queued, approved])
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/listings/listing/")
    page.fill("#id_username", "moderator")
    page.fill("#id_password", "moderator-password-1")
    page.click("input[type=submit]")
    page.click("#changelist-filter a:text-is('Needs review')")
    page.wait_for_url("**status__exact=needs_review**")

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    image = rows.first.locator("img")
    # The thumbnail loads (waited for: the page may render before the image arrives).
    page.wait_for_function(
        "element => element.complete && element.naturalWidth > 0", arg=image.element_handle(), timeout=15_000
    )
    assert image.bounding_box()["width"] == 72  # sized by the served stylesheet
    page.check(f"input[name=_selected_action][value='{queued.pk}']")
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")

    assert "Approved 1 listing(s)" in page.text_content("ul.messagelist")
    assert Listing.objects.get(pk=queued.pk).status == Listing.Status.APPROVED
    decision = ModerationDecision.objects.get()
    assert (decision.moderator, decision.to_status) == (moderator, "approved")
