"""The OpenAPI schema and Swagger UI, under the "docs" access policy.

A deploy that wants its API description private sets
``CLIPCHECK["ACCESS"]["docs"] = {"anonymous": False}``.
"""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from clipcheck.access import EndpointPolicyPermission


class SchemaView(SpectacularAPIView):
    access_scope = "docs"
    permission_classes = [EndpointPolicyPermission]


class SwaggerUIView(SpectacularSwaggerView):
    access_scope = "docs"
    permission_classes = [EndpointPolicyPermission]
