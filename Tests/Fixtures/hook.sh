#!/bin/sh
# The command hook's tests run this: it appends its arguments and its whole environment to
# the file named by its first argument (one block per run, ended by "---"), then does what
# the rest ask: "sleep SECONDS", "fail CODE MESSAGE" (MESSAGE on stderr, exit CODE),
# "background FILE" (a sleep left running, its pid written to FILE).
record="$1"
shift
{
    echo "argv: $*"
    env | sort
    echo ---
} >> "$record"
while [ $# -gt 0 ]; do
    case "$1" in
        sleep) sleep "$2"; shift 2 ;;
        background) sleep 300 & echo $! > "$2"; shift 2 ;;
        fail) echo "$3" >&2; echo "a second line" >&2; exit "$2" ;;
        *) shift ;;
    esac
done
exit 0
