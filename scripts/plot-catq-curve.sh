#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerates docs/algorithms/catq_loss.png: runs the method table with --catq-curve (its default
# layer unless arguments say otherwise; the table and the curve are kept beside the plot as
# catq_loss_table.txt and catq_loss.csv) and draws catq's loss curve with gnuplot (Debian:
# gnuplot-nox). --plot-only redraws from the kept files. Not part of the tests; the PNG is committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
docs="$root/docs/algorithms"
command -v gnuplot >/dev/null || { echo "gnuplot is needed (apt-get install gnuplot-nox)" >&2; exit 1; }
if [[ "${1:-}" != "--plot-only" ]]; then
  build="$root/build/release"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERNQ_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$build" --target ternq-method-table
  "$build/examples/ternq-method-table" --catq-curve "$docs/catq_loss.csv" "$@" | tee "$docs/catq_loss_table.txt"
fi
# The other methods' relative E_x from the same run, as reference lines.
ref() { awk -v m="$1" '$1 == m { print $3 }' "$docs/catq_loss_table.txt"; }
title=$(head -1 "$docs/catq_loss_table.txt" | sed 's/^ternq [^:]*: //')
first_hard=$(awk -F, '$2 == "hard" { print $1; exit }' "$docs/catq_loss.csv")
gnuplot <<GNUPLOT
set terminal pngcairo size 900,540 font "DejaVu Sans,10"
set output "$docs/catq_loss.png"
set datafile separator ","
set key bottom right box opaque
set logscale y
set yrange [0.01:1]
set xlabel "calibration step"
set ylabel "loss / tr(W C W^T)"
set title "CAT-Q calibration: ${title}"
set arrow from ${first_hard}, graph 0 to ${first_hard}, graph 1 nohead dashtype 2 lc rgb "gray40"
set label "hard phase" at ${first_hard}, graph 0.55 offset 1,0 tc rgb "gray30"
plot "$docs/catq_loss.csv" every ::1 using 1:3 with lines lw 2 lc rgb "#1f77b4" title "loss of the step (soft step, then hard)", \
     "" every ::1 using 1:(\$4 > 0 ? \$4 : 1/0) with points pt 7 ps 0.5 lc rgb "#d62728" title "hard E_x at the evaluations (keep-best)", \
     $(ref absmean) with lines dashtype 3 lc rgb "gray50" title "absmean", \
     $(ref twn) with lines dashtype 4 lc rgb "gray30" title "twn", \
     $(ref optimal_symmetric) with lines dashtype 5 lc rgb "black" title "optimal symmetric"
GNUPLOT
echo "wrote $docs/catq_loss.png"
