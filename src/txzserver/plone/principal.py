"""@@txzserver-principal: who the current request is, in guard tokens, for the WebSocket server.

The server calls this view once per WebSocket handshake, forwarding the handshake's cookies and
Authorization header, so Plone's own authentication (PAS, sessions, basic auth) decides who is
connecting; after that, events are matched against the returned tokens in memory. The view is
public: anonymous callers simply get ``{"userid": null, "tokens": ["Anonymous"]}``.
"""

import json

from Products.Five.browser import BrowserView
from Products.CMFCore.utils import getToolByName

from .guard import current_user_id, user_tokens


class PrincipalView(BrowserView):
    def __call__(self):
        site = getToolByName(self.context, "portal_url").getPortalObject()
        data = {
            "userid": current_user_id() or None,
            "tokens": user_tokens(self.context),
            "site_path": "/".join(site.getPhysicalPath()),
            "site_url": site.absolute_url(),
        }
        response = self.request.response
        response.setHeader("Content-Type", "application/json; charset=utf-8")
        response.setHeader("Cache-Control", "no-store")
        return json.dumps(data)
