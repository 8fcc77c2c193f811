#!/usr/bin/env bash
# Newcomer check of README command 2, the way a new user meets it: removes Debian's chromium and
# chromium-driver (apt-get remove: run it on a development machine, as root), clones this checkout afresh
# into /tmp/fresh and runs the README's second set-up line there with an empty HOME and no MINDSET_HOME.
# It prints the test run's last lines, its exit code and how long it took.
set -u
apt-get remove -y -qq chromium chromium-driver chromium-common >/dev/null 2>&1; apt-get autoremove -y -qq >/dev/null 2>&1
command -v chromium && echo "chromium still present!"
rm -rf /tmp/fresh /tmp/emptyhome; mkdir -p /tmp/emptyhome
git clone -q "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" /tmp/fresh && cd /tmp/fresh
cmd=$(awk '/^```/{f=!f; next} f && NF' README.md | sed -n 2p)
echo "+ $cmd"
start=$(date +%s)
env -u MINDSET_HOME -u HF_HOME -u XDG_CACHE_HOME HOME=/tmp/emptyhome CI=true bash -c "$cmd" 2>&1 | tail -25
echo "rc=${PIPESTATUS[0]} seconds=$(( $(date +%s) - start ))"
