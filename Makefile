# loyalty: PGXS build.  See README.md for the two commands that install
# PostgreSQL, build, install and test in a throwaway cluster.

EXTENSION  = loyalty
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)

MODULE_big = loyalty
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from one fragment per concern, in name order
# (src/sql/NN_concern.sql), as pg_partman does; each function, procedure and
# view is a file of its own, src/sql/udfs/NAME/VERSION.sql, pulled in by an
# #include line (tools/sqlinclude.py).  Released scripts are frozen by copying
# them to update/ before the next version changes a fragment.
SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
SQL_UDFS    = $(wildcard src/sql/udfs/*/*.sql)
SQLINCLUDE  = python3 tools/sqlinclude.py -I src/sql
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(wildcard update/$(EXTENSION)--*.sql)

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

$(OBJS): src/loyalty.h

# src/loyalty.c carries the version; rebuild it when the control file changes.
src/loyalty.o: loyalty.control

# The release archive, from git (committed files only), as PGXN wants it:
# loyalty-<version>.zip with a loyalty-<version>/ prefix.
dist:
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD
	@echo "wrote $(EXTENSION)-$(EXTVERSION).zip"

.PHONY: dist
