#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs ternq's build dependencies from Debian's archive when they are missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang        # build tools (GCC and Clang are both tested)
  libeigen3-dev                      # dense linear algebra (required by the library)
  nlohmann-json3-dev                 # JSON: safetensors headers, Hugging Face config files (required by the library)
  libxtensor-dev                     # xtensor adapter (optional for users, tested here)
  doctest-dev                        # unit tests
  libbenchmark-dev                   # benchmarks
  libcli11-dev                       # command-line parsing in examples and tools
  pkg-config                         # finds the tools' tokenizer libraries below
  libpcre2-dev                       # tools: byte-level BPE pre-tokenizer regexes (tokenizer.json, GGUF "gpt2")
  libicu-dev                         # tools: Unicode NFC normalization (Qwen's tokenizer.json)
  libsentencepiece-dev               # tools: SentencePiece tokenizer.model files
  libssl-dev                         # sha256 of the packing golden vectors (test only; the library never links it)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
