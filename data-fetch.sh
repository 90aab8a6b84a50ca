#!/usr/bin/env bash
# Fetches the four MNIST files into DIR (default: data/) and checks each one.
#
#   ./data-fetch.sh [DIR]
#   MNIST_MIRROR=/path/to/folder ./data-fetch.sh      # a local copy, tried first
#   MNIST_MIRROR=https://example.org/mnist/ ./data-fetch.sh     # or file:///path/to/folder
#   MNIST_OFFLINE=1 MNIST_MIRROR=/path/to/folder ./data-fetch.sh   # the mirror only
#
# Sources, in order: $MNIST_MIRROR (a folder or a base URL; a folder may hold the files
# gzipped or not), then the public mirrors that PyTorch and TensorFlow download from, then the
# original site (which often refuses). Every file is checked against the SHA-256 of its
# *decompressed* content (the canonical MNIST hashes, independent of how a mirror compressed
# it). A file is fetched under a temporary name and renamed only once it checks out, so DIR
# never holds a wrong or partial file under a final name. Files already present and correct,
# gzipped or not (dae reads either, and refuses a folder with both), are not fetched again.
# Written for bash: `sh data-fetch.sh` (dash here) or zsh hands it to bash, in POSIX words.
if [ -z "${BASH_VERSION:-}" ]; then
  if ! command -v bash >/dev/null 2>&1; then
    echo 'data-fetch: needs bash, which is not on PATH' >&2; exit 1
  fi
  # Read from standard input (`sh < data-fetch.sh`), $0 is the shell, not this script.
  if [ ! -f "$0" ] || [ "$(head -c 19 "$0" 2>/dev/null)" != '#!/usr/bin/env bash' ]; then
    echo 'data-fetch: read from standard input by a shell that is not bash; run bash data-fetch.sh' >&2; exit 1
  fi
  exec bash "$0" "$@"
fi
set -euo pipefail
shopt -u failglob # set through BASH_ENV, it would end the script at a glob that matches nothing

usage="usage: ./data-fetch.sh [DIR]   (DIR: where the files go, data/ if not given)"
if [ "${1:-}" = -- ]; then
  shift # what follows is the folder, even if it starts with '-'
else
  case ${1:-} in
    -h | --help)
      printf '%s\n' "$usage" "sources: MNIST_MIRROR (a folder or URL), MNIST_OFFLINE=1 for it alone"
      exit 0 ;;
    -*)
      printf 'data-fetch: unknown option %s (a folder starting with - goes after --); %s\n' "$1" "$usage" >&2
      exit 2 ;;
  esac
fi
if [ $# -gt 1 ]; then
  printf 'data-fetch: one folder at most, not %s; %s\n' "$*" "$usage" >&2; exit 2
fi
dir=${1:-data}
case $dir in -*) dir=./$dir ;; esac # so that no command takes it for an option
files=(
  "train-images-idx3-ubyte ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
  "train-labels-idx1-ubyte 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
  "t10k-images-idx3-ubyte 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
  "t10k-labels-idx1-ubyte ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)
mirrors=(
  "https://ossci-datasets.s3.amazonaws.com/mnist/"
  "https://storage.googleapis.com/cvdf-datasets/mnist/"
  "http://yann.lecun.com/exdb/mnist/"
)

# One line a message, a newline in a name written \n (as dae writes it).
say() {
  local message="$*"
  printf 'data-fetch: %s\n' "${message//$'\n'/\\n}" >&2
}

case ${MNIST_OFFLINE:-} in
  "" | 0 | false | no) ;;
  1 | true | yes) mirrors=() ;;
  *) say "MNIST_OFFLINE=$MNIST_OFFLINE: expected 1 (the mirror alone) or 0"; exit 2 ;;
