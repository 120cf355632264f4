#!/usr/bin/env bash
# PostgreSQL's C layout (pgindent) for our sources, without PostgreSQL's
# source tree: Debian's pg_bsd_indent (package pg-bsd-indent, 2.1.1, the
# version PostgreSQL 15's pgindent asks for) run with pgindent's switches, the
# few rewrites pgindent makes around it, and a typedefs list made here.
#
#   tools/indent.sh [--check] FILE... [-- COMPILER CPPFLAGS...]
#
# Rewrites each FILE in place; with --check changes nothing and exits 1 when
# a file would change, listing those files and printing their unified diff
# (at most INDENT_DIFF_LINES lines, 200 unless set).  "make indent" and
# "make indent-check" call it on src/*.c src/*.h.
#
# The typedefs list (pg_bsd_indent -U): pg_bsd_indent must know which names
# are types, or it spaces "Points *p" as a multiplication.  PostgreSQL's
# buildfarm reads the list from the debug information of its binaries
# (src/tools/find_typedef); Debian ships neither that list nor a postgres with
# debug information, so we do the same on our own sources: each .c FILE is
# compiled (with the COMPILER and flags after "--", as the build uses them;
# default: cc with src/ and the server's include directory) with
# -g -fno-eliminate-unused-debug-types into a temporary directory, and
# every DW_TAG_typedef name that objdump finds is a typedef: ours and every
# one of PostgreSQL's and the C library's that our files can see.  Names
# typedef'd in the FILEs themselves are added by a plain text scan (a file
# that is not compiled, a header), "bool" is added and the names pgindent
# never treats as types are taken out, as pgindent does.
# INDENT_TYPEDEFS=FILE uses that list instead; INDENT_KEEP_TYPEDEFS=FILE
# writes the list made here to FILE, to look at.
#
# What pgindent does besides running pg_bsd_indent, done here too: "//"
# comments become /* */ ones; block comments that open with "/* ---" keep
# their layout; "extern "C" {" blocks under #ifdef __cplusplus are not
# indented; after pg_bsd_indent, two comments run together get a tab between
# them and a function's return type line ends "type *", one space.  (Its
# CATALOG() protection is for PostgreSQL's catalog headers only.)  Unlike
# pgindent, a file pg_bsd_indent fails on is an error, not a warning.
set -euo pipefail

INDENT=${PG_BSD_INDENT:-pg_bsd_indent}
WANT_VERSION=2.1.1
# pgindent's switches (PostgreSQL 15 and 16 alike)
OPTS=(-bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 -i4 -l79
	-lp -lpl -nip -npro -sac -tpg -ts4)
# names pgindent adds to, and takes out of, any typedefs list
ALWAYS_TYPES=(bool)
NEVER_TYPES=(ANY FD_SET U abs allocfunc boolean date digit ilist interval
	iterator other pointer printfunc reference string timestamp type wrap)
DIFF_LINES=${INDENT_DIFF_LINES:-200}

usage() { echo "usage: $0 [--check] FILE... [-- COMPILER CPPFLAGS...]" >&2; exit 2; }

check=0
files=()
compile=()
while [ $# -gt 0 ]; do
	case $1 in
	--check) check=1 ;;
	--) shift; compile=("$@"); break ;;
	-*) usage ;;
	*) files+=("$1") ;;
	esac
	shift
