"""The JSON API base: Bearer tokens, problem details, and the OpenAPI document built from the routes."""