esac
# A folder written as a URL: file:///path or file://localhost/path, with %XX escapes decoded.
case ${MNIST_MIRROR:-} in
  file://localhost/* | file:///*)
    path=${MNIST_MIRROR#file://}
    path=${path#localhost}
    printf -v MNIST_MIRROR '%b' "${path//%/\\x}" ;;
  file://*) say "MNIST_MIRROR=$MNIST_MIRROR: a file URL on another host; give a folder or an http(s) URL"; exit 2 ;;
esac
# (${a[@]+"${a[@]}"}: an empty array under set -u, which bash before 4.4 calls unbound.)
[ -n "${MNIST_MIRROR:-}" ] && mirrors=("$MNIST_MIRROR" ${mirrors[@]+"${mirrors[@]}"})
if [ ${#mirrors[@]} = 0 ]; then
  say "MNIST_OFFLINE is set but MNIST_MIRROR is not: nowhere to fetch from"; exit 1
fi
if [ $# = 1 ] && [ -z "$1" ]; then
  say "an empty folder name; $usage"; exit 2
fi

if ! command -v gzip >/dev/null; then
  say "needs gzip to check the files"; exit 1
fi
if command -v sha256sum >/dev/null; then
  sha256() { sha256sum | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then
  sha256() { shasum -a 256 | cut -d' ' -f1; }
else
  say "needs sha256sum or shasum to check the files"; exit 1
fi

# Whether a file starts with gzip's magic, 1f 8b: dae decides by that alone.
starts_as_gzip() {
  [ "$(head -c 2 -- "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 1f8b ]
}

# The SHA-256 of a gzip file's decompressed content, or nothing if it is not gzip (`gzip -dc`
# unpacks zip, compress and pack files too, which dae would read as they are) or does not gunzip.
content_hash() {
  local hash
  starts_as_gzip "$1" || return 0
  hash=$(gzip -dc "$1" 2>/dev/null | sha256) && echo "$hash"
  return 0
}

# How FILE holds the MNIST file whose decompressed SHA-256 is EXPECTED: "gzipped", "not
# gzipped" (dae tells gzip from a file's first bytes, not its name), or nothing if it does not,
# or is not a regular file one may read (a device would be read for ever).
mnist_form() {
  [ -f "$1" ] && [ -r "$1" ] || return 0
  if [ "$(content_hash "$1")" = "$2" ]; then
    echo "gzipped"
  elif [ "$(sha256 <"$1")" = "$2" ]; then
    echo "not gzipped"
  fi
}

# Whether link FROM's own target is the entry TO (the link itself if TO is one, not what it leads
# to): in a chain NAME.gz -> NAME -> elsewhere, NAME.gz leads through NAME.
leads_to() {
  local target
  target=$(readlink -- "$1") || return 1
  case $target in /*) ;; *) target="$(dirname -- "$1")/$target" ;; esac
  { [ -e "$target" ] || [ -L "$target" ]; } || return 1
  [ "$(ls -di -- "$target" | awk '{print $1}')" = "$(ls -di -- "$2" | awk '{print $1}')" ]
}

# What a file whose content hash is not MNIST's holds: "content SHA-256 HASH", or why it has none.
content() {
  local hash
  hash=$(content_hash "$1")
  if [ -n "$hash" ]; then
    echo "content SHA-256 $hash"
  elif starts_as_gzip "$1"; then
    echo "a corrupt or cut gzip"
  else
    echo "not gzip"
  fi
}

# The most bytes a source's file may have: MNIST's largest, the training images, is 9.9 MB
# gzipped and 47 MB not; a device or an endless stream in a mirror would fill the disk.
max_bytes=$((64 << 20))

# Copies or downloads SOURCE/NAME.gz to TARGET; fails saying why on standard error.
fetch() {
  local source=$1 name=$2 target=$3
  case $source in
    http://* | https://*)
      if command -v curl >/dev/null; then
        curl -fsSL --connect-timeout 15 --max-time 600 --max-filesize "$max_bytes" -o "$target" \
          "${source%/}/$name.gz"
      else
        wget -q --timeout=15 -O - "${source%/}/$name.gz" | head -c "$((max_bytes + 1))" >"$target"
        if [ "$(wc -c <"$target")" -gt "$max_bytes" ]; then
          echo "more than $max_bytes bytes, far more than MNIST's" >&2; return 1
        fi
      fi ;;
    *)
      local file=$source/$name.gz size plain=0
      if [ ! -d "$source" ]; then
        [ -e "$source" ] && echo "not a folder" >&2 || echo "no such folder" >&2
        return 1
      fi
      # A mirror of the files decompressed (NAME, as some keep them): gzipped on the way in.
      if [ ! -e "$file" ] && [ ! -L "$file" ] && { [ -e "$source/$name" ] || [ -L "$source/$name" ]; }; then
        file=$source/$name plain=1
      fi
      if [ ! -e "$file" ] && [ ! -L "$file" ]; then
        echo "not in that folder" >&2; return 1
      elif [ -e "$file" ] && [ ! -f "$file" ] && [ ! -d "$file" ]; then
        # A device or a FIFO would be read forever, or until the disk is full.
        echo "not a regular file" >&2; return 1
      elif [ -f "$file" ] && size=$(wc -c <"$file") && [ "$size" -gt "$max_bytes" ]; then
        echo "$size bytes, far more than MNIST's" >&2; return 1
      fi
      if [ "$plain" = 1 ]; then gzip -c -- "$file" >"$target"; else cp -- "$file" "$target"; fi ;;
  esac
}

# A mirror folder that is not there, checked when a file is first needed (files already
# present need none): the one source offline, an error; else one source fewer.
mirror_checked=0
check_mirror() {
  [ "$mirror_checked" = 0 ] || return 0
  mirror_checked=1
  case ${MNIST_MIRROR:-} in "" | http://* | https://*) return 0 ;; esac
  [ -d "$MNIST_MIRROR" ] && return 0
  local what="no such folder"
  [ -e "$MNIST_MIRROR" ] && what="not a folder"
  if [ ${#mirrors[@]} = 1 ]; then
    say "MNIST_MIRROR=$MNIST_MIRROR: $what"; exit 1
  fi
  say "MNIST_MIRROR=$MNIST_MIRROR: $what; trying the public mirrors"
  mirrors=("${mirrors[@]:1}")
}

made_dir=0
[ -e "$dir" ] || made_dir=1
if [ -e "$dir" ] && [ ! -d "$dir" ]; then
  say "$dir: exists and is not a folder"; exit 1
elif ! mkdir -p -- "$dir" 2>/dev/null; then
  say "$dir: cannot make the folder"; exit 1
fi
# However the script ends, a folder it made and left empty goes with it (rmdir leaves a folder
# that holds anything); with the temporary file of a fetch under way, if any.
tmp=
leave() {
  [ -z "$tmp" ] || rm -f "$tmp"
  if [ "$made_dir" = 1 ]; then rmdir -- "$dir" 2>/dev/null || true; fi
}
trap leave EXIT
trap 'leave; exit 130' INT
trap 'leave; exit 143' TERM
trap 'leave; exit 129' HUP
# A folder (or device) where a data file goes would take the file inside it: refused first.
for entry in "${files[@]}"; do
  read -r name _ <<<"$entry"
  if [ -e "$dir/$name.gz" ] && [ ! -f "$dir/$name.gz" ]; then
    say "$dir/$name.gz: exists and is not a file; remove it, and the data will go in its place"
    exit 1
  fi
done
# A fetch killed outright (kill -9: no trap runs) leaves its temporary file (mktemp's
# .NAME.gz.XXXXXX). One untouched for an hour is such a leftover: a live fetch writes as it
# downloads (curl stops at 10 minutes), in this process namespace or another's.
shopt -s nullglob
for entry in "${files[@]}"; do
  read -r name _ <<<"$entry"
  for stale in "$dir/.$name.gz."??????; do
    [[ ${stale##*.} =~ ^[A-Za-z0-9]{6}$ ]] && [ -f "$stale" ] && [ ! -L "$stale" ] || continue
    [ -n "$(find "$stale" -prune -mmin +60 2>/dev/null)" ] || continue
    rm -f "$stale" 2>/dev/null || say "$stale: a killed fetch's leftover; cannot remove it"
  done
done
shopt -u nullglob
missing=()
in_the_way=()
for entry in "${files[@]}"; do
  read -r name expected <<<"$entry"
  final="$dir/$name.gz"
  plain="$dir/$name"
  # A link that cannot be followed (a loop, a target in a folder one may not search, or none):
  # dae stops at it, and [ -e ] would take it for no file at all.
  unreachable=0
  for link in "$final" "$plain"; do
    if [ -L "$link" ] && [ ! -e "$link" ]; then
      say "$link is a link whose target cannot be reached; remove it"
      in_the_way+=("$link")
      unreachable=1
    fi
  done
  [ "$unreachable" = 0 ] || continue
  final_form=$(mnist_form "$final" "$expected")
  plain_form=$(mnist_form "$plain" "$expected")
  # dae reads NAME.gz or NAME, and refuses a folder that holds both: they might differ. Which to
  # remove: the one that is not MNIST's; of two that are, the plain one.
  if [ -e "$final" ] && [ -e "$plain" ]; then
    pair="$plain and $final are both there, and dae reads neither while both are"
    if [ "$final" -ef "$plain" ]; then
      # One file under two names: remove the one the other does not lead through (of two hard
      # links, either).
      drop=$plain
      leads_to "$final" "$plain" && drop=$final
      say "$pair (they are one file): remove $drop"
      in_the_way+=("$drop")
    elif [ -n "$final_form" ]; then
      say "$pair: $final is MNIST's; remove $plain"
      in_the_way+=("$plain")
    elif [ -n "$plain_form" ]; then
      say "$pair: $plain is MNIST's; remove $final"
      in_the_way+=("$final")
    elif [ ! -r "$final" ] || [ ! -r "$plain" ]; then
      if [ ! -r "$final" ] && [ ! -r "$plain" ]; then
        say "$pair, and neither can be read: make them readable to learn which is MNIST's, or remove both"
      else
        unread=$final
        [ -r "$final" ] && unread=$plain
        say "$pair, and $unread cannot be read: make it readable to learn which is MNIST's, or remove both"
      fi
      in_the_way+=("$plain" "$final")
    else
      say "$pair, and neither is MNIST's $name: remove both, and the data will go in their place"
      in_the_way+=("$plain" "$final")
    fi
    continue
  fi
  case $final_form in
    gzipped) say "$final: already present and correct"; continue ;;
    "not gzipped") say "$final: already present (not gzipped, though named .gz) and correct"; continue ;;
  esac
  if [ -e "$plain" ]; then
    case $plain_form in
      gzipped) say "$plain: already present (gzipped, though named without .gz) and correct"; continue ;;
      "not gzipped") say "$plain: already present (not gzipped) and correct"; continue ;;
    esac
    # A fetched NAME.gz beside it would be the pair dae refuses.
    fix="remove it, and the data will go in its place"
    if [ ! -f "$plain" ]; then
      say "$plain is there and is not a file; $fix"
    elif [ ! -r "$plain" ]; then
      say "$plain is there and cannot be read; make it readable, or $fix"
    else
      say "$plain is there and is not MNIST's $name ($(content "$plain")); $fix"
    fi
    in_the_way+=("$plain")
    continue
  fi
  wrong=""
  if [ -f "$final" ] && [ ! -r "$final" ]; then
    wrong="$final is there but cannot be read"
    say "$wrong; fetching a correct copy over it"
  elif [ -f "$final" ]; then
    wrong="$final is there but is not MNIST's $name"
    say "$wrong ($(content "$final")); fetching a correct copy over it"
  fi
  check_mirror
  if ! tmp=$(mktemp "$dir/.$name.gz.XXXXXX" 2>/dev/null); then
    say "$dir: cannot write a file into it"; exit 1
  fi
  ok=0
  for source in "${mirrors[@]}"; do
    if ! why=$(fetch "$source" "$name" "$tmp" 2>&1); then
      say "$name.gz from $source: ${why:-failed}"
      continue
    fi
    # MNIST gzipped, or decompressed under the gzipped name, which dae reads as well, as it is
    # accepted already in DIR.
    case $(mnist_form "$tmp" "$expected") in
      gzipped) how=" " ;;
      "not gzipped") how=" (not gzipped, though named .gz) " ;;
      *) how="" ;;
    esac
    if [ -n "$how" ]; then
      chmod 644 "$tmp"
      mv -f "$tmp" "$final"
      say "$final: fetched from $source${how}and verified"
      ok=1
      break
    fi
    say "$name.gz from $source: rejected, $(content "$tmp"), not MNIST's $expected"
  done
  rm -f "$tmp"
  tmp=
  if [ "$ok" = 0 ]; then
    say "$name.gz: no correct copy from any of ${mirrors[*]}${wrong:+; $wrong}"
    missing+=("$name.gz")
  fi
done
if [ ${#in_the_way[@]} != 0 ]; then
  say "in the way (above): ${in_the_way[*]}"
fi
if [ ${#missing[@]} != 0 ]; then
  hint="offline? set MNIST_MIRROR to a folder or URL that holds them"
  [ -n "${MNIST_MIRROR:-}" ] && hint="why each source failed is above"
  say "${#missing[@]} of ${#files[@]} files missing: ${missing[*]} ($hint)"
fi
[ ${#in_the_way[@]} = 0 ] && [ ${#missing[@]} = 0 ] || exit 1
