#!/usr/bin/env bash
# Installs the .deb with dpkg into a throwaway overlay of this machine's root file system (a
# private mount namespace: nothing reaches the real system), then, inside it:
#   - the files are in place: binary, units, udev rules, man page, completion, the conffile;
#     the system user exists; no unit is enabled or started;
#   - systemd-analyze verify passes on the installed units (commands and man page exist);
#   - /usr/bin/qscd-agent --version, and `tokens` as the qscd-agent user against a SoftHSM2 token
#     through p11-kit's proxy (the default module) and with --module; `jobs` makes the journal
#     in /var/lib/qscd-agent as the units' StateDirectory= would;
#   - the same `tokens` with writable+executable memory refused by the kernel (PR_SET_MDWE);
#   - dpkg -r keeps the conffile; dpkg -P leaves nothing but what Debian policy keeps: the
#     system user, dpkg's own records and logs, man-db's cache. Anything else in the overlay's
#     upper layer fails the test.
# Needs root (unshare, overlayfs, chroot): exit 77, which CTest reports as skipped, without it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${QSCD_IN_NAMESPACE:-}" ]; then
  deb=$(qscd_deb "$1")
  if [ "$(id -u)" -ne 0 ]; then
    echo "not root: skipped (the install test needs a mount namespace and chroot)"
    exit 77
  fi
  QSCD_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$deb"
fi
deb=$1

scratch=$(mktemp -d)
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root" "$scratch/mnt"
upper=$scratch/upper root=$scratch/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$scratch/work" "$root"
for fs in proc sys dev; do mount --rbind "/$fs" "$root/$fs"; done
# /run is a tmpfs on a real system (adduser's lock, systemd-analyze's scratch files): volatile,
# so not something a purge could leave behind.
mount -t tmpfs tmpfs "$root/run"
# Our own files (the .deb, the SoftHSM2 token) live outside the overlay, on /mnt inside.
mount --bind "$scratch/mnt" "$root/mnt"
cp "$deb" "$scratch/mnt/qscd-agent.deb"

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"; }
as_service_user() {
  in_root setpriv --reuid=qscd-agent --regid=qscd-agent --clear-groups \
    env HOME=/var/lib/qscd-agent SOFTHSM2_CONF=/mnt/softhsm2.conf QSCD_AGENT_STATE_DIR=/var/lib/qscd-agent "$@"
}
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "dpkg -i"
in_root dpkg -i /mnt/qscd-agent.deb

step "files, user, units not enabled"
for f in /usr/bin/qscd-agent /lib/systemd/system/qscd-agent-watch.service \
    /lib/systemd/system/qscd-agent-renew.service /lib/systemd/system/qscd-agent-renew.timer \
    /lib/udev/rules.d/70-qscd-agent.rules /usr/share/man/man1/qscd-agent.1.gz \
    /usr/share/bash-completion/completions/qscd-agent /etc/qscd-agent/agent.toml \
    /usr/share/doc/qscd-agent/copyright /usr/share/doc/qscd-agent/changelog.gz; do
  [ -f "$root$f" ] || fail "$f not installed"
done
in_root dpkg-query -W -f='${Conffiles}\n' qscd-agent | grep -q '^ /etc/qscd-agent/agent.toml ' \
  || fail "/etc/qscd-agent/agent.toml is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(in_root getent passwd qscd-agent) || fail "no qscd-agent user"
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/qscd-agent ] && [ "$shell" = /usr/sbin/nologin ] \
  || fail "qscd-agent user: uid $uid, home $home, shell $shell"
in_root getent group qscd-agent >/dev/null || fail "no qscd-agent group"
if enabled=$(find "$root/etc/systemd/system" -lname '*qscd-agent*' 2>/dev/null | grep .); then
  fail "enabled on install: $enabled"
fi
in_root man -w qscd-agent >/dev/null || fail "man qscd-agent finds no page"

step "systemd-analyze verify (installed)"
in_root systemd-analyze verify /lib/systemd/system/qscd-agent-watch.service \
  /lib/systemd/system/qscd-agent-renew.service /lib/systemd/system/qscd-agent-renew.timer

step "qscd-agent --version"
version=$(in_root /usr/bin/qscd-agent --version)
[ "$version" = "$(dpkg-deb -f "$deb" Version)" ] || fail "--version says '$version'"
echo "$version"

