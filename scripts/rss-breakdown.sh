#!/usr/bin/env bash
# What a running process's resident memory is made of, from /proc/PID/smaps (MiB):
#   scripts/rss-breakdown.sh PID          # one line
#   scripts/rss-breakdown.sh PID --maps   # and every mapping with Rss > 0 (KiB)
# The executable's own pages are split into clean (read from the file: code, read-only data; the
# kernel maps file pages in fault-around blocks, so untouched neighbours count too) and dirty
# (written after loading: relocated pointers in .data.rel.ro/.got, .data, .bss).
set -euo pipefail
pid=$1
exe=$(readlink "/proc/$pid/exe")
threads=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
awk -v exe="$exe" -v threads="$threads" -v maps="${2:-}" '
  /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : ""; perm = $2; next }
  /^Rss:/ { rss = $2
    if (name == exe) { bin += rss; if (perm ~ /x/) code += rss; else if (perm ~ /w/) data += rss; else ro += rss }
    else if (name ~ /\/(libc|libm|ld-linux[^\/]*|libgcc_s)[.-][^\/]*$/) libc += rss
    else if (name ~ /\.so/) libs += rss
    else if (name == "[heap]") heap += rss
    else if (name == "[stack]") stack += rss
    else if (name == "") anon += rss
    else other += rss
    if (maps != "" && rss > 0) printf "  %6d KiB %s %s\n", rss, perm, (name == "" ? "[anon]" : name)
    next }
  /^Private_Dirty:/ { if (name == exe) bdirty += $2; next }
  END {
    printf "binary %.1f (code %.1f, read-only data %.1f, writable %.1f; dirtied after load %.1f), libc/libm/ld %.1f, other shared libraries %.1f, heap %.1f, anonymous %.1f, stack %.1f, other %.1f; %d threads\n",
      bin/1024, code/1024, ro/1024, data/1024, bdirty/1024, libc/1024, libs/1024, heap/1024, anon/1024, stack/1024, other/1024, threads
  }' "/proc/$pid/smaps"
