#!/bin/bash
# Debian package check (issue #8): build the .deb from this tree with
# dpkg-buildpackage, install it with apt, run the package tests and the
# end-to-end tests (all of tests/e2e, run-job's, cron-generate's and
# sbatch-service's) against the installed commands (PC_INSTALLED=1: the test
# helpers run /usr/bin/run-job & co, on Debian's /usr/bin/python3 and its
# python3-* libraries; the script checks both), run lintian (no errors
# allowed), then purge it and check that the purge removed what it should.
#
# Needs root on Debian 12.  It purges any installed process-control first,
# with its logs and state: run it on a CI or throw-away machine.
# Environment: KEEP_DEB=DIR copies the built package files there;
# PACKAGE_SUITES="tests/package ..." replaces the test folders run against the
# installed package (default: tests/package tests/e2e); DEB_BUILD_OPTIONS is
# passed on (nocheck skips the build-time unit tests).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
# Debian's own tools and python3 only: no pyenv, venv or ~/.local ahead of them.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYTHONSTARTUP PYTHONUSERBASE
export LC_ALL=C.UTF-8

say() { printf '\n=== package: %s\n' "$*"; }
die() { printf 'package: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get install, dpkg, the service user)"
command -v dpkg >/dev/null || die "needs a Debian system (no dpkg)"

work=$(mktemp -d "${TMPDIR:-/tmp}/process-control-package.XXXXXX")
installed=0
cleanup() {
    local rc=$?
    if ((installed)); then
        apt-get purge -y -qq -o Dpkg::Use-Pty=0 process-control >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT

say "build dependencies"
apt-get update -qq || echo "apt-get update failed; trying with the package lists at hand" >&2
apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends \
    build-essential debhelper dh-python python3-all python3-setuptools \
    pybuild-plugin-pyproject python3-yaml python3-jsonschema \
    python3-croniter python3-filelock python3-pytest python3-aiosmtpd \
    lintian adduser cron man-db logrotate bash-completion >"$work/apt-deps.log" 2>&1 \
    || { tail -n 30 "$work/apt-deps.log"; die "could not install build dependencies"; }

say "source tree"
# Tracked files and new ones not ignored: the tree as it is, minus build junk
# (without git: minus venvs, build/, dist/ and the rest, see .ci/source-tree).
version=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
src="$work/process-control-${version%-*}"
mkdir -p "$src"
"$repo/.ci/source-tree" "$repo" "$src"
echo "copied $(find "$src" -type f | wc -l) files to $src"

say "source package"
# A native source package: the .dsc and .tar.xz must build and lint clean too.
(cd "$work" && dpkg-source -b "${src##*/}") >"$work/source.log" 2>&1 \
    || { cat "$work/source.log"; die "dpkg-source -b failed"; }
tail -n 3 "$work/source.log"

say "dpkg-buildpackage -us -uc -b"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -n 80 "$work/build.log"
    die "dpkg-buildpackage failed (log above)"
fi
grep -E '^(=+ .* =+$|[0-9]+ passed|.*(passed|failed|no tests ran).* in [0-9.]+s)' \
    "$work/build.log" || true
deb=$(ls "$work"/process-control_*_all.deb)
echo "built $deb"
dpkg-deb --contents "$deb" | awk '{print $1, $2, $6, $7, $8}'
if [[ -n ${KEEP_DEB:-} ]]; then
    mkdir -p "$KEEP_DEB"
    cp "$work"/process-control_* "$KEEP_DEB"/
fi

say "lintian"
lintian_rc=0
lintian --fail-on error --display-info "$work"/process-control_*.dsc "$deb" || lintian_rc=$?
((lintian_rc == 0)) || die "lintian reports errors"

say "install"
if dpkg-query -W -f='${Status}' process-control 2>/dev/null | grep -q installed; then
    echo "purging the process-control that was installed before"
    apt-get purge -y -qq -o Dpkg::Use-Pty=0 process-control
fi
installed=1
(cd "$work" && apt-get install -y -qq -o Dpkg::Use-Pty=0 "./${deb##*/}")
# Again: postinst must be idempotent (user, folders, tmpfiles).
(cd "$work" && apt-get install -y -qq -o Dpkg::Use-Pty=0 --reinstall "./${deb##*/}")
dpkg -S /usr/bin/run-job
head -n 1 /usr/bin/run-job /usr/bin/cron-generate /usr/bin/sbatch-service

say "tests against the installed package"
# A copy of the tests outside the source tree, run by Debian's python3: the
# only run_job it can import is the installed one.
tests="$work/tests-installed"
mkdir -p "$tests"
for f in tests setup.cfg pyproject.toml examples schemas README.md docs contrib; do
    if [[ -e $repo/$f ]]; then cp -r "$repo/$f" "$tests/"; fi
done
rm -rf "$tests/schemas/__init__.py"
where=$(cd "$tests" && /usr/bin/python3 -P -c 'import run_job; print(run_job.__file__)')
echo "run_job imported from $where"
[[ $where == /usr/lib/python3/dist-packages/* ]] || die "tests would not use the installed package"
# PC_INSTALLED=1 (read by tests/pctest.py) makes the test helpers run the
# installed commands; check what they will run, with the very same variable.
export PC_INSTALLED=1 PROCESS_CONTROL_PACKAGE_TESTS=1
commands=$(cd "$tests" && /usr/bin/python3 -P -c '
import sys
sys.path.insert(0, "tests")
import pctest
print(" ".join(pctest.command(name)[0] for name in ("run-job", "cron-generate", "sbatch-service")))')
echo "the tests run: $commands"
[[ $commands == "/usr/bin/run-job /usr/bin/cron-generate /usr/bin/sbatch-service" ]] \
    || die "the test helpers would not run the installed commands"

read -r -a suites <<<"${PACKAGE_SUITES:-tests/package tests/e2e}"
for i in "${!suites[@]}"; do
    if [[ ! -e $tests/${suites[i]} ]]; then unset 'suites[i]'; fi
done
pytest_rc=0
((${#suites[@]})) || die "none of the test folders ${PACKAGE_SUITES:-tests/package tests/e2e} exists"
(cd "$tests" && /usr/bin/python3 -P -m pytest -p no:cacheprovider -ra "${suites[@]}") \
    || pytest_rc=$?
((pytest_rc == 0)) || die "tests against the installed package failed ($pytest_rc)"

say "purge"
apt-get purge -y -qq -o Dpkg::Use-Pty=0 process-control
installed=0
leftover=0
for path in /usr/bin/run-job /etc/process-control.yaml /etc/cron.d/process-control \
        /etc/logrotate.d/process-control /var/log/process-control \
        /var/cache/process-control /run/process-control \
        /usr/share/process-control /usr/lib/tmpfiles.d/process-control.conf; do
    if [[ -e $path ]]; then
        echo "left after purge: $path" >&2
        leftover=1
    fi
done
if getent passwd process-control >/dev/null; then
    echo "left after purge: user process-control" >&2
    leftover=1
fi
((leftover == 0)) || die "purge left files behind"
echo "purge removed the package, its logs, state, crontab and user"

say "done: built, installed, tested, linted and purged"
