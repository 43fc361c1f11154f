"""The /clip/* HTTP endpoints: parse input, call a service, render output."""

from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from clipcheck import services
from clipcheck.api.exceptions import error_body
from clipcheck.api.serializers import AnalyzeInputSerializer, BatchInputSerializer, ClassifyInputSerializer
from clipcheck.engine import engine_status
from clipcheck.models import Analysis
from clipcheck.settings import clip_settings

SERVICE_NAME = "CLIP analyzer"


class AnalyzeView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def post(self, request):
        serializer = AnalyzeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        analysis = services.analysis_create(
            image=data["file"], text=data["text"], threshold=data.get("threshold"), source=Analysis.Source.API
        )
        return Response(analysis.result())


class ClassifyView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def post(self, request):
        serializer = ClassifyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        matches = services.classify_image(
            image=data["file"], categories=data.get("categories"), top_k=data.get("top_k")
        )
        return Response({"top_matches": matches})


class CategoriesView(APIView):
    def get(self, request):
        categories = list(clip_settings.CATEGORIES)
        return Response({"categories": categories, "count": len(categories)})


class AnalyzeBatchView(APIView):
    parser_classes = [JSONParser]

    def post(self, request):
        serializer = BatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"results": services.analyze_batch(items=serializer.validated_data["items"])})


class HealthView(APIView):
    def get(self, request):
        status = engine_status()
        body = {
            "status": "healthy" if status["model_loaded"] else "unhealthy",
            "service": SERVICE_NAME,
            "model_loaded": status["model_loaded"],
            "device": status["device"],
            "model": status["model"],
            "dtype": status["dtype"],
        }
        if not status["model_loaded"]:
            body.update(error_body("model_unavailable", status["reason"]))
            return Response(body, status=503)
        return Response(body)
