"""Plone's outgoing mail configured as the plone image configures it: SMTP_* variables through
images/plone/scripts/mail_conf.py (<product-config txzserver-mail>, included in zope.conf as
docker-entrypoint.sh includes it), the site's sender written by images/plone/scripts/
create_site.py, txzserver.plone.mail in a real served txzserver Plone instance. A content rule's
mail action (Plone's own) reaches a local SMTP server (aiosmtpd) that requires a login: the
password comes from SMTP_PASSWORD_FILE, read at every connection, so a rotated file is used
without a restart; a refused login is logged, the edit still succeeds.
"""

import os
import subprocess
import sys
import time

import pytest

from tests.support.instance import (
    ROOT, SITE_ID, TXZSERVER, copy_instance_data, new_instance)
from tests.support.restapi import api
from tests.support.server import ServerProcess
from tests.support.smtpsink import SmtpSink

MAIL_CONF = ROOT / "images" / "plone" / "scripts" / "mail_conf.py"
CREATE_SITE = ROOT / "images" / "plone" / "scripts" / "create_site.py"
RULE_SCRIPT = ROOT / "tests" / "support" / "mail_rule_script.py"
USER = "plone-mailer"
RECIPIENT = "editors@example.org"
# the sink requires a login over plain SMTP: on loopback, what the test checks is the login
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SMTP_ENV = ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_PASSWORD_FILE",
            "SMTP_FROM", "SMTP_FROM_NAME")


def mail_conf(path, **variables):
    env = {key: value for key, value in os.environ.items() if key not in SMTP_ENV}
    env.update(variables)
    return subprocess.run([sys.executable, str(MAIL_CONF), str(path)], env=env,
                          capture_output=True, text=True, timeout=60)


def zope_run(conf, script, *args, **env):
    run = subprocess.run([TXZSERVER, "run", str(conf), str(script), *args], cwd=conf.parent.parent,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    return run.stdout


@pytest.fixture(scope="module")
def sink():
    server = SmtpSink({USER: "first Secret-1"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_instance(tmp_path_factory, plone_template, sink):
    directory = tmp_path_factory.mktemp("mail")
    password = directory / "smtp-password"
    password.write_text("first Secret-1\n")  # a trailing newline, as `echo > file` leaves it
    snippet = directory / "mail.conf"
    made = mail_conf(snippet, SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_USER=USER,
                     SMTP_PASSWORD_FILE=str(password), SMTP_FROM="site@example.org",
                     SMTP_FROM_NAME="Example $ite")
    assert made.returncode == 0, made.stderr
    conf = new_instance(directory, extra=f"%include {snippet}")
    copy_instance_data(plone_template["directory"], directory)
    out = zope_run(conf, CREATE_SITE, SITE=SITE_ID)
    assert f"site /{SITE_ID} exists already" in out
    assert (f"mail settings of /{SITE_ID}: smtp_host 127.0.0.1, smtp_port {sink.port}, "
            "email_from_address site@example.org, email_from_name Example $ite") in out
    assert f"mails {RECIPIENT}" in zope_run(conf, RULE_SCRIPT, SITE_ID, RECIPIENT)
    server = ServerProcess(conf).start()
    yield {"server": server, "password": password}
    server.stop()


def add_document(server, title):
    api(server, "POST", f"/{SITE_ID}", json={"@type": "Document", "title": title})


def wait_for_message(sink, count, timeout=60):
    deadline = time.monotonic() + timeout
    while len(sink.messages) < count:
        assert time.monotonic() < deadline, f"no message {count} at the sink; logins {sink.logins}"
        time.sleep(0.1)
    return sink.messages[count - 1]


def test_a_content_rule_mail_reaches_the_smtp_server(mail_instance, sink):
    server = mail_instance["server"]
    add_document(server, "Hello mail")
    got = wait_for_message(sink, 1)
    message = got["message"]
    assert got["mail_from"] == "site@example.org" and got["rcpt_tos"] == [RECIPIENT]
    assert got["user"] == USER and sink.logins == [(USER, True)]
    assert message["Subject"] == "New: Hello mail"
    assert message["From"].addresses[0].display_name == "Example $ite"
    assert message["From"].addresses[0].addr_spec == "site@example.org"
    assert message.get_content().strip() == server.url(f"/{SITE_ID}/hello-mail")
    assert "mail goes to 127.0.0.1" in server.log_text()


def test_a_rotated_password_file_is_used_without_a_restart(mail_instance, sink):
    before = len(sink.messages)
    sink.accounts[USER] = "second Secret-2"  # the old password no longer logs in
    mail_instance["password"].write_text("second Secret-2")
    add_document(mail_instance["server"], "After rotation")
    got = wait_for_message(sink, before + 1)
    assert got["message"]["Subject"] == "New: After rotation"
    assert sink.logins[-1] == (USER, True)


def test_a_refused_login_is_logged_and_the_edit_still_succeeds(mail_instance, sink):
    server = mail_instance["server"]
    before, logins = len(sink.messages), len(sink.logins)
    mail_instance["password"].write_text("wrong")
    try:
        add_document(server, "Refused")  # asserts a 2xx answer
        deadline = time.monotonic() + 60
        while "Attempt to send mail in content rule failed" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.1)
        assert sink.logins[logins:] == [(USER, False)]
        assert len(sink.messages) == before
        assert api(server, "GET", f"/{SITE_ID}/refused").json()["title"] == "Refused"
    finally:
        mail_instance["password"].write_text(sink.accounts[USER])


@pytest.mark.parametrize("variables, error", [
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT is a port number, not 'smtp'"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT is a port number, not '70000'"),
    ({"SMTP_PASSWORD": "x"}, "SMTP_PASSWORD or SMTP_PASSWORD_FILE needs SMTP_USER"),
    ({"SMTP_FROM": "nobody"}, "SMTP_FROM is an address (name@domain), not 'nobody'"),
    ({"SMTP_FROM_NAME": "a\nsmtp-host evil"}, "SMTP_FROM_NAME has a line break"),
    ({"SMTP_HOST": ""}, "SMTP_HOST is empty"),
])
def test_mail_conf_refuses_bad_variables(tmp_path, variables, error):
    made = mail_conf(tmp_path / "mail.conf", **{"SMTP_HOST": "relay", **variables})
    assert made.returncode == 2 and f"error: {error}" in made.stderr
    assert not (tmp_path / "mail.conf").exists()


def test_a_password_variable_goes_to_a_private_file(tmp_path):
    path = tmp_path / "mail.conf"
    made = mail_conf(path, SMTP_HOST="relay", SMTP_USER="u", SMTP_PASSWORD="p$w")
    assert made.returncode == 0, made.stderr
    secret = tmp_path / "mail.conf.password"
    assert secret.read_text() == "p$w" and secret.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert "p$w" not in text and f"smtp-password-file {secret}" in text
    assert "  smtp-port 25\n" in text
