#!/usr/bin/env bash
# A throwaway single-node Ceph cluster (1 mon, 1 memstore OSD, no mgr) with radosgw (S3)
# on 127.0.0.1, for the aiobucket tests. Ceph 16.2 from Debian 12:
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
#
# Usage: rgw.sh start|stop
# Env:   RGW_DIR   state directory (wiped on start; logs in $RGW_DIR/log)  [default: $PWD/.rgw]
#        RGW_PORT  S3 port [9105];  RGW_MON_PORT_V1 [16789];  RGW_MON_PORT_V2 [13300]
#        RGW_ACCESS_KEY / RGW_SECRET_KEY  the S3 user's keys [aiobucket-test / aiobucket-test-secret]
# On success `start` prints "RGW ready: endpoint=http://127.0.0.1:PORT"; `stop` stops radosgw,
# then the OSD, then the mon, each by the PID recorded at start.
set -euo pipefail
RGW_DIR=${RGW_DIR:-$PWD/.rgw}
RGW_PORT=${RGW_PORT:-9105}
MON_V1=${RGW_MON_PORT_V1:-16789}
MON_V2=${RGW_MON_PORT_V2:-13300}
AK=${RGW_ACCESS_KEY:-aiobucket-test}
SK=${RGW_SECRET_KEY:-aiobucket-test-secret}
export CEPH_CONF=$RGW_DIR/ceph.conf

die() {
  echo "rgw.sh: $*" >&2
  for f in "$RGW_DIR"/log/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  stop_all
  exit 1
}

stop_all() {
  for d in rgw osd mon; do
    pid=$(cat "$RGW_DIR/run/pid.$d" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || { rm -f "$RGW_DIR/run/pid.$d"; continue; }
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$RGW_DIR/run/pid.$d"
  done
}

start() {
  for bin in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph; do
    command -v "$bin" >/dev/null || { echo "rgw.sh: $bin not found; install: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw" >&2; exit 3; }
  done
  rm -rf "$RGW_DIR"; mkdir -p "$RGW_DIR"/{run,log,mon,osd,rgw}
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  cat > "$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
paxos propose interval = 0.01
paxos min wait = 0.001
mon lease = 1
mon warn on pool no redundancy = false
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$cluster-\$name.asok
log file = $RGW_DIR/log/\$cluster-\$name.log
pid file = $RGW_DIR/run/\$name.pid
mon data = $RGW_DIR/mon/\$cluster-\$id
osd data = $RGW_DIR/osd/\$cluster-\$id
keyring = $RGW_DIR/keyring
setuser match path = $RGW_DIR/nonexistent
ms bind ipv6 = false
ms mon client mode = crc
ms client mode = crc
debug ms = 0

[osd]
osd objectstore = memstore
memstore device bytes = 6442450944
osd max object name len = 2048
osd max object namespace len = 64
osd memory target = 1073741824

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $RGW_DIR/rgw
rgw thread pool size = 128
rgw enable apis = s3, admin
log file = $RGW_DIR/log/rgw.log
EOF
  touch "$RGW_DIR/keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$RGW_DIR/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$RGW_DIR/monmap" --setuser root --setgroup root >"$RGW_DIR/log/mon-mkfs.out" 2>&1 \
    || die "ceph-mon --mkfs failed"
  setsid ceph-mon -f -i a --setuser root --setgroup root >"$RGW_DIR/log/mon.out" 2>&1 </dev/null &
  echo $! >"$RGW_DIR/run/pid.mon"
  for _ in $(seq 1 150); do ceph --connect-timeout 2 mon stat >/dev/null 2>&1 && break; sleep 0.1; done
  ceph --connect-timeout 2 mon stat >/dev/null 2>&1 || die "the mon did not come up"

  local osd_uuid osd_id
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_id=$(ceph osd new "$osd_uuid")
  mkdir -p "$RGW_DIR/osd/ceph-$osd_id"
  ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" --setuser root --setgroup root >"$RGW_DIR/log/osd-mkfs.out" 2>&1 \
    || die "ceph-osd --mkfs failed"
  setsid ceph-osd -f -i "$osd_id" --setuser root --setgroup root >"$RGW_DIR/log/osd.out" 2>&1 </dev/null &
  echo $! >"$RGW_DIR/run/pid.osd"
  for _ in $(seq 1 300); do ceph osd stat 2>/dev/null | grep -q "1 up" && break; sleep 0.1; done
  ceph osd stat 2>/dev/null | grep -q "1 up" || die "the OSD did not come up"

  setsid radosgw -f -n client.rgw.a --setuser root --setgroup root >"$RGW_DIR/log/rgw.out" 2>&1 </dev/null &
  echo $! >"$RGW_DIR/run/pid.rgw"
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break; sleep 0.1; done
  curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" || die "radosgw did not come up"
  radosgw-admin -n client.admin user create --uid=aiobucket --display-name=aiobucket \
    --access-key="$AK" --secret="$SK" >/dev/null || die "radosgw-admin user create failed"
  echo "RGW ready: endpoint=http://127.0.0.1:$RGW_PORT access_key=$AK"
}

case "${1:-}" in
start) trap 'stop_all' ERR; start ;;
stop) stop_all ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