done
[ ${#files[@]} -gt 0 ] || usage

command -v "$INDENT" >/dev/null || {
	echo "$0: $INDENT not found (Debian: apt-get install pg-bsd-indent)" >&2
	exit 3
}
version=$("$INDENT" --version 2>&1 | awk '{print $2; exit}')
if [ "$version" != "$WANT_VERSION" ]; then
	echo "$0: $INDENT is version $version; PostgreSQL 15's pgindent wants $WANT_VERSION" >&2
	exit 3
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- the typedefs list ----------------------------------------------------
typedefs=$TMP/typedefs.list
if [ -n "${INDENT_TYPEDEFS:-}" ]; then
	cat "$INDENT_TYPEDEFS"
else
	if [ ${#compile[@]} -eq 0 ]; then
		pg_config=${PG_CONFIG:-pg_config}
		compile=("${CC:-cc}" -Isrc -isystem "$("$pg_config" --includedir-server)" -D_GNU_SOURCE)
	fi
	command -v objdump >/dev/null || { echo "$0: objdump not found (Debian: binutils)" >&2; exit 3; }
	mkdir "$TMP/obj"
	n=0
	for f in "${files[@]}"; do
		case $f in *.c) ;; *) continue ;; esac
		n=$((n + 1))
		if ! "${compile[@]}" -g -fno-eliminate-unused-debug-types -O0 -w \
			-c "$f" -o "$TMP/obj/$n.o" 2>"$TMP/cc.err"; then
			echo "$0: $f does not compile, so its typedefs cannot be read:" >&2
			head -20 "$TMP/cc.err" >&2
			exit 1
		fi
	done
	if [ "$n" -gt 0 ]; then
		objdump --dwarf=info "$TMP"/obj/*.o |
			awk '/DW_TAG_/ { t = /\(DW_TAG_typedef\)/; next }
			     t && $2 == "DW_AT_name" { print $NF; t = 0 }'
	fi
	# "typedef ... Name;", "typedef ... (*Name) (...);", "typedef struct {...} Name;"
	cat "${files[@]}" | perl -0777 -ne '
		s{/\*.*?\*/}{ }gs;
		print "$1\n" while /\btypedef\b[^;{}]*?\b(\w+)\s*(?:\[[^\]]*\]\s*)*;/g;
		print "$1\n" while /\btypedef\b[^;{}]*?\(\s*\*\s*(\w+)\s*\)/g;
		print "$2\n" while /\btypedef\s+(?:struct|union|enum)\b[^{;]*(\{(?:[^{}]++|(?1))*\})\s*(\w+)\s*;/g;'
fi >"$TMP/names"
printf '%s\n' "${ALWAYS_TYPES[@]}" >>"$TMP/names"
grep -E '^[A-Za-z_][A-Za-z0-9_]*$' "$TMP/names" |
	grep -vxF -f <(printf '%s\n' "${NEVER_TYPES[@]}") |
	LC_ALL=C sort -u >"$typedefs"
[ -z "${INDENT_KEEP_TYPEDEFS:-}" ] || cp "$typedefs" "$INDENT_KEEP_TYPEDEFS"

# --- each file ------------------------------------------------------------
changed=()
: >"$TMP/diff"
for f in "${files[@]}"; do
	# before: // comments, "/* ---" comments, extern "C" braces
	perl -0777 -pe '
		s{^([ \t]*)//(.*)$}{$1/* $2 */}mg;
		s{/\* +---}{/*---X_X}g;
		s{(^#ifdef[ \t]+__cplusplus.*\nextern[ \t]+"C"[ \t]*\n)\{[ \t]*$}{$1/* Open extern "C" */}mg;
		s{(^#ifdef[ \t]+__cplusplus.*\n)\}[ \t]*$}{$1/* Close extern "C" */}mg;
	' "$f" >"$TMP/in.c"
	if ! "$INDENT" "${OPTS[@]}" "-U$typedefs" "$TMP/in.c" "$TMP/out.c" 2>"$TMP/indent.err" ||
		[ -s "$TMP/indent.err" ]; then
		echo "$0: $INDENT failed on $f:" >&2
		cat "$TMP/indent.err" >&2
		exit 1
	fi
	# after: undo the above, tab between run-together comments, "type *"
	perl -0777 -pe '
		s{^/\* Open extern "C" \*/$}{\{}mg;
		s{^/\* Close extern "C" \*/$}{\}}mg;
		s{/\*---X_X}{/* ---}g;
		s{\*/(/\*.*\*/)$}{*/\t$1}mg;
		s{^([A-Za-z_]\S*)[ \t]+\*$}{$1 *}mg;
	' "$TMP/out.c" >"$TMP/new.c"
	if ! cmp -s "$f" "$TMP/new.c"; then
		changed+=("$f")
		if [ $check -eq 1 ]; then
			diff -u --label "a/$f" --label "b/$f" "$f" "$TMP/new.c" >>"$TMP/diff" || true
		else
			cat "$TMP/new.c" >"$f"
		fi
	fi
done

if [ $check -eq 0 ]; then
	[ ${#changed[@]} -eq 0 ] || printf 'reindented %s\n' "${changed[@]}"
	exit 0
fi
if [ ${#changed[@]} -eq 0 ]; then
	echo "ok   ${#files[@]} files are in pgindent layout"
	exit 0
fi
echo "FAIL ${#changed[@]} of ${#files[@]} files are not in pgindent layout (make indent rewrites them):"
printf '     %s\n' "${changed[@]}"
total=$(wc -l <"$TMP/diff")
head -n "$DIFF_LINES" "$TMP/diff"
[ "$total" -le "$DIFF_LINES" ] || echo "... diff cut at $DIFF_LINES of $total lines"
exit 1
