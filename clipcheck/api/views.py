"""The /clip/* HTTP endpoints: parse input, call a service, render output.

Who may call each endpoint and how often is the ``access_scope`` policy in
``CLIPCHECK["ACCESS"]`` (enforced by the project's default DRF permission and
throttle classes, ``clipcheck.access``).
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipcheck.access import cost_charge
from clipcheck.api.exceptions import error_body
from clipcheck.api.parsers import BoundedJSONParser
from clipcheck.api.schema import BODY_ERRORS, COMMON_ERRORS, error_responses, multipart
from clipcheck.api.serializers import (
    AnalyzeInputSerializer,
    AnalyzeResultSerializer,
    BatchInputSerializer,
    BatchResultSerializer,
    CategoriesSerializer,
    ClassifyInputSerializer,
    ClassifyResultSerializer,
    EmbedInputSerializer,
    EmbedResultSerializer,
    HealthSerializer,
    HealthUnavailableSerializer,
)
from clipcheck.costs import Cost, RequestBudget
from clipcheck.engine import engine_status
from clipcheck.languages import request_language
from clipcheck.models import Analysis
from clipcheck.services.adaptations import adaptation_summary
from clipcheck.services.analyses import analysis_create
from clipcheck.services.batch import batch_analyze
from clipcheck.services.classification import image_classify
from clipcheck.services.embeddings import embeddings_compute
from clipcheck.services.thresholds import default_threshold, model_shown
from clipcheck.settings import clip_settings

SERVICE_NAME = "CLIP analyzer"
RUNTIME_CACHE_UNUSABLE = (
    "The runtime cache cannot be used: this worker built its models in a temporary directory and builds them "
    "again at every start."
)


def request_budget(request, view):
    """What one request may cost the model, charged to its client's cost rate."""
    return RequestBudget(max_rows=int(clip_settings.MAX_REQUEST_ROWS), charge=cost_charge(request, view))

def classify_cost(categories):
    """A photo, and a prompt per category the client names that the configured catalogue does
    not hold (the configured ones are encoded once and kept)."""
    configured = set(clip_settings.CATEGORIES or [])
    return Cost(photos=1, passages=len({category for category in categories or [] if category not in configured}))


class AnalyzeView(APIView):
    access_scope = "analyze"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Check an image against a product text",
        request=multipart(AnalyzeInputSerializer),
        responses={200: AnalyzeResultSerializer, **error_responses(*BODY_ERRORS)},
    )
    def post(self, request):
        serializer = AnalyzeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        threshold = data.get("threshold")
        if threshold is None and data.get("category"):
            threshold = default_threshold(category=data["category"])
        analysis = analysis_create(
            image=data["file"], text=data["text"], threshold=threshold, source=Analysis.Source.API,
            budget=request_budget(request, self), language=request_language(request, data.get("language")),
        )
        return Response(AnalyzeResultSerializer(analysis.result()).data)


class ClassifyView(APIView):
    access_scope = "classify"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Rank categories for an image (zero-shot)",
        request=multipart(ClassifyInputSerializer),
        responses={200: ClassifyResultSerializer, **error_responses(*BODY_ERRORS)},
    )
    def post(self, request):
        serializer = ClassifyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        request_budget(request, self).admit(classify_cost(data.get("categories")))
        matches = image_classify(
            image=data["file"], categories=data.get("categories"), top_k=data.get("top_k")
        )
        return Response(ClassifyResultSerializer({"top_matches": matches}).data)


class EmbedView(APIView):
    access_scope = "embed"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Embeddings of texts and photos (L2-normalised), with the model and dimension",
        description="Repeat the text and file fields to send several; at most CLIPCHECK EMBED_MAX_ITEMS in all.",
        request=multipart(EmbedInputSerializer),
        responses={200: EmbedResultSerializer, **error_responses(*BODY_ERRORS)},
    )
    def post(self, request):
        serializer = EmbedInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        request_budget(request, self).admit(Cost(photos=len(data.get("file", [])), passages=len(data.get("text", []))))
        body = embeddings_compute(texts=data.get("text", []), images=data.get("file", []))
        # A local checkpoint's path is the server's business: staff see it, others its name.
        shown = model_shown(body["model"], staff=bool(request.user and request.user.is_staff))
        return Response(EmbedResultSerializer({**body, "model": shown}).data)


class CategoriesView(APIView):
    access_scope = "categories"

    @extend_schema(
        summary="The default category catalogue",
        responses={200: CategoriesSerializer, **error_responses(*COMMON_ERRORS)},
    )
    def get(self, request):
        categories = list(clip_settings.CATEGORIES)
        return Response(CategoriesSerializer({"categories": categories, "count": len(categories)}).data)


class AnalyzeBatchView(APIView):
    access_scope = "analyze-batch"
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Check server-side images against texts",
        request={"application/json": BatchInputSerializer},
        responses={200: BatchResultSerializer, **error_responses(*BODY_ERRORS)},
    )
    def post(self, request):
        serializer = BatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        results = batch_analyze(
            items=data["items"], budget=request_budget(request, self),
            language=request_language(request, data.get("language")),
        )
        return Response(BatchResultSerializer({"results": results}).data)


class HealthView(APIView):
    access_scope = "health"

    @extend_schema(
        summary="Model load state",
        responses={
            200: HealthSerializer,
            **error_responses(*COMMON_ERRORS),
            503: OpenApiResponse(HealthUnavailableSerializer, description="The model is not loaded."),
        },
    )
    def get(self, request):
        status = engine_status()
        # A local model's path and the load's exception are internals: staff
        # see them, everyone else the model's name and a generic message.
        staff = bool(request.user and request.user.is_staff)
        # Why the runtime serves without its cache; the reason names the cache's path.
        cache_problem = status["cache_problem"]
        body = {
            "status": "healthy" if status["model_loaded"] else "unhealthy",
            "service": SERVICE_NAME,
            "model_loaded": status["model_loaded"],
            "device": status["device"],
            "model": model_shown(status["model"], staff=staff),
            "model_family": status["model_family"],
            "dtype": status["dtype"],
            "runtime": status["runtime"],
            "precision": status["precision"],
            "runtime_cache": None if cache_problem is None else cache_problem if staff else RUNTIME_CACHE_UNUSABLE,
            "adaptation": adaptation_summary(),
        }
        if not status["model_loaded"]:
            body.update(error_body("model_unavailable", status["message"], status["reason"] if staff else None))
            return Response(body, status=503)
        return Response(body)
