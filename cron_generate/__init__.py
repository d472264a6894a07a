"""cron-generate: render the job directory into one /etc/cron.d file."""
