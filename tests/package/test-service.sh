#!/usr/bin/env bash
# The units under a real systemd: the .deb installed in a throwaway overlay of the root file
# system, booted with systemd-nspawn. Inside, with the units' whole sandbox:
#   - qscd-agent-watch.service does not start before /etc/qscd-agent/pin and api-key exist
#     (condition, not a failure);
#   - qscd-agent-renew.service, with a drop-in that runs `tokens`, then the unit's own
#     `renew --all --no-wait` (with --json; the token holds no certificate, so nothing is due and
#     the CA is not asked), then `jobs`: the PIN arrives through
#     LoadCredential (the token is logged in), the SoftHSM2 token is listed through p11-kit's
#     proxy as the qscd-agent user, and the journal is made in StateDirectory /var/lib/qscd-agent;
#   - qscd-agent-watch.service, configured (a drop-in gives it the SoftHSM2 store), is active once
#     it sent READY=1 (Type=notify), shows its STATUS=, reloads on `systemctl reload` (SIGHUP),
#     and stops on `systemctl stop` (SIGTERM) with exit 0 and no restart.
# Needs root and systemd-nspawn: exit 77 (skipped) without them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${QSCD_IN_NAMESPACE:-}" ]; then
  deb=$(qscd_deb "$1")
  if [ "$(id -u)" -ne 0 ] || ! command -v systemd-nspawn >/dev/null; then
    echo "not root, or no systemd-nspawn (systemd-container): skipped"
    exit 77
  fi
  QSCD_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$deb"
fi
deb=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# nspawn wants /run on a tmpfs; in this mount namespace only.
mount -t tmpfs tmpfs /run
scratch=$(mktemp -d)
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
root=$scratch/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
cp "$deb" "$root/root/qscd-agent.deb"
for fs in proc sys dev; do mount --rbind "/$fs" "$root/$fs"; done
chroot "$root" dpkg -i /root/qscd-agent.deb >/dev/null
test_dir=/srv/qscd-service-test
mkdir -p "$root$test_dir/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$test_dir" \
  >"$root$test_dir/softhsm2.conf"
chroot "$root" chown qscd-agent: "$test_dir/tokens"
chroot "$root" setpriv --reuid=qscd-agent --regid=qscd-agent --clear-groups \
  env SOFTHSM2_CONF="$test_dir/softhsm2.conf" \
  softhsm2-util --init-token --free --label service1 --so-pin 12345678 --pin 123456 >/dev/null
for fs in proc sys dev; do umount -R "$root/$fs"; done

# The clang ASan build (scripts/sanitize): LeakSanitizer stops the process's threads with ptrace,
# which the units' system call filter forbids, and then fails the run. Inside the units only, the
# leak check is off; ASan and UBSan stay on, and every other test checks the same code for leaks.
asan_env=
if [ -n "${ASAN_OPTIONS:-}" ]; then asan_env="Environment=ASAN_OPTIONS=detect_leaks=0"; fi
mkdir -p "$root/etc/systemd/system/qscd-agent-renew.service.d"
cat >"$root/etc/systemd/system/qscd-agent-renew.service.d/test.conf" <<EOF2
[Service]
$asan_env
ExecStart=
ExecStart=/usr/bin/qscd-agent --json tokens --pin-source file:\${CREDENTIALS_DIRECTORY}/pin --api-key-source file:\${CREDENTIALS_DIRECTORY}/api-key
ExecStart=/usr/bin/qscd-agent --json renew --all --no-wait --pin-source file:\${CREDENTIALS_DIRECTORY}/pin --api-key-source file:\${CREDENTIALS_DIRECTORY}/api-key
ExecStart=/usr/bin/qscd-agent jobs
Environment=SOFTHSM2_CONF=$test_dir/softhsm2.conf
ReadWritePaths=$test_dir/tokens
EOF2
mkdir -p "$root/etc/systemd/system/qscd-agent-watch.service.d"
cat >"$root/etc/systemd/system/qscd-agent-watch.service.d/test.conf" <<EOF2
[Service]
$asan_env
Environment=SOFTHSM2_CONF=$test_dir/softhsm2.conf
ReadWritePaths=$test_dir/tokens
EOF2
cat >"$root$test_dir/run.sh" <<'EOF2'
#!/bin/sh
out=/srv/qscd-service-test
systemctl start qscd-agent-watch.service
systemctl show -p ActiveState,Result,ConditionResult qscd-agent-watch.service >$out/watch-unconfigured
(umask 077; echo 123456 >/etc/qscd-agent/pin; echo test-api-key >/etc/qscd-agent/api-key)
systemctl start qscd-agent-renew.service; echo $? >$out/renew-rc
journalctl --no-pager -o cat -u qscd-agent-renew.service >$out/renew-log
ls -ln /var/lib/qscd-agent >$out/state
stat -c '%U %a' /var/lib/qscd-agent >>$out/state
systemctl start qscd-agent-watch.service
systemctl show -p ActiveState,StatusText qscd-agent-watch.service >$out/watch-started
systemctl reload qscd-agent-watch.service
sleep 1
systemctl show -p ActiveState qscd-agent-watch.service >$out/watch-reloaded
systemctl stop qscd-agent-watch.service
systemctl show -p Result,ExecMainStatus,NRestarts qscd-agent-watch.service >$out/watch-configured
journalctl --no-pager -o cat -u qscd-agent-watch.service >$out/watch-log
touch $out/done
systemctl poweroff
EOF2
chmod +x "$root$test_dir/run.sh"
cat >"$root/etc/systemd/system/qscd-service-test.service" <<EOF2
[Unit]
After=multi-user.target
[Service]
Type=oneshot
ExecStart=$test_dir/run.sh
[Install]
WantedBy=multi-user.target
EOF2
ln -s /etc/systemd/system/qscd-service-test.service "$root/etc/systemd/system/multi-user.target.wants/"
# What this machine runs that the container need not (and the wait for a network it has not).
for unit in systemd-networkd-wait-online.service postgresql.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