step "tokens against SoftHSM2, as the qscd-agent user"
mkdir "$scratch/mnt/tokens"
printf 'directories.tokendir = /mnt/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
  >"$scratch/mnt/softhsm2.conf"
in_root chown qscd-agent: /mnt/tokens
as_service_user softhsm2-util --init-token --free --label pkgtest --so-pin 12345678 --pin 123456 >/dev/null
# The shipped /etc/qscd-agent/agent.toml is read (no user config): it must load.
out=$(as_service_user /usr/bin/qscd-agent --json tokens) || fail "tokens (p11-kit proxy) failed: $out"
grep -q '"pkgtest"' <<<"$out" || fail "tokens through p11-kit's proxy does not list pkgtest: $out"
out=$(as_service_user /usr/bin/qscd-agent --module /usr/lib/softhsm/libsofthsm2.so tokens) \
  || fail "tokens --module failed: $out"
grep -q 'pkgtest' <<<"$out" || fail "tokens --module does not list pkgtest: $out"
echo "$out"

step "tokens with writable+executable memory refused (the units' MemoryDenyWriteExecute=)"
# prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), Linux 6.3 and later: the kernel's own form of
# what MemoryDenyWriteExecute= enforces with seccomp; kept across exec. p11-kit's proxy loads
# every registered module (SoftHSM2, and OpenSC where it is installed).
if [ "$(uname -m)" = x86_64 ] && perl -e 'syscall(157, 65, 1, 0, 0, 0) == 0 or exit 1'; then
  out=$(as_service_user perl -e 'syscall(157, 65, 1, 0, 0, 0) == 0 or die "prctl: $!\n"; exec @ARGV' \
    /usr/bin/qscd-agent --json tokens) || fail "tokens under MDWE failed: $out"
  grep -q '"pkgtest"' <<<"$out" || fail "tokens under MDWE does not list pkgtest: $out"
  echo "tokens under MDWE: pkgtest listed"
else
  echo "this kernel has no PR_SET_MDWE (before 6.3) or is not x86_64: not checked"
fi

step "the journal in the service's state folder"
# What StateDirectory=qscd-agent (StateDirectoryMode=0700) makes before the service starts.
install -d -m 0700 "$root/var/lib/qscd-agent"
in_root chown qscd-agent: /var/lib/qscd-agent
as_service_user /usr/bin/qscd-agent jobs
[ -n "$(ls -A "$root/var/lib/qscd-agent")" ] || fail "jobs made no journal in /var/lib/qscd-agent"
# The credentials an admin puts there for the units.
install -m 0600 /dev/null "$root/etc/qscd-agent/pin"
install -m 0600 /dev/null "$root/etc/qscd-agent/api-key"

step "dpkg -r: the conffile stays"
in_root dpkg -r qscd-agent
[ ! -e "$root/usr/bin/qscd-agent" ] || fail "binary left after remove"
[ -f "$root/etc/qscd-agent/agent.toml" ] || fail "remove took the conffile"
in_root dpkg-query -W -f='${db:Status-Status}\n' qscd-agent | grep -qx config-files \
  || fail "not in config-files state after remove"

step "dpkg -P: nothing left but what policy keeps"
in_root dpkg -P qscd-agent
in_root getent passwd qscd-agent >/dev/null || fail "purge removed the system user (policy keeps it)"
# Every entry of the upper layer is something the install changed. A directory that exists
# below was only copied up for what changed inside it.
kept='^/etc/(passwd|group|shadow|gshadow)-?$|^/etc/\.pwd\.lock$|^/var/lib/dpkg/|^/var/log/(dpkg\.log|alternatives\.log)$|^/var/cache/man/|^/var/cache/debconf/'
left=()
while IFS= read -r -d '' path; do
  rel=${path#"$upper"}
  [ -d "$path" ] && [ ! -L "$path" ] && [ -d "$rel" ] && continue
  if [[ $rel =~ $kept ]]; then
    echo "kept: $rel"
    continue
  fi
  left+=("$rel")
done < <(find "$upper" -mindepth 1 -print0)
if [ ${#left[@]} -gt 0 ]; then
  printf 'left after purge: %s\n' "${left[@]}" >&2
  fail "purge left files behind"
fi
echo "purged: only the system user and dpkg's records remain"
