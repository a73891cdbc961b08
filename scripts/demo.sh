#!/usr/bin/env bash
# The main job on a fresh machine: start the daemon, show what it serves (tsengine info), build the
# busybox image from the host's busybox-static if it is missing, run a container that prints its
# output, stop the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
tsengine() { node cli/dist/src/main.js "$@"; }
sock=/run/tsengine/tsengine.sock
log=$(mktemp /tmp/tsengine-daemon.XXXXXX.log)
rootfs=""
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; fi
  [ -n "$rootfs" ] && rm -rf "$rootfs"
  rm -f "$log"
}
trap cleanup EXIT
if [ ! -S "$sock" ]; then
  node cli/dist/src/main.js daemon --log-level warn 2>"$log" &
  daemon=$!
  for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { cat "$log" >&2; echo "the daemon did not start" >&2; exit 1; }
fi
tsengine info

# busybox:latest from Debian's busybox-static: the static binary, every applet linked to it.
if [ -z "$(tsengine images -q busybox:latest)" ]; then
  busybox=/bin/busybox
  [ -x "$busybox" ] || { echo "$busybox is missing: run scripts/install-deps.sh (busybox-static)" >&2; exit 1; }
  rootfs=$(mktemp -d /tmp/tsengine-busybox.XXXXXX)
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list-full); do
    [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf - . |
    tsengine import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - busybox:latest >/dev/null
  echo "built busybox:latest from $busybox"
fi

echo '$ tsengine run --rm busybox echo hello from a tsengine container'
tsengine run --rm busybox echo hello from a tsengine container
