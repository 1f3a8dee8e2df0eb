#!/usr/bin/env bash
# Development only, until the first release: rebuild the single initial migration from the models.
# Hand-written revisions after it (triggers and the like) are kept and stay chained after 0001.
# After a release, add normal Alembic revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
aside=$(mktemp -d)
find migrations/versions -maxdepth 1 -name '*.py' ! -name '*_0001_initial_schema.py' -exec mv {} "$aside/" \;
rm -f migrations/versions/*_0001_initial_schema.py
tmp=$(mktemp -d)
$py - "$tmp" <<'PY'
import sys
from alembic import command
from pmo.cli import alembic_config
command.revision(alembic_config(f"sqlite:///{sys.argv[1]}/m.sqlite3"), message="initial schema", autogenerate=True, rev_id="0001")
PY
rm -rf "$tmp"
find "$aside" -name '*.py' -exec mv {} migrations/versions/ \;
rmdir "$aside"
