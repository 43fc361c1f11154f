"""The storefront's listing endpoints: POST /upload, and a seller's statements of reasons and appeals
(GET /listings/<id>/statements, POST /listings/<id>/appeal). Parse, call the service, render."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipcheck.api.schema import BODY_ERRORS, COMMON_ERRORS, error_responses, multipart
from clipcheck.api.serializers import ErrorSerializer
from clipcheck.languages import request_language
from clipcheck.services.thresholds import model_shown
from clipcheck.settings import clip_settings
from listings import appeals, services
from listings.api import schema  # noqa: F401  (registers the schema extensions)
from listings.api.serializers import (
    AppealInputSerializer,
    AppealResultSerializer,
    ListingStatementsSerializer,
    SearchInputSerializer,
    SearchResultSerializer,
    UploadInputSerializer,
    UploadMismatchSerializer,
    UploadResultSerializer,
    appeal_result_output,
    search_output,
    statements_output,
    submission_output,
)
from listings.similarity import listings_search


class UploadView(APIView):
    # Who may upload, and how often: CLIPCHECK["ACCESS"]["upload"].
    access_scope = "upload"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Submit a listing: its photos are checked against its title, description and category",
        request=multipart(UploadInputSerializer),
        responses={
            201: UploadResultSerializer,
            422: OpenApiResponse(
                UploadMismatchSerializer, description="The description does not match the photo (reject policy)."
            ),
            **error_responses(*BODY_ERRORS),
            507: OpenApiResponse(
                ErrorSerializer, description="Media storage is full (disk or quota): nothing was stored; retry later."
            ),
        },
    )
    def post(self, request):
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        submission = services.listing_submit(
            photos=[(photo.data, photo.decoded) for photo in data["file"]],
            title=data.get("title", ""),
            description=data.get("description", ""),
            category=data.get("category", ""),
            price=data.get("price"),
            seller=request.user if request.user.is_authenticated else None,
            language=request_language(request, data.get("language")),
        )
        return Response(submission_output(submission), status=status.HTTP_201_CREATED)


class SearchView(APIView):
    # Off for anonymous clients by default: CLIPCHECK["ACCESS"]["search"].
    access_scope = "search"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Search the catalogue by text or photo: the listings whose photos are nearest",
        request=multipart(SearchInputSerializer),
        responses={200: SearchResultSerializer, **error_responses(*BODY_ERRORS)},
    )
    def post(self, request):
        serializer = SearchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hits = listings_search(
            text=data.get("text"), image=data.get("file"), k=data.get("k") or clip_settings.SEARCH_DEFAULT_K,
            statuses=data.get("status"), category=data.get("category"),
        )
        return Response(search_output(hits=hits, model=model_shown(staff=bool(request.user and request.user.is_staff))))


def sellers_listing(request, listing_id, *, staff_reads=False):
    """The listing when the user is its seller (or staff, with ``staff_reads``); 404 otherwise, the same
    answer as for a listing that does not exist."""
    from clipcheck.errors import ClipcheckError
    from listings.models import Listing

    listing = Listing.objects.filter(pk=listing_id).first()
    user = request.user
    if listing is None or not (listing.seller_id == user.pk or (staff_reads and user.is_staff)):
        raise ClipcheckError("No such listing.", code="not_found", status_code=404)
    return listing


class ListingStatementsView(APIView):
    # The listing's seller, or staff: CLIPCHECK["ACCESS"]["listing-statements"].
    access_scope = "listing-statements"

    @extend_schema(
        summary="The statements of reasons of a listing: why it was restricted, and the appeal of each",
        responses={
            200: ListingStatementsSerializer,
            404: OpenApiResponse(
                ErrorSerializer, description="No such listing, or not the user's (the same answer for both)."
            ),
            **error_responses(*COMMON_ERRORS),
        },
    )
    def get(self, request, listing_id):
        listing = sellers_listing(request, listing_id, staff_reads=True)
        return Response(statements_output(listing, appeals.listing_statements(listing)))


class ListingAppealView(APIView):
    # The listing's seller: CLIPCHECK["ACCESS"]["listing-appeal"].
    access_scope = "listing-appeal"

    @extend_schema(
        summary="Contest the rejection of a listing: a moderator other than the one who decided reviews it",
        request=AppealInputSerializer,
        responses={
            201: AppealResultSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="appeal_text_empty or appeal_text_too_long (detail: max_length, length), or a "
                            "malformed body.",
            ),
            404: OpenApiResponse(
                ErrorSerializer, description="No such listing, or not the user's (the same answer for both)."
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="appeal_nothing_to_contest (the listing is not rejected), appeal_exists (the decision "
                            "was contested already: once per decision) or appeal_too_late (detail: deadline).",
            ),
            **error_responses(*(status for status in BODY_ERRORS if status != 400)),
        },
    )
    def post(self, request, listing_id):
        listing = sellers_listing(request, listing_id)
        serializer = AppealInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        appeal = appeals.appeal_create(listing=listing, text=serializer.validated_data.get("text", ""))
        return Response(appeal_result_output(appeal), status=status.HTTP_201_CREATED)
