#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Measures, then regenerates docs/results.md, docs/results/{rows.jsonl,results.csv,perplexity.png}: every method on the
# three shared models (../shared/models), calibrated on the start of the TinyStories head and evaluated on a
# disjoint slice of it and on WikiText-2. Needs gnuplot (Debian: gnuplot-nox) and python3 for the tables.
# The raw measurements go to docs/results/rows.jsonl; scripts/results_report.py turns them into the report.
# Usage: scripts/results.sh [--quick | --deployable | --only METHOD[,METHOD...] | --report-only]
#   --quick: one model, fewer methods, to try the script (writes under build/release/results-quick)
#   --deployable: measure only the METHOD@FORMAT rows (the GGUF files) again, keeping the committed others
#   --only: measure only these methods again (every model and group), keeping the committed others
#   --report-only: rewrite the report and the plot from the committed rows.jsonl without measuring
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${TERNQ_SHARED_DIR:-$root/../shared}
mode=${1:-}
only=${2:-}
if [[ "$mode" == "--only" && -z "$only" ]]; then
  echo "usage: scripts/results.sh --only METHOD[,METHOD...]"
  exit 2
fi

"$root/scripts/install-deps.sh"
command -v gnuplot >/dev/null || { echo "results.sh needs gnuplot (apt-get install gnuplot-nox)"; exit 1; }
build="$root/build/release"
if [[ "$mode" != "--report-only" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERNQ_BUILD_TESTS=OFF \
    -DTERNQ_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$build" --target ternq-quantize ternq-eval
fi
quantize="$build/tools/ternq-quantize"
evaluate="$build/tools/ternq-eval"

# --quick writes beside the build, leaving the committed results alone.
out="$root/docs/results"
md="$root/docs/results.md"
if [[ "$mode" == "--quick" ]]; then
  out="$build/results-quick"
  md="$out/results.md"
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

stories="$shared/text/tinystories_validation_head.txt"
wiki="$shared/text/wikitext2_raw_test.txt"
# Calibration: 32 sequences of 256 tokens from byte 0. Evaluation: 8192 tokens from byte 400000 (disjoint:
# the calibration slice ends well before it) and 8192 tokens of WikiText-2.
calib=(--calib-text "$stories" --calib-offset 0 --calib-seqs 32 --calib-len 256)

models=("stories260K stories260K.bin tok512.bin"
        "babyllama-tok105 babyllama_tok105_model5000.bin babyllama_tok105.bin"
        "babyllama-tok361 babyllama_tok361_model5000.bin babyllama_tok361_reconstructed.bin")
methods=(fp absmean twn optimal itf itf_aga
         gptq_absmean gptq_twn gptq_optimal gptq_itf gptq_itf_aga
         gptq_act_optimal gptq_ssr_optimal gptq_act_itf_aga gptq_ssr_itf_aga
         catq catq_std catq_paper catq_std_paper
         optimal@q2_0 optimal_aga@q2_0 gptq_optimal@q2_0 gptq_act_optimal@q2_0 gptq_ssr_optimal@q2_0
         gptq_optimal_aga@q2_0 gptq_act_optimal_aga@q2_0 gptq_ssr_optimal_aga@q2_0
         gptq_act_optimal_aga+fit@q2_0 gptq_ssr_optimal_aga+fit@q2_0
         gptq_act_itf_aga+fp gptq_ssr_itf_aga+fp
         gptq_optimal_aga+fp@q2_0 gptq_act_optimal_aga+fp@q2_0 gptq_ssr_optimal_aga+fp@q2_0
         gptq_act_optimal_aga+fit+fp@q2_0 gptq_ssr_optimal_aga+fit+fp@q2_0)
# METHOD@FORMAT: the deployable file. Written as a GGUF in that ternary format (format-aware calibration: fp16
# grids inside the driver; act-order/SSR orders folded where the model absorbs them; the FFN padded to the
# block) and evaluated from the GGUF; block-aligned group sizes only. METHOD+fit adds --fit-scales, METHOD+fp
# --fp-target (each layer calibrated toward the unquantized model's output).
groups=(64 0)
if [[ "$mode" == "--quick" ]]; then
  models=("${models[0]}")
  methods=(fp absmean optimal gptq_itf_aga)
  groups=(64)
fi

if [[ "$mode" == "--deployable" ]]; then
  deployable=()
  for method in "${methods[@]}"; do [[ "$method" == *@* ]] && deployable+=("$method"); done
  methods=("${deployable[@]}")
  groups=(64)
fi

all_methods=("${methods[@]}")
if [[ "$mode" == "--only" ]]; then
  IFS=, read -r -a methods <<<"$only"
  for method in "${methods[@]}"; do
    [[ " ${all_methods[*]} " == *" $method "* ]] || { echo "results.sh: --only: '$method' is not one of its methods"; exit 2; }
  done
fi

rows="$out/rows.jsonl"
if [[ "$mode" == "--only" ]]; then
  committed="$work/committed.jsonl"
  cp "$rows" "$committed"
  : >"$rows"
elif [[ "$mode" == "--deployable" ]]; then
  # keep every committed row but the files', which are measured again below
  python3 - "$rows" <<'PY'
import json, sys
path = sys.argv[1]
kept = [line for line in open(path) if line.strip() and "@" not in json.loads(line)["method"]]
open(path, "w").writelines(kept)
PY
elif [[ "$mode" != "--report-only" ]]; then
  : >"$rows"
fi
if [[ "$mode" != "--report-only" ]]; then
  for entry in "${models[@]}"; do
    read -r name checkpoint tokenizer <<<"$entry"
    model="$shared/models/$checkpoint"
    tok="$shared/models/$tokenizer"
    for group in "${groups[@]}"; do
      for method in "${methods[@]}"; do
        format=""
        if [[ "$method" == *@* ]]; then
          [[ "$group" == 0 ]] && continue
          format=${method#*@}
        fi
        echo "== $name, group ${group/#0/row}, $method"
        candidate="$model"
        report=""
        if [[ "$method" != fp ]]; then
          report="$work/$name-$group-$method.json"
          if [[ -n "$format" ]]; then
            candidate="$work/$name-$group-$method.gguf"
            output=(--out-gguf "$candidate" --format "$format")
          else
            candidate="$work/$name-$group-$method.bin"
            output=(--out-fake "$candidate")
          fi
          base=${method%@*}
          extra=()
          if [[ "$base" == *+fp ]]; then  # METHOD+fp: with --fp-target
            base=${base%+fp}
            extra+=(--fp-target)
          fi
          if [[ "$base" == *+fit ]]; then  # METHOD+fit: with --fit-scales
            base=${base%+fit}
            extra+=(--fit-scales)
          fi
          "$quantize" --model "$model" --tokenizer "$tok" --method "$base" --group-size "$group" \
            "${calib[@]}" "${output[@]}" "${extra[@]}" --report "$report" >/dev/null 2>"$work/log"
        fi
        ts=$("$evaluate" --model "$candidate" --tokenizer "$tok" --text "$stories" --offset 400000 --tokens 8192 \
          --reference "$model" --json)
        wt=$("$evaluate" --model "$candidate" --tokenizer "$tok" --text "$wiki" --offset 0 --tokens 8192 \
          --reference "$model" --json)
        python3 - "$name" "$group" "$method" "$report" "$ts" "$wt" >>"$rows" <<'PY'
import json, sys
name, group, method, report, ts, wt = sys.argv[1:]
row = {"model": name, "group": int(group), "method": method, "stories": json.loads(ts), "wiki": json.loads(wt)}
for slice_ in (row["stories"], row["wiki"]):  # the paths of this run's files say nothing lasting
    slice_.pop("model", None)
    slice_.pop("reference", None)
if report:
    full = json.load(open(report))
    layers = full["layers"]
    row["time_s"] = sum(l["time_s"] for l in layers)
    row["rel_e_x"] = sum(l["rel_e_x"] for l in layers) / len(layers)
    gguf = full["summary"].get("gguf")
    if gguf:
        row["gguf"] = gguf
print(json.dumps(row))
PY
      done
    done
  done
fi

if [[ "$mode" == "--only" ]]; then
  # The new rows replace the committed ones of the same model, group and method; every row then goes back to
  # the order a full run writes (model, group, method as listed above).
  model_names=()
  for entry in "${models[@]}"; do model_names+=("${entry%% *}"); done
  python3 - "$committed" "$rows" "${model_names[*]}" "${groups[*]}" "${all_methods[*]}" <<'PY'
import json, sys
committed, rows_path, models, groups, methods = sys.argv[1:]
models, groups, methods = models.split(), [int(g) for g in groups.split()], methods.split()
key = lambda r: (r["model"], r["group"], r["method"])
merged = {key(r): r for r in map(json.loads, filter(str.strip, open(committed)))}
merged.update({key(r): r for r in map(json.loads, filter(str.strip, open(rows_path)))})
def position(r):
    return tuple(seq.index(v) if v in seq else len(seq)
                 for seq, v in ((models, r["model"]), (groups, r["group"]), (methods, r["method"])))
with open(rows_path, "w") as f:
    for r in sorted(merged.values(), key=position):
        f.write(json.dumps(r) + "\n")
PY
fi

"$root/scripts/results_report.py" "$rows" "$out" "$md"

cols=$(head -1 "$out/perplexity.dat" | wc -w)
# The unquantized models' perplexities as dashed horizontal lines (one per model, from its fp row).
fp_lines=$(python3 - "$rows" <<'PY'
import json, sys
seen = {}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        if r["method"] == "fp":
            seen.setdefault(r["model"], r["stories"]["ppl"])
# named in the right margin, under the key (the lines of the models lie too close together to label in place)
print('set label "dashed: the unquantized model" at graph 1.03, graph 0.62 left font ",10" tc rgb "gray30"')
for k, (model, ppl) in enumerate(seen.items()):
    print(f'set arrow from graph 0, first {ppl} to graph 1, first {ppl} nohead dt 2 lw 1.5 lc rgb "gray30"')
    print(f'set label "  {model}: {ppl:.2f}" at graph 1.03, graph {0.57 - 0.05 * k:.2f} left font ",10" '
          f'tc rgb "gray30"')
PY
)
gnuplot <<EOF
set terminal pngcairo noenhanced size 1400,700 font ",10"
set output "$out/perplexity.png"
set title "Perplexity on the held-out TinyStories slice (log scale; lower is better)"
set datafile missing "?"
set style data histogram
set style histogram clustered gap 2
set style fill solid 0.8 border -1
set logscale y
set ylabel "perplexity"
set xtics rotate by -40 scale 0
set key outside right top
set grid ytics
$fp_lines
plot for [c=2:$cols] "$out/perplexity.dat" using c:xtic(1) title columnhead
EOF
rm -f "$out/perplexity.dat"
echo "wrote $md and, in $out, rows.jsonl, results.csv, perplexity.png"
