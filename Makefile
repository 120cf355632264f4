# loyalty: PGXS build.  See README.md for the two commands that install
# PostgreSQL, build, install and test in a throwaway cluster.

EXTENSION  = loyalty
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)

MODULE_big = loyalty
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# SQL scripts, every body written once (src/sql/README.md):
#   src/sql/NN_concern.sql      fragments of the current install script, in name
#                               order (tables, types, grants, comments ...);
#   src/sql/udfs/NAME/V.sql     one file per function, procedure or view and per
#                               version V in which its text changed;
#   src/sql/updates/*.sql       templates of the released scripts (the 1.0 install
#                               script and each upgrade), frozen at release.
# Fragments and templates pull bodies in with #include "udfs/NAME/V.sql", or
# #include-replace (CREATE OR REPLACE, for upgrade scripts); tools/sqlinclude.py
# expands them into loyalty--$(EXTVERSION).sql and every loyalty--A[--B].sql here.
# To change a function in version X.Y: copy udfs/NAME/<newest>.sql to
# udfs/NAME/X.Y.sql, edit it, include it from the fragment (#include) and from
# updates/loyalty--W.V--X.Y.sql (#include-replace).  test/scripts/sql_sources.sh
# checks the released scripts against src/sql/updates/SHA256SUMS.
SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
SQL_UPDATES = $(sort $(wildcard src/sql/updates/$(EXTENSION)--*.sql))
SQL_UDFS    = $(wildcard src/sql/udfs/*/*.sql)
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
