#!/usr/bin/env bash
# Re-creates the real-music pretraining data of muq-mini (kept out of the repository).
#   bash scripts/get_music.sh [OUT_DIR]      (default: data/music; needs root for apt-get on first use)
# Installs the Debian game-music packages, links their music files into OUT_DIR/<package>/ and writes
# OUT_DIR/manifest.tsv (package, file, seconds, sample rate) plus the total hours.
# Only music folders are used (sound effects and speech are left out); drascula's per-language
# folders hold the same tracks as audio/, so only audio/ is linked. boswars-data ships no music (its
# only .ogg is the intro video, which soundfile cannot read), so it contributes nothing.
set -euo pipefail
OUT=${1:-data/music}
PACKAGES="hyperrogue-music drascula-music boswars-data colobot-common-sounds supertux-data freedroidrpg-data"
missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get install -y --no-install-recommends $missing >/dev/null
fi
declare -A DIRS=(
  [hyperrogue-music]="/usr/share/hyperrogue/music"
  [drascula-music]="/usr/share/scummvm/drascula/audio"
  [boswars-data]=""
  [colobot-common-sounds]="/usr/share/games/colobot/music"
  [supertux-data]="/usr/share/games/supertux2/music"
  [freedroidrpg-data]="/usr/share/freedroidrpg/data/sound/music"
)
mkdir -p "$OUT"
for p in $PACKAGES; do
  mkdir -p "$OUT/$p"
  for d in ${DIRS[$p]}; do
    # only files the package itself installed (dpkg -L), under its music folder
    dpkg -L "$p" | grep -E "^$d/.*\.(ogg|wav|flac|mp3)$" | while read -r f; do
      ln -sf "$f" "$OUT/$p/$(echo "${f#"$d"/}" | tr / _)"
    done
  done
done
python3 - "$OUT" <<'EOF'
import pathlib, sys
import soundfile as sf
out = pathlib.Path(sys.argv[1])
rows, total = [], 0.0
for f in sorted(out.glob("*/*")):
    try:
        info = sf.info(str(f))
    except Exception as e:
        print(f"unreadable, skipped: {f.resolve()} ({e})")
        f.unlink()
        continue
    rows.append(f"{f.parent.name}\t{f.resolve()}\t{info.duration:.2f}\t{info.samplerate}")
    total += info.duration
(out / "manifest.tsv").write_text("package\tfile\tseconds\tsample_rate\n" + "\n".join(rows) + "\n")
print(f"{len(rows)} music files, {total / 3600:.2f} hours -> {out}/manifest.tsv")
EOF
