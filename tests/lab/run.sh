#!/usr/bin/env bash
# Real-kernel lab runner for galactic's privileged tests.
#
#   bash tests/lab/run.sh [COMMAND...]
#
# Runs COMMAND (default: deno test --allow-all --cached-only tests/privileged/)
# as root with the repo root as cwd, on a kernel that has what SPEC §5 needs
# (VRF devices, seg6local End.DT46 vrftable):
#   - on the host, when its kernel passes a probe (or LAB_MODE=host);
#   - otherwise (or LAB_MODE=vm) in a throwaway qemu VM booting Debian's own
#     kernel (linux-image-amd64, unpacked under .lab/, never installed) with
#     the host root shared read-only over 9p and the repo read-write.
# COMMAND's stdout/stderr stream to ours; its exit status is ours. See
# tests/lab/README.md for the environment variables.
set -euo pipefail

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$LAB_SRC/../.." && pwd -P)
CACHE=$REPO/.lab                        # gitignored
LAB_TIMEOUT=${LAB_TIMEOUT:-1500}
LAB_MODE=${LAB_MODE:-auto}              # auto | host | vm
LAB_ACCEL=${LAB_ACCEL:-auto}            # auto | kvm | tcg
LAB_MEM=${LAB_MEM:-2048}                # MiB
LAB_WARM=${LAB_WARM:-1}                 # 0: skip warming the deno cache
DENO=$REPO/node_modules/.bin/deno

# Modules the guest needs, by name. Load order (and every dependency) comes
# from the guest kernel's modules.dep, see resolve_modules.
GUEST_MODULES=(
  # 9p root and shares over virtio-pci; overlay for the writable DENO_DIR
  virtio_pci 9pnet_virtio 9p overlay
  # the data plane under test
  vrf veth dummy
  # libcrc32c (nf_tables, conntrack) soft-depends on a crc32c implementation;
  # insmod does not follow softdeps, so name the generic one explicitly
  crc32c_generic
  # iptables/ip6tables (Debian 12 = iptables-nft): `-A FORWARD -o X -j ACCEPT`
  # needs nf_tables; nft_compat + xt_* serve matches/targets nft has no
  # native form for (-m comment, -p tcp --dport, conntrack); *_tables and
  # *table_filter keep iptables-legacy working too
  nf_tables nft_compat xt_comment xt_tcpudp xt_conntrack xt_mark
  ip_tables iptable_filter ip6_tables ip6table_filter
)

START_NS=$(date +%s%N)
log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }
elapsed() { local ns=$(($(date +%s%N) - ${1:-$START_NS})); printf '%d.%01d' $((ns / 1000000000)) $((ns / 100000000 % 10)); }

# ---------------------------------------------------------------- tooling

