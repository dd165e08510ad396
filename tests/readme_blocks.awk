# readme_blocks.awk — the shell command blocks of a Markdown file, in order, as one
# sh script for tests/t_readme.sh.
#
# A command block is an indented code block (lines indented by 4 spaces or a tab,
# after a blank line) or a fenced block (``` or ```sh/bash/shell/console).  Fenced
# blocks in another language (```json, ```text ...) are not commands and are left out.
# A marker comment on the line before a block (blank lines between are allowed)
# changes how the test treats it:
#   <!-- readme-test: skip (why) -->    not run; the test prints why
#   <!-- readme-test: needs PATH -->    run only when PATH exists in the checkout
#                                       (e.g. a model make check may not have fetched)
# Each block becomes `if readme_block N LINE KIND 'ARG'; then`, its lines (indentation
# removed), `readme_block_end; fi`: t_readme.sh defines both functions, and the
# blocks run in one shell, so a variable set in one block is there in the next.
# Usage: awk -f readme_blocks.awk README.md > blocks.sh
function flush() {
    if (n == 0) return
    nblock++
    printf "if readme_block %d %d %s '%s'; then\n", nblock, start, mkind, marg
    for (i = 1; i <= n; i++) print body[i]
    print "readme_block_end; fi"
    n = 0; mkind = "run"; marg = ""
}
function marker(line,    s) {
    s = line
    sub(/^[ \t]*<!--[ \t]*readme-test:[ \t]*/, "", s)
    sub(/[ \t]*-->[ \t]*$/, "", s)
    gsub(/'/, "", s)                      # the argument is quoted with ' in the script
    if (s ~ /^skip/) { mkind = "skip"; sub(/^skip[ \t]*/, "", s); marg = s }
    else if (s ~ /^needs[ \t]/) { mkind = "needs"; sub(/^needs[ \t]*/, "", s); marg = s }
    else { printf "readme_blocks.awk: line %d: unknown marker: %s\n", NR, line > "/dev/stderr"; bad = 1 }
}
BEGIN { n = 0; nblock = 0; mkind = "run"; marg = ""; fence = ""; prev_blank = 1; bad = 0 }
{
    line = $0
    sub(/\r$/, "", line)
    if (fence != "") {                    # inside a fenced block
        if (line ~ /^[ \t]*```[ \t]*$/) {
            if (fence == "sh") flush(); else { n = 0; mkind = "run"; marg = "" }
            fence = ""
        } else if (fence == "sh") {
            if (n == 0) start = NR
            body[++n] = line
        }
        prev_blank = 0
        next
    }
    if (line ~ /^[ \t]*```/) {            # a fence opens
        flush()
        lang = line
        sub(/^[ \t]*```[ \t]*/, "", lang)
        sub(/[ \t].*$/, "", lang)
        fence = (lang == "" || lang ~ /^(sh|bash|shell|console)$/) ? "sh" : "other"
        next
    }
    if (line ~ /^[ \t]*<!--[ \t]*readme-test:/) { flush(); marker(line); prev_blank = 1; next }
    if (line ~ /^(    |\t)/ && (n > 0 || prev_blank)) {   # an indented code line
        if (n == 0) start = NR
        sub(/^(    |\t)/, "", line)
        body[++n] = line
        prev_blank = 0
        next
    }
    if (line ~ /^[ \t]*$/) {
        if (n > 0) body[++n] = ""     # a blank line may continue an indented block
        prev_blank = 1
        next
    }
    if (n == 0 && mkind != "run") {
        printf "readme_blocks.awk: line %d: a readme-test marker must come right before a block\n", NR > "/dev/stderr"
        bad = 1; mkind = "run"; marg = ""
    }
    flush()
    prev_blank = 0
}
END { flush(); if (bad) exit 65 }
