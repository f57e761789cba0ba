#!/usr/bin/env bash
# Renders the benchmark figures in bench/figures.dat (copied from the
# tables in docs/BENCHMARKS.md) to PNGs in docs/figures/ with gnuplot
# (Debian gnuplot-nox, listed in scripts/install-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
data=bench/figures.dat
out=docs/figures
mkdir -p "$out"
gnuplot <<GP
set terminal pngcairo size 900,520 font ",11"
set grid ytics
set key top left

set output "$out/nlm_pairs_per_second.png"
set title "NLM LOCK+UNLOCK pairs/s over TCP (2 vCPUs shared by clients and daemons)"
set xlabel "concurrent clients"
set ylabel "pairs/s"
set logscale x 2
set xtics (1, 16, 64)
set xrange [0.8:80]
plot "$data" index 0 using 1:3 with linespoints lw 2 title "NFS-Ganesha 4.3 NLM4 (in memory)", \
     "$data" index 0 using 1:2 with linespoints lw 2 title "lockwarden, RocksDB (every grant fsync'd)", \
     "$data" index 0 using 1:4 with linespoints lw 2 title "lockwarden, 3-member etcd (quorum commit)"
unset logscale x
set xrange [*:*]
set xtics auto

set output "$out/cpu_per_pair.png"
set title "Daemon CPU per LOCK+UNLOCK pair at 64 TCP clients"
set xlabel ""
set ylabel "CPU µs per pair"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set bmargin 6
set xtics rotate by -25 font ",9"
plot "$data" index 1 using 2:xtic(1) title "server", "" index 1 using 3 title "gateway"
set xtics norotate font ",11"
set bmargin

set output "$out/failover_ms.png"
set title "kill -9 of the leader -> first NLM LOCK granted through the gateway"
set ylabel "ms"
set style histogram clustered
plot "$data" index 2 using 2:xtic(1) title "p50", "" index 2 using 3 title "max"
GP
ls -l "$out"
