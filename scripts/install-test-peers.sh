#!/usr/bin/env bash
# Install the Debian packages that camhub's test peers need (see shared TESTBED): a real PostgreSQL
# for the catalog tests and gst-rtsp-server for the recorder tests.
#
# Idempotent: a package already installed is left alone, and `apt-get update` runs only when
# something is missing. Must run as root (CI and the developer machines are root; elsewhere use sudo).
#
#   sudo scripts/install-test-peers.sh          # install what is missing
#   scripts/install-test-peers.sh --check       # exit 1 and list what is missing; install nothing
set -euo pipefail

# The catalog tests (tests/peers.py starts a throwaway cluster with initdb/pg_ctl from this package).
PACKAGES=(postgresql)

# --- GStreamer: a real RTSP server for the recorder tests (TESTBED "RTSP: gst-rtsp-server") -------------
# The server script runs under the system interpreter (/usr/bin/python3, which has `gi`), not the venv.
# (TESTBED also lists gstreamer1.0-x; the server runs headless and does not need it.)
PACKAGES+=(
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-rtsp
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad
)
# --- end of GStreamer ----------------------------------------------------------------------------------

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "install-test-peers: unknown argument: $1 (try --help)" >&2
    exit 2
    ;;
esac

die() {
  echo "install-test-peers: $*" >&2
  exit 1
}

command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 ||
  die "this script needs a Debian-like system (dpkg-query and apt-get); install these packages by hand: ${PACKAGES[*]}"

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "install-test-peers: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi
if ((check_only)); then
  echo "install-test-peers: missing: ${missing[*]}" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  die "missing packages (${missing[*]}); run as root: sudo $0"
fi

echo "install-test-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (unattended upgrades, a parallel job) instead of failing on its lock.
apt_options=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold)
apt-get "${apt_options[@]}" update -qq || die "apt-get update failed"
apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}" ||
  die "apt-get install failed for: ${missing[*]}"

# Prove the installed peers are usable, not only that dpkg says so.
still_missing=()
for package in "${missing[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
  [[ $status == ii* ]] || still_missing+=("$package")
done
((${#still_missing[@]} == 0)) || die "still not installed after apt-get: ${still_missing[*]}"
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || die "postgresql is installed but no initdb found"
id -u postgres >/dev/null 2>&1 || die "postgresql is installed but there is no 'postgres' user"
echo "install-test-peers: done"
