# shellcheck shell=bash
# Chromium from Debian's chromium package, for the browser tests of the page
# (pkg/web, driven headless by chromedp). Not a server: nothing to start.

chromium_install() {
  if command -v chromium >/dev/null || [[ -n "${TALLY_CHROMIUM:-}" ]]; then
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    die "chromium not found (the browser tests need it). Install the Debian package first: sudo apt-get install -y chromium (or set TALLY_CHROMIUM=/path/to/chrome)"
  fi
  say "chromium: installing Debian package chromium ..."
  mkdir -p "$LOG_DIR"
  local aptlog="$LOG_DIR/apt-chromium.log"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >"$aptlog" 2>&1; then
    show_log_tail "$aptlog"
    die "chromium: apt-get install chromium failed (full output: $aptlog)"
  fi
  say "chromium: $(chromium --version 2>/dev/null || echo installed)"
}
