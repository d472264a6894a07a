# WSGI entry of the process-control status page for a WSGI server such as
# Apache mod_wsgi (see process-control-web(1), DEPLOYMENT): run it as the
# service user, behind the front server's authentication (REMOTE_USER).
from run_job.web.app import make_app

application = make_app("/etc/process-control.yaml")
