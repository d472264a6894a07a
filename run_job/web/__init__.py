"""The web status page and HTTP API (SPEC §12): a WSGI application.

``app.py`` (the WSGI callable, routing, pages, actions' checks), ``views.py``
(pure: status rows and run records -> what the templates print),
``security.py`` (Host allow list, CSRF tokens, response headers, the secret),
``runs.py`` (reading one run folder without following links), ``actions.py``
(run now, kill, pause, resume, each audit-logged), ``templates/`` (Jinja2,
autoescape on) and ``static/`` (one stylesheet, one small script for the
live tail). The face is ``run_job/web_cli.py`` (``process-control-web``).

``run_job.web.app:application`` is the WSGI callable for the default config
lookup; ``run_job.web.app:make_app(path)`` builds one for another config.
"""
