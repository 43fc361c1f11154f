"""Input and output of POST /upload."""

from dataclasses import dataclass

from rest_framework import serializers

from clipcheck.api.serializers import (
    AnalyzeResultSerializer,
    ErrorDetailSerializer,
    ImageUploadField,
    LanguageField,
    PlainTextField,
    ProductTextField,
    ReasonSerializer,
)
from clipcheck.images import DecodedImage, decode_image
from clipcheck.settings import clip_settings
from clipcheck.verdicts import reasons_for_field, suggestion
from listings.models import Listing
from listings.settings import listings_settings
from listings.similarity import reasons_for_seller


@dataclass(frozen=True)
class UploadedImage:
    data: bytes  # stored as sent
    decoded: DecodedImage  # what the model sees


class ListingImageField(ImageUploadField):
    """An uploaded image kept as bytes (for storage) and decoded (for the check)."""

    def to_internal_value(self, data):
        raw = self.read_bytes(data)
        return UploadedImage(data=raw, decoded=decode_image(raw))


class ListingPhotosField(serializers.ListField):
    """The repeated ``file`` field: 1..``LISTINGS["MAX_PHOTOS"]`` photos, the primary first."""

    default_error_messages = {
        "empty": "Send at least one photo in the file field.",
        "max_length": "{count} photos; the limit is {limit}.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("child", ListingImageField())
        kwargs.setdefault("allow_empty", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        limit = listings_settings.MAX_PHOTOS
        if isinstance(data, (list, tuple)) and len(data) > limit:
            # Refused before any photo is decoded.
            self.fail("max_length", count=len(data), limit=limit)
        return super().to_internal_value(data)


class UploadInputSerializer(serializers.Serializer):
    file = ListingPhotosField(help_text="One to LISTINGS MAX_PHOTOS photos (repeat the field); the first is the primary.")
    title = ProductTextField(required=False, max_length=Listing._meta.get_field("title").max_length)
    description = ProductTextField(required=False)
    category = PlainTextField(required=False, allow_blank=True, max_length=Listing._meta.get_field("category").max_length)
    price = serializers.DecimalField(
        required=False, allow_null=True, max_digits=10, decimal_places=2, min_value=0
    )
    language = LanguageField(help_text="The language of the title and description: en, de, fr or es. "
                                       "Absent: the Accept-Language header's, else en.")


    def validate(self, data):
        if not data.get("title") and not data.get("description"):
            # One error code for the pair: "missing_text".
            raise serializers.ValidationError({"text": "Give a title, a description or both."}, code="required")
        return data


class UploadResultSerializer(serializers.Serializer):
    listing_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Listing.Status.choices)
    title_check = AnalyzeResultSerializer(allow_null=True, help_text="Null when no title was sent.")
    description_check = AnalyzeResultSerializer(allow_null=True, help_text="Null when no description was sent.")
    photos = serializers.IntegerField(min_value=1, help_text="Photos stored.")
    reasons = ReasonSerializer(
        many=True, help_text="Why the listing needs review (texts, category, photos, e.g. photo_reused); empty: clean."
    )
    suggestion = serializers.CharField(allow_null=True)


class UploadMismatchSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    similarity_score = serializers.FloatField(min_value=0.0, max_value=1.0)
    suggestion = serializers.CharField(allow_null=True)
    reasons = ReasonSerializer(many=True)


def submission_output(submission):
    """The 201 body: the listing, its status, the verdicts and the reasons."""
    listing = submission.listing
    checks = {}
    for name, analysis in (("title", submission.title_analysis), ("description", submission.description_analysis)):
        result = None
        if analysis is not None:
            result = analysis.result()
            result["reasons"] = reasons_for_field(result["reasons"], name)
            result["suggestion"] = suggestion(result["reasons"], language=analysis.language)
        checks[f"{name}_check"] = result
    return {
        "listing_id": listing.pk,
        "status": listing.status,
        **checks,
        "photos": listing.photos.count(),
        # The stored reasons are the moderators'; the seller learns no other listing's details, in their language.
        "reasons": reasons_for_seller(listing.reasons, language=listing.language),
        "suggestion": submission.suggestion,
    }


# POST /clip/search


class StatusesField(serializers.CharField):
    """Comma-separated listing statuses."""

    pattern = r"^ *({names}) *(, *({names}) *)*$".format(names="|".join(Listing.Status.values))

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        statuses = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        unknown = sorted(set(statuses) - set(Listing.Status.values))
        if unknown or not statuses:
            raise serializers.ValidationError(
                f"Unknown status {', '.join(unknown) or '(empty)'}; use {', '.join(Listing.Status.values)}.",
                code="invalid_choice",
            )
        return statuses


class SearchInputSerializer(serializers.Serializer):
    """A text, a photo or both (the query is then their embeddings' normalised
    sum: "like this photo, but ..."), how many results, and filters."""

    text = ProductTextField(required=False)
    file = ImageUploadField(required=False)
    status = StatusesField(required=False, max_length=200)
    category = PlainTextField(required=False, max_length=Listing._meta.get_field("category").max_length)

    def get_fields(self):
        # k's bound is read per request (and by the schema) from the settings.
        return {**super().get_fields(), "k": serializers.IntegerField(
            required=False, min_value=1, max_value=clip_settings.SEARCH_MAX_K,
            help_text="Listings to return (default CLIPCHECK SEARCH_DEFAULT_K).",
        )}

    def validate(self, data):
        if "text" not in data and "file" not in data:
            raise serializers.ValidationError("Send a text or a file.", code="required")
        return data


class SearchHitSerializer(serializers.Serializer):
    listing_id = serializers.IntegerField()
    title = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Listing.Status.choices)
    similarity = serializers.FloatField(help_text="Cosine of the photo's embedding with the query's (text or photo).")


