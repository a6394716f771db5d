#!/usr/bin/env bash
# Prompt corpus for training and evaluating speculative drafters (scripts/train_drafter.py).
#
#   scripts/prompts-corpus.sh [DIR]   (default build-corpus/; prints the two prompt files)
#
# Source: the same pinned PyPI sdist as scripts/eval-corpus.sh, docutils 0.21.2, whose
# documentation is dedicated to the public domain by its authors (COPYING.txt); only files
# that carry the "placed in the public domain" declaration near their top are used. Each
# prompt is one prose paragraph (inline markup reduced to its text; markup lines, literal blocks, tables and
# lists skipped), cut to its first 60 words, one prompt per line. The split is by file, so
# the two sets are disjoint by construction and deterministic:
#   prompts-train.txt  docs/{dev,howto,peps,api,ref,ref/rst}/*.txt
#   prompts-eval.txt   docs/user/*.txt, docs/user/rst/*.txt
# Duplicate paragraphs are dropped, and any evaluation prompt also present in the training
# set is dropped from the evaluation set. The sha256 of both files is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-corpus}"
scripts/eval-corpus.sh "$dir" > /dev/null
src="$dir/docutils-0.21.2"
python3 - "$src" "$dir" <<'PY'
import glob, os, re, sys
src, out = sys.argv[1], sys.argv[2]

def public_domain(path):
    with open(path, encoding="utf-8") as f:
        head = f.read(3000)
    return "placed in the public domain" in " ".join(head.split())

def paragraphs(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if any(l.startswith((" ", "\t")) for l in lines):
            continue  # literal blocks, block quotes, directive bodies
        if any(re.match(r"^([=\-~^\"'`#*+.:_|]{3,}|\.\. |[-*+] |\d+\. |:\w|\+-|#\.)", l) for l in lines):
            continue  # titles, directives, lists, field lists, tables
        words = " ".join(lines).split()
        text = " ".join(words)
        text = re.sub(r"`([^`<]*?)\s*(<[^>]*>)?`_{0,2}", r"\1", text)  # `link <url>`_ -> link
        text = re.sub(r"``([^`]*)``", r"\1", text).replace("**", "")
        text = re.sub(r"\[#?[\w-]*\]_|\|[^|]*\|", "", text)  # footnote refs, substitutions
        words = text.replace("::", ":").split()
        wordy = sum(1 for w in words if re.search(r"[A-Za-z]{2}", w))
        if len(words) < 20 or "`" in text or wordy < 0.8 * len(words):
            continue
        yield " ".join(words[:60])

def collect(patterns, exclude=()):
    seen, result = set(exclude), []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(src, pattern))):
            if not public_domain(path):
                continue
            for p in paragraphs(path):
                if p not in seen:
                    seen.add(p)
                    result.append(p)
    return result

train = collect(["docs/dev/*.txt", "docs/howto/*.txt", "docs/peps/*.txt", "docs/api/*.txt",
                 "docs/ref/*.txt", "docs/ref/rst/*.txt"])
evaluation = collect(["docs/user/*.txt", "docs/user/rst/*.txt"], exclude=train)
for name, rows in (("prompts-train.txt", train), ("prompts-eval.txt", evaluation)):
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
PY
for f in prompts-train.txt prompts-eval.txt; do
  printf '%s %s prompts sha256 %s\n' "$dir/$f" "$(wc -l < "$dir/$f")" "$(sha256sum "$dir/$f" | cut -c1-16)"
done
