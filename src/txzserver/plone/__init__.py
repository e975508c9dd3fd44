"""The Zope/Plone add-on of txzserver: content events, the content-rule action, the toast UI."""
