#!/bin/bash
# Batch script of job my-job, run 2026-11-22T03:00:00.000000Z; written by run-job.
# Every option is on sbatch's command line: no #SBATCH lines here.
exec >>'/srv/pc out/my-job/2026-11-22T03:00:00.000000Z ;'"'"'x'"'"' %j/output.log' 2>&1 </dev/null
# run-job's own helpers use the PATH sbatch gave, whatever the job exports
_pc_path=$PATH
_pc_env=$(command -v env) || _pc_env=/usr/bin/env
_pc_status='/srv/pc out/my-job/2026-11-22T03:00:00.000000Z ;'"'"'x'"'"' %j/job.status'
_pc_started=''
_pc_write() {
    printf '%s\n' "$@" >"$_pc_status.tmp.$$" &&
        PATH=$_pc_path mv -f -- "$_pc_status.tmp.$$" "$_pc_status"
}
_pc_now() { PATH=$_pc_path date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
_pc_end() {
    # $1 exit status, $2 failed command (or empty), $3 signal (or empty)
    _pc_write "slurm_job_id=${SLURM_JOB_ID:-}" "host=${HOSTNAME:-}" "pid=$$" \
        "started_at=$_pc_started" "ended_at=$(_pc_now)" "exit_status=$1" \
        "failed_command=$2" "signal=$3"
}
_pc_signal() {
    trap - TERM INT HUP
    _pc_end "$((128 + $1))" "${_pc_current:-}" "$1"
    exit "$((128 + $1))"
}
trap '_pc_signal 15' TERM
trap '_pc_signal 2' INT
trap '_pc_signal 1' HUP
_pc_started=$(_pc_now)
_pc_write "slurm_job_id=${SLURM_JOB_ID:-}" "host=${HOSTNAME:-}" "pid=$$" "started_at=$_pc_started"
export GREETING='it'"'"'s "x" $HOME;
next'
export RUN_JOB_NAME=my-job
export EMPTY=''
cd -- '/home/svc/work dir $(rm -rf /)' || { echo "run-job: cannot change to the working directory" >&2; _pc_end 125 '' ''; exit 125; }
_pc_current=1
"$_pc_env" -- echo 'hello world' 'it'"'"'s' '"double"' '$HOME' '`id`' '$(id)' 'a;b' 100%
_pc_rc=$?; if [ "$_pc_rc" -ne 0 ]; then _pc_end "$_pc_rc" 1 ''; exit "$_pc_rc"; fi
_pc_current=2
"$_pc_env" -- /usr/bin/env 'line1
line2' 'back\slash' ''
_pc_rc=$?; if [ "$_pc_rc" -ne 0 ]; then _pc_end "$_pc_rc" 2 ''; exit "$_pc_rc"; fi
_pc_current=3
"$_pc_env" -- sh -c 'exit 3'
_pc_rc=$?; if [ "$_pc_rc" -ne 0 ]; then _pc_end "$_pc_rc" 3 ''; exit "$_pc_rc"; fi
_pc_end 0 '' ''
exit 0
