"""Print RelStorage's DSN built from its parts (docker-entrypoint.sh, when RELSTORAGE_DSN is not
set and RELSTORAGE_HOST is): RELSTORAGE_HOST, RELSTORAGE_PORT, RELSTORAGE_DBNAME,
RELSTORAGE_USER and RELSTORAGE_PASSWORD (the entrypoint has read RELSTORAGE_PASSWORD_FILE into
it). So the password lives in one Secret, the one PostgreSQL is made with, not again in a DSN.
libpq's own quoting (psycopg2's make_dsn): a password with blanks, quotes or backslashes works.
"""
import os
import sys

from psycopg2.extensions import make_dsn

PARTS = (("host", "RELSTORAGE_HOST", None), ("port", "RELSTORAGE_PORT", "5432"),
         ("dbname", "RELSTORAGE_DBNAME", None), ("user", "RELSTORAGE_USER", None),
         ("password", "RELSTORAGE_PASSWORD", None))


def main(environ):
    values, missing = {}, []
    for keyword, name, default in PARTS:
        value = environ.get(name) or default
        if value is None:
            missing.append(name)
        values[keyword] = value
    if missing:
        print(f"error: the RelStorage DSN from its parts needs {', '.join(missing)}"
              " (or set RELSTORAGE_DSN)", file=sys.stderr)
        return 2
    if not values["port"].isdigit():
        print(f"error: RELSTORAGE_PORT is a port number, not {values['port']!r}", file=sys.stderr)
        return 2
    print(make_dsn(**values))
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
