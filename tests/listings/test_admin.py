"""The moderation queue in the Django admin."""

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from clipcheck.models import Analysis
from listings import services
from listings.models import Listing, ModerationDecision
from tests.support.images import image_bytes
from tests.support.listings import MISMATCHING_TEXT

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/listings/listing/"
QUEUE = "/admin/listings/reviewqueueitem/"


@pytest.fixture
def checked_pair(make_listing, split_threshold):
    """One matching (approved) and one mismatching (needs review) listing."""
    matching = make_listing(category="bags")
    mismatching = make_listing(description=MISMATCHING_TEXT, category="shoes")
    services.listings_check(listings=[matching, mismatching])
    return Listing.objects.get(pk=matching.pk), Listing.objects.get(pk=mismatching.pk)


def styled(page, selector, declaration):
    """True when ``page`` links the admin stylesheet and it gives ``selector`` the ``declaration``."""
    from django.contrib.staticfiles import finders

    css = re.sub(r"/\*.*?\*/", "", Path(finders.find("listings/admin.css")).read_text(), flags=re.S)
    declared = any(
        selector in [name.strip() for name in selectors.split(",")] and declaration in body
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css)
    )
    return "/static/listings/admin.css" in page and declared


def run_action(client, url, action, listings, **extra):
    return client.post(url, {"action": action, "_selected_action": [listing.pk for listing in listings], **extra},
                       follow=True)


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def test_the_changelist_shows_thumbnails_statuses_and_score_badges(moderator_client, checked_pair):
    matching, mismatching = checked_pair

    page = moderator_client.get(CHANGELIST).content.decode()

    assert f"/admin/listings/listing/{matching.pk}/image/" in page
    assert 'class="clip-score"' in page and f'data-quality="{mismatching.match_quality}"' in page
    assert "Needs review" in page and "Approved" in page


@pytest.mark.parametrize(("query", "expected"), [
    ("status__exact=needs_review", ["shoes"]),
    ("status__exact=approved", ["bags"]),
    ("checked=no", ["lamps"]),
    ("checked=yes", ["bags", "shoes"]),
    ("category__exact=lamps", ["lamps"]),
    ("q=shoes", ["shoes"]),
])
def test_the_changelist_filters_and_searches(moderator_client, checked_pair, make_listing, query, expected):
    make_listing(category="lamps")

    response = moderator_client.get(f"{CHANGELIST}?{query}")

    assert sorted(listing.category for listing in response.context["cl"].result_list) == expected


def test_the_changelist_orders_by_score(moderator_client, checked_pair):
    matching, mismatching = checked_pair
    column = list(moderator_client.get(CHANGELIST).context["cl"].list_display).index("description_score_badge")

    ascending = moderator_client.get(f"{CHANGELIST}?o={column}").context["cl"].result_list
    descending = moderator_client.get(f"{CHANGELIST}?o=-{column}").context["cl"].result_list

    assert [listing.pk for listing in ascending] == [mismatching.pk, matching.pk]
    assert [listing.pk for listing in descending] == [matching.pk, mismatching.pk]


def test_the_quality_band_filter(moderator_client, checked_pair):
    matching, mismatching = checked_pair

    response = moderator_client.get(f"{CHANGELIST}?quality={mismatching.match_quality}")

    assert mismatching in response.context["cl"].result_list
    assert matching.match_quality == mismatching.match_quality or matching not in response.context["cl"].result_list


def test_recheck_action_reports_counts(moderator_client, checked_pair, settings):
    from tests.support.clip_settings import set_clip_settings

    set_clip_settings(settings, THRESHOLD=0.0)
    response = run_action(moderator_client, CHANGELIST, "recheck_selected", checked_pair)

    assert messages_of(response) == ["Checked 2 listing(s): 2 match, 0 mismatch; 1 changed status."]
    assert Listing.objects.get(pk=checked_pair[1].pk).status == "approved"
    assert Analysis.objects.filter(source="admin").count() == 4


