"""The browser test's stand-in for the front web server's authentication.

In a deployment, Apache (mod_wsgi) or nginx (uWSGI) authenticates the user
and sets ``REMOTE_USER`` in the WSGI environ; the application never reads a
user from a request header. Here, for the test only, this tiny middleware
plays that part: every request is the authenticated ``$PC_WEB_TEST_USER``
(empty: nobody is authenticated). gunicorn serves ``web_front:application``.
"""

from __future__ import annotations

import os

from run_job.web.app import make_app

_app = make_app(os.environ["PC_WEB_CONFIG"])
_user = os.environ.get("PC_WEB_TEST_USER", "")


def application(environ, start_response):
    environ = dict(environ)
    environ.pop("REMOTE_USER", None)
    if _user:
        environ["REMOTE_USER"] = _user
    return _app(environ, start_response)