timeout 120 systemd-nspawn -q -D "$root" --boot --private-network --register=no --keep-unit \
  >"$scratch/boot.log" 2>&1 || true
r=$root$test_dir
[ -f "$r/done" ] || { sed 's/\x1b\[[0-9;]*m//g' "$scratch/boot.log" | tail -40; fail "the container did not run the test"; }

echo "== watch, unconfigured"; cat "$r/watch-unconfigured"
grep -qx 'ConditionResult=no' "$r/watch-unconfigured" && grep -qx 'Result=success' "$r/watch-unconfigured" \
  || fail "qscd-agent-watch.service started, or failed, before the PIN and API key were there"
echo "== renew (tokens, renew, jobs)"; cat "$r/renew-log"
[ "$(cat "$r/renew-rc")" = 0 ] || fail "qscd-agent-renew.service failed"
grep -q '"label": "service1"' "$r/renew-log" || fail "the service did not list the SoftHSM2 token"
grep -q '"logged_in": true' "$r/renew-log" || fail "the PIN from LoadCredential did not log in"
grep -q '"dry_run": false' "$r/renew-log" && grep -q '"due": 0' "$r/renew-log" \
  || fail "renew --all --no-wait did not run in the renew unit's sandbox"
echo "== state"; cat "$r/state"
grep -q ' journal.sqlite$' "$r/state" || fail "no journal in /var/lib/qscd-agent"
tail -1 "$r/state" | grep -qx 'qscd-agent 700' || fail "/var/lib/qscd-agent is not qscd-agent's, mode 700"
echo "== watch, configured"; cat "$r/watch-started" "$r/watch-reloaded" "$r/watch-configured" "$r/watch-log"
grep -qx 'ActiveState=active' "$r/watch-started" || fail "qscd-agent-watch.service is not active after start (READY=1)"
grep -q '^StatusText=watching 1 token(s)' "$r/watch-started" || fail "qscd-agent-watch.service sent no STATUS= with the token count"
grep -qx 'ActiveState=active' "$r/watch-reloaded" || fail "qscd-agent-watch.service did not survive a reload"
grep -q "token 'service1'" "$r/watch-log" || fail "the watcher did not see the SoftHSM2 token"
grep -q 'config reloaded' "$r/watch-log" || fail "the watcher did not reload its config on SIGHUP"
grep -qx 'Result=success' "$r/watch-configured" && grep -qx 'ExecMainStatus=0' "$r/watch-configured" \
  && grep -qx 'NRestarts=0' "$r/watch-configured" || fail "qscd-agent-watch.service: expected exit 0 on stop and no restart"
echo "the units ran under systemd with their sandbox"
