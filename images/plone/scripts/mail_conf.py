"""Write the <product-config txzserver-mail> section (docker-entrypoint.sh, when SMTP_HOST is
set) that txzserver.plone.mail reads: Plone's outgoing mail from SMTP_HOST, SMTP_PORT (25),
SMTP_USER, SMTP_PASSWORD or SMTP_PASSWORD_FILE, SMTP_FROM and SMTP_FROM_NAME.

SMTP_PASSWORD_FILE (a mounted Secret) is named in the section and read at every connection;
a SMTP_PASSWORD variable is written to a file of mode 0600 beside the section. Values are
checked (no line breaks; a port number; an address with @) and ZConfig's $ escaped.
"""
import os
import sys

KEYS = (("smtp-host", "SMTP_HOST"), ("smtp-port", "SMTP_PORT"), ("smtp-user", "SMTP_USER"),
        ("from-address", "SMTP_FROM"), ("from-name", "SMTP_FROM_NAME"))


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(environ, path):
    values = {key: environ.get(name, "").strip() for key, name in KEYS}
    values["smtp-port"] = values["smtp-port"] or "25"
    for key, name in KEYS:
        if "\n" in values[key] or "\r" in values[key]:
            return fail(f"{name} has a line break")
    if not values["smtp-host"]:
        return fail("SMTP_HOST is empty")
    if not values["smtp-port"].isdigit() or not 0 < int(values["smtp-port"]) < 65536:
        return fail(f"SMTP_PORT is a port number, not {values['smtp-port']!r}")
    if values["from-address"] and "@" not in values["from-address"]:
        return fail(f"SMTP_FROM is an address (name@domain), not {values['from-address']!r}")
    password_file = environ.get("SMTP_PASSWORD_FILE", "")
    if environ.get("SMTP_PASSWORD") and not password_file:
        password_file = path + ".password"
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(environ["SMTP_PASSWORD"])
    if password_file and not values["smtp-user"]:
        return fail("SMTP_PASSWORD or SMTP_PASSWORD_FILE needs SMTP_USER")
    values["smtp-password-file"] = password_file
    lines = ["# made by docker-entrypoint.sh at start from SMTP_*", "<product-config txzserver-mail>"]
    lines += [f"  {key} {value.replace('$', '$$')}" for key, value in values.items() if value]
    lines.append("</product-config>")
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ, sys.argv[1]))
