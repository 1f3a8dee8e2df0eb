"""Flask glue shared by every blueprint: the auth gate, error pages, headers, template filters."""