class SearchResultSerializer(serializers.Serializer):
    model = serializers.CharField()
    results = SearchHitSerializer(many=True, help_text="Most similar first.")


def search_output(*, hits, model):
    return {
        "model": model,
        "results": [
            {"listing_id": hit.listing.pk, "title": hit.listing.title, "category": hit.listing.category,
             "status": hit.listing.status, "similarity": hit.similarity}
            for hit in hits
        ],
    }


# GET /listings/<id>/statements and POST /listings/<id>/appeal

class AppealInputSerializer(serializers.Serializer):
    # Empty and too long texts are refused by the service, each with its own error code.
    text = PlainTextField(
        required=False, allow_blank=True, trim_whitespace=False,
        help_text="Why the decision is wrong, in the seller's words: at most LISTINGS['APPEAL_TEXT_MAX_LENGTH'] "
                  "characters (5000 by default).",
    )


class AppealSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    text = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["open", "upheld", "reversed"],
        help_text="open: waiting for a moderator other than the one who decided; upheld: the rejection stands; "
                  "reversed: the rejection was lifted and the listing is shown again.",
    )
    decided_at = serializers.DateTimeField(allow_null=True)


class ListingStatementSerializer(serializers.Serializer):
    puid = serializers.CharField(help_text="The statement's identifier in the DSA Transparency Database.")
    decided_at = serializers.DateTimeField()
    statement = serializers.DictField(
        help_text="The statement of reasons in the Transparency Database's fields; its decision_facts end with "
                  "the appeal and its outcome, if any."
    )
    appeal = AppealSerializer(allow_null=True)
    appeal_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when this decision may be contested; null when it may not (any more)."
    )


class ListingStatementsSerializer(serializers.Serializer):
    listing = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Listing.Status.values)
    statements = ListingStatementSerializer(many=True)


class AppealResultSerializer(serializers.Serializer):
    listing = serializers.IntegerField()
    puid = serializers.CharField(help_text="The puid of the statement of the contested decision.")
    appeal = AppealSerializer()


def appeal_output(appeal):
    if appeal is None:
        return None
    return {
        "created_at": appeal.created_at, "text": appeal.text, "outcome": appeal.outcome or "open",
        "decided_at": appeal.decided_at,
    }


def statements_output(listing, rows):
    return ListingStatementsSerializer({
        "listing": listing.pk,
        "status": listing.status,
        "statements": [
            {
                "puid": row["statement"]["puid"], "decided_at": row["decision"].decided_at,
                "statement": row["statement"], "appeal": appeal_output(row["appeal"]),
                "appeal_until": row["appeal_until"],
            }
            for row in rows
        ],
    }).data


def appeal_result_output(appeal):
    from listings.statements import decision_puid

    return AppealResultSerializer(
        {"listing": appeal.listing_id, "puid": decision_puid(appeal.decision), "appeal": appeal_output(appeal)}
    ).data
