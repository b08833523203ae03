"""``imgstore serve``: a browser viewer for stores on this machine or behind URLs.

A small aiohttp server (``server``) serves a page (``static/``, no CDN) and an HTTP
API (``api``) over one or more stores (``served``); ``cli.main`` is the command.
Importing this package loads nothing else.
"""
