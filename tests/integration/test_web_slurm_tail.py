"""The web page's live tail of a Slurm run, on the real single-node cluster (SPEC §12).

A Slurm batch job writes a line every 0.3 s into its run's ``output.log``
(the node writes it; run-job only watches); the application, called as a
WSGI server calls it, gives the new bytes by offset while the run goes on,
and the run page names the Slurm job.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pctest
import webtest
from webtest import call, web_site


def test_the_tail_of_a_slurm_run_grows_by_offset(tmp_path, slurm_env, monkeypatch):
    for name in ("SLURM_CONF", "PATH"):
        if name in slurm_env:
            monkeypatch.setenv(name, slurm_env[name])
    site = web_site(tmp_path / "web slurm; 'q' %s")
    slug = f"pc-web-tail-{uuid.uuid4().hex[:8]}"
    site.job(slug, "runner: slurm\ncommand: sh -c 'for i in $(seq 1 20); do echo line $i; sleep 0.3; done'\n")
    proc = subprocess.Popen(pctest.command("run-job") + ["--config", str(site.config), "--job", slug],
                            env=pctest.command_env(base=slurm_env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        run_id = webtest.wait_for(lambda: webtest.running_run_id(site, slug), timeout=60,
                                  what="the Slurm run to start")
        from run_job.web.app import make_app

        app = make_app(str(site.config))
        offset, text, sizes = 0, "", []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            chunk = call(app, "GET", f"/jobs/{slug}/runs/{run_id}/output.json?offset={offset}").json()
            assert chunk["offset"] == offset
            text += chunk["text"]
            offset = chunk["next"]
            sizes.append((chunk["running"], offset))
            if not chunk["running"] and not chunk["more"]:
                break
            time.sleep(0.5)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        assert text == "".join(f"line {i}\n" for i in range(1, 21))
        growing = sorted({o for running, o in sizes if running})
        assert len(growing) >= 3, sizes  # seen growing while the run went on
        page = call(app, "GET", f"/jobs/{slug}/runs/{run_id}").text
        record = webtest.history(site, slug)[-1]
        assert record["runner"] == "slurm" and record["slurm_job_id"]
        assert f"Slurm job {record['slurm_job_id']}" in page
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
