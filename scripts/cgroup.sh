# Memory-cgroup helpers for the by-hand benchmark scripts (cgroup v1, as
# root; page cache counts against the limit). Source it, then:
#   cg_init NAME LIMIT    make /sys/fs/cgroup/memory/NAME with LIMIT; sets CG
#   cg_reset              zero the cgroup's max usage and failcnt
#   cg_oom_kills          the cgroup's OOM-kill count so far
#   cg_peak_bytes         the cgroup's max usage since the last cg_reset
#   evict_pages FILE      drop FILE's pages from the page cache (and, unless
#                         DROP_CACHES=0, the clean caches), so a run starts cold
#   in_cg CMD ARGS...     run CMD inside the cgroup (the shell joins, then execs)
#   spawn_in_cg CMD ARGS... start CMD inside the cgroup in the background and
#                         set SPAWNED to CMD's own pid (`in_cg ... &` would
#                         give the pid of the subshell around it instead)

cg_init() {
    [[ $EUID -eq 0 ]] || { echo "cgroup.sh: needs root (cgroup setup, drop_caches)" >&2; exit 1; }
    [[ -d /sys/fs/cgroup/memory ]] || { echo "cgroup.sh: no cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 1; }
    CG="/sys/fs/cgroup/memory/$1"
    mkdir -p "$CG"
    echo "$2" > "$CG/memory.limit_in_bytes"
}
cg_reset() {
    echo 0 > "$CG/memory.max_usage_in_bytes"
    echo 0 > "$CG/memory.failcnt"
}
cg_oom_kills() { awk '/^oom_kill /{print $2}' "$CG/memory.oom_control"; }
cg_peak_bytes() { cat "$CG/memory.max_usage_in_bytes"; }
evict_pages() {
    sync
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
    if [[ "${DROP_CACHES:-1}" == 1 ]]; then echo 1 > /proc/sys/vm/drop_caches; fi
}
in_cg() { bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
spawn_in_cg() { bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@" & SPAWNED=$!; }
