#!/usr/bin/env bash
# Independent reading of a manuscript (BENCHMARKS.md, issue 22): counts the lines of its chapters
# holding JSON braces, URLs, markup, "here is", key: value lines, talk of JSON or "this text",
# ellipsis-only lines and identifiers, the engine's chapter anchors left out.
#   bash tests/llama/grep-manuscript.sh BOOK_DIR/manuscript.md
m="$1"
body=$(awk '/^## Chapter/{p=1} p' "$m" | grep -v '^<a id="chapter-[0-9]*"></a>$')
c() { printf '%-28s %s\n' "$1" "$(printf '%s\n' "$body" | grep -Eic "$2" || true)"; }
c "braces { }" '[{}]'
c "URLs" '(https?://|www\.|\.(com|org|net|io)(/|$))'
c "markup <tag> CDATA" '(<[a-z/!?]|CDATA|&[a-z]+;)'
c "here is / here's" "\b(here is|here's|here are)\b"
c "key: value lines" "^[[:space:]]*[\"'\`]?[A-Za-z_]+[\"'\`]?[[:space:]]*:[[:space:]]*([\"'\`\[<]|$)"
c "json/schema/object talk" '(json|schema|xml|yaml|your answer|this object|this text)'
c "ellipsis-only lines" '^[[:space:].…]+$'
c "identifiers a_b / a123" '([A-Za-z]+_[A-Za-z0-9]+|[A-Za-z]+[0-9]{3,})'
