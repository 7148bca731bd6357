#!/usr/bin/env bash
# Installs Debian's prometheus package for the end-to-end scrape test, where possible.
set -u
command -v prometheus >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || echo "prometheus could not be installed; its end-to-end test will be skipped" >&2
  # The package starts a system service on :9090; the tests run their own instance on a
  # port of their own, so the service may keep running (it is stopped through its init
  # script where there is one; never by process name, which could hit another user's).
  service prometheus stop >/dev/null 2>&1 || true
else
  echo "not root or no apt-get: prometheus end-to-end test will be skipped" >&2
fi
exit 0