def test_recheck_action_reports_listings_it_could_not_check(moderator_client, checked_pair):
    broken = checked_pair[0]
    broken.image.storage.delete(broken.image.name)

    response = run_action(moderator_client, CHANGELIST, "recheck_selected", checked_pair)

    assert messages_of(response)[0].startswith("Checked 1 listing(s)")
    assert messages_of(response)[1].startswith(f"1 listing(s) could not be checked: #{broken.pk}:")


def test_approve_action_records_the_decision(moderator_client, moderator, checked_pair):
    matching, mismatching = checked_pair

    response = run_action(moderator_client, CHANGELIST, "approve_selected", [matching, mismatching])

    assert messages_of(response) == ["Approved 1 listing(s); 1 left as they were."]
    decision = ModerationDecision.objects.get()
    assert (decision.listing, decision.moderator, decision.from_status, decision.to_status) == (
        mismatching, moderator, "needs_review", "approved",
    )
    assert decision.description_score == mismatching.description_score


def test_reject_action_asks_for_a_note_then_records_it(moderator_client, moderator, checked_pair):
    mismatching = checked_pair[1]

    confirmation = run_action(moderator_client, CHANGELIST, "reject_selected", [mismatching])
    assert confirmation.templates[0].name == "admin/listings/reject_confirmation.html"
    assert f"{mismatching.title} — Needs review" in confirmation.content.decode()
    assert Listing.objects.get(pk=mismatching.pk).status == "needs_review"  # nothing decided yet

    response = run_action(moderator_client, CHANGELIST, "reject_selected", [mismatching], post="yes", note="A shoe.")

    assert messages_of(response) == ["Rejected 1 listing(s); 0 left as they were."]
    mismatching.refresh_from_db()
    assert (mismatching.status, mismatching.moderation_note, mismatching.moderated_by) == ("rejected", "A shoe.", moderator)
    assert ModerationDecision.objects.get().note == "A shoe."


def test_flag_action_queues_only_mismatches(moderator_client, checked_pair, moderator):
    matching, mismatching = checked_pair
    services.listings_decide(listings=[mismatching], moderator=moderator, to_status=Listing.Status.APPROVED)

    response = run_action(moderator_client, CHANGELIST, "flag_mismatches", [matching, mismatching])

    assert messages_of(response) == ["Flagged 1 listing(s) for review; 1 left as they were."]
    assert Listing.objects.get(pk=mismatching.pk).status == "needs_review"


