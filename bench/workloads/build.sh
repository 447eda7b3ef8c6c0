#!/bin/sh
# A parallel C build: generates FILES translation units (each a few dozen functions with loops,
# switches and inlined helpers, so cc1 spends real time optimizing them) and compiles them with
# `make -jJOBS` from scratch. A fixed amount of work: every run compiles the same sources.
#
#     build.sh [FILES=32] [JOBS=2] [DIR=a new temporary directory, removed afterwards]
set -eu
files=${1:-32}
jobs=${2:-2}
dir=${3:-}
cleanup=""
if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/sprof-build.XXXXXX")
    cleanup=$dir
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
mkdir -p "$dir"
i=0
objs=""
while [ "$i" -lt "$files" ]; do
    f="$dir/unit$i.c"
    {
        echo "#include <string.h>"
        echo "#include <stdlib.h>"
        echo "struct s$i { int a[16]; double d; char name[32]; };"
        echo "static inline int mix$i(int x, int y) { return (x * 31 + y) ^ (x >> 3); }"
        j=0
        while [ "$j" -lt 24 ]; do
            echo "int f${i}_$j(struct s$i *p, int n) {"
            echo "    int acc = $j;"
            echo "    for (int k = 0; k < n; k++) {"
            echo "        switch ((k + $j) % 7) {"
            echo "        case 0: acc = mix$i(acc, p->a[k % 16]); break;"
            echo "        case 1: acc += (int)(p->d * k); break;"
            echo "        case 2: acc ^= (int)strlen(p->name) + k; break;"
            echo "        case 3: p->a[(k * 3) % 16] += acc; break;"
            echo "        case 4: acc = acc * 7 + mix$i(k, n); break;"
            echo "        case 5: if (acc & 1) acc >>= 1; else acc = acc * 3 + 1; break;"
            echo "        default: acc -= k;"
            echo "        }"
            echo "    }"
            echo "    return acc;"
            echo "}"
            j=$((j + 1))
        done
    } > "$f"
    objs="$objs unit$i.o"
    i=$((i + 1))
done
{
    echo "all:$objs"
    echo "%.o: %.c"
    printf '\tcc -O2 -g -c -o $@ $<\n'
} > "$dir/Makefile"
rm -f "$dir"/*.o
make -s -C "$dir" -j"$jobs"
