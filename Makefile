# loyalty: PGXS build.  See README.md for the two commands that install
# PostgreSQL, build, install and test in a throwaway cluster.

EXTENSION  = loyalty
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)

MODULE_big = loyalty
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# SQL scripts, every body written once (src/sql/README.md): the fragments
# src/sql/NN_concern.sql (the current install script, in name order) and the
# templates src/sql/updates/loyalty--A[--B].sql (released scripts, frozen) pull
# each function, procedure and view from src/sql/udfs/NAME/VERSION.sql with
# #include "udfs/NAME/VERSION.sql" (#include-replace: as CREATE OR REPLACE);
# tools/sqlinclude.py writes the scripts here.  To change a function in X.Y:
# copy its newest udfs file to udfs/NAME/X.Y.sql, edit it, include that from
# the fragment and (#include-replace) from updates/loyalty--W.V--X.Y.sql.
SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
SQL_UPDATES = $(sort $(wildcard src/sql/updates/$(EXTENSION)--*.sql))
SQL_UDFS    = $(wildcard src/sql/udfs/*/*.sql) $(wildcard src/sql/parts/*.sql)
SQLINCLUDE  = python3 tools/sqlinclude.py -I src/sql
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql $(notdir $(SQL_UPDATES))

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=loyalty
ISOLATION      = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=loyalty

# PostgreSQL's headers are system headers to us: our own code is held to
# -Wall -Wextra, theirs (unused parameters in inline functions) is not ours.
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server) \
              -DLOYALTY_VERSION='"$(EXTVERSION)"'
PG_CFLAGS   = -Wall -Wextra $(EXTRA_CFLAGS)

EXTRA_CLEAN = $(DATA_built)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) $(SQL_UDFS) tools/sqlinclude.py
	$(SQLINCLUDE) -o $@ $(SQL_PARTS)

$(notdir $(SQL_UPDATES)): $(EXTENSION)--%.sql: src/sql/updates/$(EXTENSION)--%.sql $(SQL_UDFS) tools/sqlinclude.py
	$(SQLINCLUDE) -o $@ $<

$(OBJS): src/loyalty.h

# src/loyalty.c carries the version; rebuild it when the control file changes.
src/loyalty.o: loyalty.control

# The release archive, from git (committed files only), as PGXN wants it:
# loyalty-<version>.zip with a loyalty-<version>/ prefix.
dist:
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD
	@echo "wrote $(EXTENSION)-$(EXTVERSION).zip"

.PHONY: dist

# Layout and static checks (tools only; the build does not use them):
#   make indent        rewrites src/*.c src/*.h in PostgreSQL's layout:
#                      tools/indent.sh runs Debian's pg_bsd_indent (package
#                      pg-bsd-indent) with pgindent's switches and a typedefs
#                      list read from our objects' debug information
#   make indent-check  changes nothing; fails when make indent would change a
#                      file, listing the files and their diff (200 lines at most)
#   make cppcheck      cppcheck (package cppcheck) on src/*.c; fails on any
#                      finding.  Suppressed everywhere, as PostgreSQL's headers
#                      make them noise: missingIncludeSystem; legacyUninitvar
#                      (ereport(ERROR) is not seen as not returning; uninitvar
#                      still runs); unusedStructMember (LOCAL_FCINFO's union);
#                      shadowFunction (fmgrprotos.h declares now(), date() ...).
#                      A false positive of another kind: a line
#                      /* cppcheck-suppress ID */ just above it.
#   make scan-build    clang's static analyzer (package clang-tools-14) over
#                      the objects, rebuilt; fails on any bug it reports
INDENT_FILES = $(sort $(wildcard src/*.c src/*.h))
CPPCHECK   ?= cppcheck
SCAN_BUILD ?= scan-build-14
CPPCHECK_FLAGS = --enable=warning,style,performance,portability --std=c99 \
	--inline-suppr --error-exitcode=1 --quiet -j2 \
	--template='{file}:{line}: {severity}: {message} [{id}]' \
	-D__GNUC__ -DLOYALTY_VERSION='"$(EXTVERSION)"' -Isrc -I$(includedir_server) \
	--suppress=missingIncludeSystem --suppress=legacyUninitvar \
	--suppress=unusedStructMember --suppress=shadowFunction

indent:
	tools/indent.sh $(INDENT_FILES) -- $(CC) $(CPPFLAGS)

indent-check:
	tools/indent.sh --check $(INDENT_FILES) -- $(CC) $(CPPFLAGS)

cppcheck:
	$(CPPCHECK) $(CPPCHECK_FLAGS) $(sort $(wildcard src/*.c))

scan-build:
	$(SCAN_BUILD) --status-bugs --use-cc=$(CC) sh -c '$(MAKE) -s -B CC="$$CC" $(OBJS)'

.PHONY: indent indent-check cppcheck scan-build

# pgTAP files against a running server (PGHOST, PGPORT, ... as for psql), in
# a database of their own made for the run and dropped after it:
#   make prove                              every file of test/pgtap/
#   make prove TEST=test/pgtap/ledger_core.sql
#   make prove TEST=... PGOPTIONS='-c loyalty.fast_store=off'
PROVE_DB ?= loyalty_prove
TEST     ?= $(sort $(wildcard test/pgtap/*.sql))

prove:
	dropdb --if-exists $(PROVE_DB)
	createdb $(PROVE_DB)
	psql -qX -d $(PROVE_DB) -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION loyalty'
	pg_prove -d $(PROVE_DB) $(TEST); rc=$$?; dropdb --if-exists $(PROVE_DB); exit $$rc

.PHONY: prove

# The long checks (tools/soak.sh: chaos 10 minutes, 20 crash rounds, random
# SQL and generated input at full size; the suite on an instrumented build
# when LOYALTY_PG_BIN is set).  Not part of the test command.
soak:
	bash tools/soak.sh

.PHONY: soak
