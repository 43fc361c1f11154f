"""POST /upload: the storefront's listing upload. Parse, call the service, render."""

from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from listings import services
from listings.api.serializers import UploadInputSerializer, submission_output


class UploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        submission = services.listing_submit(
            image_data=data["file"].data,
            image=data["file"].decoded,
            title=data["title"],
            description=data["description"],
            category=data.get("category", ""),
            price=data.get("price"),
        )
        return Response(submission_output(submission), status=status.HTTP_201_CREATED)
