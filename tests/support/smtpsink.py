"""A local SMTP server for tests (aiosmtpd on a loopback port, in its own thread): keeps every
message it accepts and every login attempt; AUTH is required and checked against ``accounts``,
which a test may change while it runs (a rotated password)."""

import email
import email.policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .server import free_port


class SmtpSink:
    def __init__(self, accounts):
        self.accounts = dict(accounts)
        self.messages = []
        self.logins = []  # (user, accepted)
        self.controller = None

    # aiosmtpd's handler and authenticator (its event loop thread)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                              "message": message, "user": session.auth_data.login.decode()})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = self.accounts.get(user) == password
        self.logins.append((user, accepted))
        return AuthResult(success=accepted, auth_data=auth_data)

    # the test's side

    def start(self):
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=self.authenticate, auth_required=True,
                                     auth_require_tls=False)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
