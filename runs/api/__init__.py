"""The JSON API under /api/v1/ (django-ninja), for scripts and CI pipelines.

It is another door to the same rules as the pages: it validates with the run form,
checks the same permissions and calls runs.service exactly as the views do. Callers
authenticate with a personal access token (runs.tokens); every answer, errors included,
is JSON, and the OpenAPI description is served at /api/v1/openapi.json.
"""
