"""The plone image's RelStorage DSN built from its parts (images/plone/scripts/relstorage_dsn.py,
run by docker-entrypoint.sh when RELSTORAGE_HOST is set instead of RELSTORAGE_DSN): the DSN it
prints logs in to a real PostgreSQL (scram-sha-256) as a role whose password has blanks, quotes,
a backslash and an equals sign; missing parts are a clear error, not a half DSN."""

import os
import pathlib
import secrets
import subprocess
import sys

import psycopg2

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "images/plone/scripts/relstorage_dsn.py"


def build(**parts):
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELSTORAGE_")}
    env.update(parts)
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_dsn_from_parts_logs_in_with_an_awkward_password(shared_postgresql):
    role = f"dsn_{secrets.token_hex(4)}"
    password = f"a b'c\\d=e \"{secrets.token_hex(4)}"
    quoted = password.replace("'", "''")
    shared_postgresql.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'", database="postgres")
    try:
        result = build(RELSTORAGE_HOST="127.0.0.1", RELSTORAGE_PORT=str(shared_postgresql.port),
                       RELSTORAGE_DBNAME="postgres", RELSTORAGE_USER=role,
                       RELSTORAGE_PASSWORD=password)
        assert result.returncode == 0, result.stderr
        dsn = result.stdout.strip()
        assert psycopg2.extensions.parse_dsn(dsn)["password"] == password
        connection = psycopg2.connect(dsn, connect_timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_user")
                assert cursor.fetchone() == (role,)
        finally:
            connection.close()
        # the same parts with a wrong password are refused by the server: the DSN carries it
        wrong = build(RELSTORAGE_HOST="127.0.0.1", RELSTORAGE_PORT=str(shared_postgresql.port),
                      RELSTORAGE_DBNAME="postgres", RELSTORAGE_USER=role,
                      RELSTORAGE_PASSWORD=password + "x").stdout.strip()
        try:
            psycopg2.connect(wrong, connect_timeout=10).close()
            raise AssertionError("a wrong password logged in")
        except psycopg2.OperationalError as exc:
            assert "password authentication failed" in str(exc)
    finally:
        shared_postgresql.sql(f"DROP ROLE {role}", database="postgres")


def test_the_port_defaults_to_5432():
    result = build(RELSTORAGE_HOST="postgresql", RELSTORAGE_DBNAME="zope", RELSTORAGE_USER="zope",
                   RELSTORAGE_PASSWORD="secret")
    assert result.returncode == 0, result.stderr
    assert psycopg2.extensions.parse_dsn(result.stdout.strip()) == {
        "host": "postgresql", "port": "5432", "dbname": "zope", "user": "zope", "password": "secret"}


def test_missing_parts_are_named():
    result = build(RELSTORAGE_HOST="postgresql", RELSTORAGE_USER="zope")
    assert result.returncode == 2 and result.stdout == ""
    assert "needs RELSTORAGE_DBNAME, RELSTORAGE_PASSWORD (or set RELSTORAGE_DSN)" in result.stderr
    result = build(RELSTORAGE_HOST="postgresql", RELSTORAGE_PORT="pg", RELSTORAGE_DBNAME="zope",
                   RELSTORAGE_USER="zope", RELSTORAGE_PASSWORD="secret")
    assert result.returncode == 2 and "RELSTORAGE_PORT is a port number, not 'pg'" in result.stderr
