"""Copies a SQLite index to PostgreSQL: `python scripts/migrate_to_postgres.py SQLITE_PATH DSN`.

The same as `docfoundry migrate --from sqlite:SQLITE_PATH --to DSN`.
"""

import sys

from docfoundry_grpc.cli import main

if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(["migrate", "--from", f"sqlite:{sys.argv[1]}", "--to", sys.argv[2]]))
