"""POST /upload: the storefront's listing upload. Parse, call the service, render."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipcheck.api.schema import BODY_ERRORS, error_responses, multipart
from clipcheck.api.serializers import ErrorSerializer
from listings import services
from clipcheck.services.thresholds import model_shown
from clipcheck.settings import clip_settings
from listings.api import schema  # noqa: F401  (registers the schema extensions)
from listings.similarity import listings_search
from listings.api.serializers import (
    SearchInputSerializer,
    SearchResultSerializer,
    search_output,
    UploadInputSerializer,
    UploadMismatchSerializer,
    UploadResultSerializer,
    submission_output,
)


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