def test_moderation_actions_need_the_moderate_permission(client, checked_pair):
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_listing", "change_listing"]))
    client.force_login(clerk)

    actions = [name for name, _ in client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "recheck_selected" in actions
    assert not {"approve_selected", "reject_selected", "flag_mismatches"} & set(actions)
    run_action(client, CHANGELIST, "approve_selected", [checked_pair[1]])
    assert Listing.objects.get(pk=checked_pair[1].pk).status == "needs_review"


def test_the_review_queue_shows_only_needs_review_oldest_first(moderator_client, make_listing, checked_pair):
    older = checked_pair[1]
    newer = make_listing(title="Newer", status=Listing.Status.NEEDS_REVIEW)

    response = moderator_client.get(QUEUE)

    assert [item.pk for item in response.context["cl"].result_list] == [older.pk, newer.pk]
    page = response.content.decode()
    assert 'class="review-card"' in page and styled(page, ".review-card img", "width: 128px")
    assert MISMATCHING_TEXT in page  # the text beside the image
    assert f"/admin/listings/listing/{older.pk}/image/" in page


def test_approving_from_the_queue_empties_it(moderator_client, checked_pair):
    item = checked_pair[1]

    run_action(moderator_client, QUEUE, "approve_selected", [item])

    assert list(moderator_client.get(QUEUE).context["cl"].result_list) == []
    assert Listing.objects.get(pk=item.pk).status == "approved"


def test_the_image_view_serves_the_stored_bytes_to_staff_only(moderator_client, make_listing):
    from django.test import Client

    listing = make_listing()
    url = f"/admin/listings/listing/{listing.pk}/image/"

    response = moderator_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == listing.image.open("rb").read()
    assert moderator_client.get("/admin/listings/listing/999999/image/").status_code == 404
    assert Client().get(url).status_code == 302  # to the login page


def test_adding_a_listing_in_the_admin_stores_a_generated_name_and_checks_it(moderator_client, everything_matches):
    data = image_bytes(color=(40, 50, 60))
    response = moderator_client.post(f"{CHANGELIST}add/", {
        "title": "A lamp", "description": "A brass desk lamp", "category": "", "price": "",
        "image": SimpleUploadedFile("My Lamp.jpg", data, content_type="image/jpeg"),
        "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0",
    }, follow=True)

    assert response.status_code == 200
    assert "adminform" not in response.context, response.context["adminform"].form.errors
    listing = Listing.objects.get()
    assert listing.image.name.endswith(".png") and "Lamp" not in listing.image.name  # the decoded format, not the name
    assert listing.status == "approved" and listing.checked_at is not None
    assert "re-checked" in " ".join(messages_of(response))


def test_the_admin_refuses_a_file_that_is_not_an_image(moderator_client):
    response = moderator_client.post(f"{CHANGELIST}add/", {
        "title": "A lamp", "description": "A brass desk lamp",
        "image": SimpleUploadedFile("lamp.png", b"GIF89a nonsense", content_type="image/png"),
        "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0",
    })

    assert response.status_code == 200
    assert "image" in response.context["adminform"].form.errors
    assert Listing.objects.count() == 0


def change_form(listing, **changes):
    data = {
        "title": listing.title, "description": listing.description, "category": listing.category,
        "price": "" if listing.price is None else str(listing.price),
        "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0",
    }
    return {**data, **changes}


def test_editing_only_the_price_does_not_recheck(moderator_client, checked_pair):
    listing = checked_pair[0]

    moderator_client.post(f"{CHANGELIST}{listing.pk}/change/", change_form(listing, price="12.50"))

    fresh = Listing.objects.get(pk=listing.pk)
    assert str(fresh.price) == "12.50"
    assert fresh.checked_at == listing.checked_at


def test_editing_the_description_rechecks(moderator_client, checked_pair):
    listing = checked_pair[0]

    moderator_client.post(f"{CHANGELIST}{listing.pk}/change/", change_form(listing, description=MISMATCHING_TEXT))

    fresh = Listing.objects.get(pk=listing.pk)
    assert fresh.checked_at > listing.checked_at
    assert fresh.status == "needs_review"


def test_the_change_page_shows_the_check_and_the_analyses(moderator_client, checked_pair):
    listing = checked_pair[1]

    page = moderator_client.get(f"{CHANGELIST}{listing.pk}/change/").content.decode()

    assert 'class="clip-score"' in page and MISMATCHING_TEXT in page
    assert 'class="clip-preview"' in page and styled(page, ".clip-preview", "max-width: 480px")


def test_the_analysis_admin_is_read_only_with_filters_and_search(admin_client, checked_pair):
    response = admin_client.get("/admin/clipcheck/analysis/?verdict__exact=mismatch&source__exact=audit&q=red")

    assert response.status_code == 200
    assert [analysis.text for analysis in response.context["cl"].result_list] == [MISMATCHING_TEXT]
    for query in ("match_quality__exact=mismatch", "created_at__year=2000", "model__exact=x", "cached__exact=1"):
        assert admin_client.get(f"/admin/clipcheck/analysis/?{query}").status_code == 200
    analysis = Analysis.objects.first()
    assert admin_client.get(f"/admin/clipcheck/analysis/{analysis.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/clipcheck/analysis/{analysis.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/clipcheck/analysis/add/").status_code == 403