# apt_install PKG...: install the missing ones, refreshing the package lists
# only when a first attempt fails (fresh CI images ship without lists).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  # A normal user can run the VM mode once the packages are there.
  [[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

# What COMMAND needs in either mode (the VM sees the host's /usr):
# iproute2 and iptables for the data plane, host-device for delegation.
ensure_test_tools() {
  apt_install iproute2 iptables containernetworking-plugins procps
  [[ -x $DENO ]] || { log "node_modules/.bin/deno missing: npm ci"; (cd "$REPO" && npm ci --no-audit --no-fund >&2); }
}

ensure_vm_tools() {
  # busybox-static, not busybox: the initramfs has no libc.
  # kmod for depmod: the kernel .deb ships no modules.dep (postinst makes it).
  apt_install qemu-system-x86 busybox-static cpio kmod
}

require_root() { [[ $(id -u) == 0 ]] || die "host mode must run as root (creates netns, VRFs, routes); a normal user gets the VM, where the job runs as root"; }

# ------------------------------------------------------------ host probe

# Does the running kernel do what the tests need? Probed in a throwaway
# netns so the host's own network is never touched.
host_kernel_ok() {
  local ns="labprobe$$" ok=1
  ip netns add "$ns" 2>/dev/null || return 1
  {
    ip -n "$ns" link add labvrf type vrf table 4242 &&
      ip -n "$ns" link set labvrf up &&
      ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/vrf/strict_mode' &&
      ip -n "$ns" -6 route add fc00:4242::1/128 encap seg6local action End.DT46 vrftable 4242 dev labvrf
  } >/dev/null 2>&1 && ok=0
  ip netns del "$ns" 2>/dev/null || true
  return "$ok"
}

# ------------------------------------------------------------- deno cache

deno_dir() { "$DENO" info --json 2>/dev/null | sed -n 's/^ *"denoDir": *"\(.*\)",\{0,1\}$/\1/p'; }

# warm_deno_cache COMMAND...: the guest has no network, so everything COMMAND
# needs must already be in DENO_DIR: fetch the module graph of every test
# file. And the guest's DENO_DIR writes are thrown away, so a type-check done
# there is redone on every run (10+ s under tcg): when COMMAND is `deno test`,
# run the same thing with --no-run here so the guest hits the check cache.
# Failures only warn: the guest run reports them properly.
warm_deno_cache() {
  [[ $LAB_WARM == 1 ]] || return 0
  local t0 lock files=()
  t0=$(date +%s%N)
  mapfile -t files < <(cd "$REPO" && find tests -type f \( -name '*_test.ts' -o -name '*.test.ts' \) \
    -not -path '*/node_modules/*' 2>/dev/null | sort)
  # Warming must not edit the repo: resolve against a scratch copy of the
  # lock file (deno would otherwise add entries for work-in-progress tests).
  lock=$(mktemp)
  [[ -f $REPO/deno.lock ]] && cp "$REPO/deno.lock" "$lock"
  if ((${#files[@]})); then
    (cd "$REPO" && "$DENO" install --quiet --lock="$lock" --entrypoint "${files[@]}") >&2 ||
      log "warning: deno install --entrypoint failed; the guest may miss modules"
  fi
  if [[ ${1:-} == *deno && ${2:-} == test ]]; then
    (cd "$REPO" && "$1" test --no-run --lock="$lock" "${@:3}") >/dev/null 2>&1 ||
      log "note: deno test --no-run failed on the host (type errors?); the guest run will say"
  fi
  rm -f "$lock"
  log "deno cache warm ($(elapsed "$t0")s)"
}

# ----------------------------------------------------------- guest kernel

# Sets KVER and KROOT (the unpacked kernel package under .lab/kernel/).
fetch_kernel() {
  local pkg=${LAB_KERNEL_PKG:-}
  if [[ -z $pkg ]]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || true
    if [[ -z $pkg ]]; then apt-get update -q >/dev/null || true
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || true
    fi
    # Offline with a cache: reuse whatever kernel is there.
    [[ -n $pkg ]] || pkg=$(find "$CACHE/kernel" -mindepth 1 -maxdepth 1 -printf 'linux-image-%f\n' 2>/dev/null | sort -V | tail -n1)
    [[ -n $pkg ]] || die "cannot determine the linux-image-amd64 kernel package"
  fi
  KVER=${pkg#linux-image-}
  KROOT=$CACHE/kernel/$KVER
  if [[ ! -f $KROOT/boot/vmlinuz-$KVER || ! -f $KROOT/lib/modules/$KVER/modules.dep ]]; then
    log "fetching $pkg"
    local tmp; tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null) ||
      { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
    rm -rf "$KROOT" && mkdir -p "$KROOT"
    dpkg-deb -x "$tmp"/*.deb "$tmp/x" && mv "$tmp/x/boot" "$tmp/x/lib" "$KROOT/"
    rm -rf "$tmp"
    depmod -b "$KROOT" "$KVER"
    # Older kernels are 400 MB each: keep only the current one.
    find "$CACHE/kernel" -mindepth 1 -maxdepth 1 ! -name "$KVER" -exec rm -rf {} +
  fi
}

# resolve_modules NAME...: print module files (relative to the modules dir)
# in a valid load order: every dependency from modules.dep before its user,
# each once (depth-first). Modules built into the kernel are skipped; an
# unknown name is an error. (awk: a bash version takes seconds.)
resolve_modules() {
  local moddir=$KROOT/lib/modules/$KVER
  awk -v want="$*" '
    function modname(f) { sub(/^.*\//, "", f); sub(/\.ko.*$/, "", f); gsub(/-/, "_", f); return f }
    function visit(m,   n, i, d) {
      if (m in seen) return
      seen[m] = 1
      if (!(m in path)) {
        if (m in builtin) return
        printf "lab: module %s is neither in modules.dep nor built in\n", m > "/dev/stderr"; bad = 1; return
      }
      n = split(deps[m], d, " ")
      for (i = 1; i <= n; i++) visit(modname(d[i]))
      print path[m]
    }
    FILENAME ~ /modules\.builtin$/ { builtin[modname($0)] = 1; next }
    { f = $1; sub(/:$/, "", f); m = modname(f); path[m] = f; $1 = ""; deps[m] = $0 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) visit(w[i]); exit bad }
  ' "$moddir/modules.builtin" "$moddir/modules.dep"
}
modname() { local b=${1##*/}; b=${b%%.ko*}; printf '%s' "${b//-/_}"; }

# Sets INITRAMFS. Cached by content: kernel, module list, init script.
build_initramfs() {
  local order key dir f
  order=$(resolve_modules "${GUEST_MODULES[@]}") || die "cannot resolve guest modules"
  mapfile -t MODULE_ORDER < <(while IFS= read -r f; do modname "$f"; echo; done <<<"$order")
  key=$( { echo "$KVER"; echo "$order"; cat "$LAB_SRC/guest-init.sh"; } | sha256sum | cut -c1-16)
  INITRAMFS=$CACHE/initramfs/$KVER-$key.cpio.gz
  [[ -f $INITRAMFS ]] && return 0
  log "building initramfs ($(wc -l <<<"$order") modules)"
  dir=$(mktemp -d "$CACHE/ird.XXXXXX")
  mkdir -p "$dir"/{bin,proc,sys,dev,newroot,mods,lib}
  cp /bin/busybox "$dir/bin/busybox"
  install -m 755 "$LAB_SRC/guest-init.sh" "$dir/init"
  while IFS= read -r f; do
    case $f in # busybox insmod wants plain .ko
      *.ko.xz) xz -dc "$KROOT/lib/modules/$KVER/$f" >"$dir/mods/$(modname "$f").ko" ;;
      *.ko.zst) zstd -qdc "$KROOT/lib/modules/$KVER/$f" >"$dir/mods/$(modname "$f").ko" ;;
      *) cp "$KROOT/lib/modules/$KVER/$f" "$dir/mods/$(modname "$f").ko" ;;
    esac
  done <<<"$order"
  printf '%s\n' "${MODULE_ORDER[@]}" >"$dir/mods/order"
  mkdir -p "$CACHE/initramfs"
  find "$CACHE/initramfs" -name "$KVER-*.cpio.gz" -delete
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRAMFS.tmp" && mv "$INITRAMFS.tmp" "$INITRAMFS"
  rm -rf "$dir"
}

# kvm when /dev/kvm really works (qemu can create a KVM machine), else tcg.
pick_accel() {
  [[ $LAB_ACCEL != auto ]] && { ACCEL=$LAB_ACCEL; return; }
  ACCEL=tcg
  [[ -r /dev/kvm && -w /dev/kvm ]] || return 0
  # No vmx/svm flag: /dev/kvm is a software backend (e.g. kvm-pvm on a nested
  # cloud VM) that only boots specially built guest kernels.
  grep -qwE 'vmx|svm' /proc/cpuinfo || { log "/dev/kvm present but no vmx/svm CPU flag: using tcg"; return 0; }
  printf 'info kvm\nquit\n' |
    timeout 20 qemu-system-x86_64 -accel kvm -machine pc -cpu host -nodefaults -no-user-config \
      -display none -monitor stdio -S 2>/dev/null | grep -q 'kvm support: enabled' && ACCEL=kvm
  return 0
}

# ------------------------------------------------------------------ modes

run_host() {
  require_root
  KVER=$(uname -r)
  log "host mode: $KVER"
  cd "$REPO"
  timeout -k 10 "$LAB_TIMEOUT" "$@" &
  CHILD=$!
  set +e; wait "$CHILD"; STATUS=$?; set -e
  CHILD=
}

# Everything a run creates lives in RUN (removed on exit) or is a child
# process listed here (killed on exit/interrupt/timeout).
RUN="" CHILD="" TAILS=()
# shellcheck disable=SC2317  # invoked from traps
cleanup() {
  local pid
  [[ -n $CHILD ]] && kill "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
  for pid in "${TAILS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n $RUN ]] && rm -rf "$RUN"
  return 0
}
# shellcheck disable=SC2317
on_signal() { log "interrupted"; cleanup; trap - EXIT; exit "$1"; }

run_vm() {
  local lock
  ensure_vm_tools
  mkdir -p "$CACHE"
  # Concurrent runs share the .lab cache: serialise filling it.
  exec {lock}>"$CACHE/.lock"
  flock "$lock"
  fetch_kernel
  build_initramfs
  exec {lock}>&-
  pick_accel
  warm_deno_cache "$@"
  local denodir; denodir=$(deno_dir)
  [[ -n $denodir ]] && mkdir -p "$denodir"

  RUN=$(mktemp -d "$CACHE/run.XXXXXX")
  : >"$RUN/stdout"; : >"$RUN/stderr"
  {
    printf 'LAB_REPO=%q\nLAB_DENO_DIR=%q\nLAB_KROOT=%q\n' "$REPO" "$denodir" "$KROOT"
  } >"$RUN/lab.env"
  write_job "$denodir" "$@" >"$RUN/job.sh"

  log "vm mode: $KVER; modules: ${MODULE_ORDER[*]}"
  start_qemu
  # /dev/kvm can exist and still not boot a stock kernel (e.g. a PVM-only
  # nested host, where qemu spins at 100% CPU forever): if the guest has not
  # reached the job within LAB_KVM_GRACE seconds, retry under TCG.
  if [[ $ACCEL == kvm && $LAB_ACCEL == auto ]] && ! wait_for_boot "${LAB_KVM_GRACE:-30}"; then
    log "kvm guest did not boot within ${LAB_KVM_GRACE:-30}s; falling back to tcg"
    kill "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true
    ACCEL=tcg; start_qemu
  fi
  tail -n +1 -s 0.2 -f --pid="$CHILD" "$RUN/stdout" &
  TAILS+=($!)
  tail -n +1 -s 0.2 -f --pid="$CHILD" "$RUN/stderr" >&2 &
  TAILS+=($!)
  local qrc
  set +e; wait "$CHILD"; qrc=$?; set -e
  CHILD=
  wait "${TAILS[@]}" 2>/dev/null || true
  TAILS=()
  STATUS=$(<"$RUN/exit-code")
  BOOT=$(cat "$RUN/boot-seconds" 2>/dev/null || echo "?")
  if ((qrc == 124 || qrc == 137)); then
    log "timeout: killed the VM after ${LAB_TIMEOUT}s"; STATUS=124
  elif ((qrc != 0)); then
    log "qemu exited with $qrc"; ((STATUS != 0)) || STATUS=255
  fi
}

# start_qemu: boot the guest in the background (CHILD = its timeout(1)
# wrapper, which enforces LAB_TIMEOUT and forwards our kill to qemu).
# Serial console (kernel + lab-init lines) goes to our stderr; the job's own
# stdout/stderr are files on the control share, streamed by tail.
start_qemu() {
  local cpu=max smp
  [[ $ACCEL == kvm ]] && cpu=host
  smp=$(nproc); ((smp > 4)) && smp=4
  log "booting: $ACCEL, $smp cpu, $LAB_MEM MiB"
  echo 255 >"$RUN/exit-code"; rm -f "$RUN/boot-seconds"
  timeout -k 10 "$LAB_TIMEOUT" qemu-system-x86_64 \
    -accel "$ACCEL" -machine pc -cpu "$cpu" -smp "$smp" -m "$LAB_MEM" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot -nic none \
    -chardev stdio,id=con,signal=off -serial chardev:con \
    -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$INITRAMFS" \
    -append "console=ttyS0 panic=-1 loglevel=3 edd=off rdinit=/init" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$REPO,mount_tag=repo,security_model=none,multidevs=remap" \
    -virtfs "local,path=$RUN,mount_tag=labctl,security_model=none,multidevs=remap" \
    </dev/null >&2 &
  CHILD=$!
}

# wait_for_boot SECONDS: true once lab-init reports it is starting the job.
wait_for_boot() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    [[ -s $RUN/boot-seconds ]] && return 0
    kill -0 "$CHILD" 2>/dev/null || return 0 # exited: let the caller read why
    sleep 0.2
  done
  return 1
}

# write_job DENO_DIR COMMAND...: the bash script the guest runs (chrooted in
# the host root). Arguments are %q-quoted, so any COMMAND survives intact.
write_job() {
  local denodir=$1 name; shift
  echo '#!/bin/bash'
  echo 'export LAB_MODE=vm DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1'
  [[ -n $denodir ]] && printf 'export DENO_DIR=%q\n' "$denodir"
  # Forward NO_COLOR/CI and whatever LAB_PASSENV names (space separated).
  for name in NO_COLOR CI ${LAB_PASSENV:-}; do
    [[ -n ${!name+x} ]] && printf 'export %s=%q\n' "$name" "${!name}"
  done
  printf 'cd %q || exit 255\n' "$REPO"
  echo 'exec >>/run/lab/stdout 2>>/run/lab/stderr'
  printf '%q ' "$@"; echo
}

# ------------------------------------------------------------------- main

main() {
  (($#)) || set -- node_modules/.bin/deno test --allow-all --cached-only tests/privileged/
  trap cleanup EXIT
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
  ensure_test_tools
  local mode=$LAB_MODE
  if [[ $mode == auto ]]; then
    # Only root can use the host's kernel (netns); anyone else gets the VM.
    if [[ $(id -u) == 0 ]] && host_kernel_ok; then mode=host; else
      mode=vm; log "host kernel $(uname -r) lacks VRF or End.DT46 vrftable: using a VM"
    fi
  fi
  ACCEL="" BOOT=""
  case $mode in
    host) run_host "$@" ;;
    vm) run_vm "$@" ;;
    *) die "LAB_MODE must be auto, host or vm (got $mode)" ;;
  esac
  local what=$mode
  [[ $mode == vm ]] && what="vm/$ACCEL, boot ${BOOT}s"
  log "summary: mode=$what kernel=$KVER exit=$STATUS wall=$(elapsed)s"
  exit "$STATUS"
}

main "$@"
