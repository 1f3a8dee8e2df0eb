"""The PostgreSQL backend's own tests exist on the PostgreSQL run only (they run there, never skipped)."""
import os

collect_ignore = [] if os.environ.get("PMO_TEST_DATABASE_URL", "").startswith("postgresql") else ["test_pg_backend.py"]
