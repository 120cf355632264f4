#!/usr/bin/env python3
"""Write an extension script: the given files one after the other, with every
line

    #include "udfs/NAME/VERSION.sql"

replaced by that file as it is, and every line

    #include-replace "udfs/NAME/VERSION.sql"

replaced by that file with its leading CREATE FUNCTION / PROCEDURE / VIEW
turned into CREATE OR REPLACE ... (an upgrade script redefines what an install
script creates; STYLE.md wants plain CREATE in install scripts).  Paths are
relative to the include directory (-I, default src/sql).  An included file
is scanned for includes in turn (a part shared by the install script and an
upgrade script includes its functions).  Bytes are copied unchanged, so a script
generated from the same sources is the same file.

Used by the Makefile (src/sql/README.md); dependency-free on purpose (cpp would
mangle SQL's quotes and comments).

usage: sqlinclude.py [-I DIR] -o OUT FILE...
"""
import os
import re
import sys

DIRECTIVE = re.compile(rb'#include(-replace)?[ \t]+"([^"]+)"[ \t]*\r?\n?\Z')
CREATE = re.compile(rb'CREATE (FUNCTION|PROCEDURE|VIEW) ')


def fail(where, message):
    sys.stderr.write('%s: %s\n' % (where, message))
    sys.exit(1)


def expand(path, incdir, out, depth=0):
    if depth > 8:
        fail(path, 'includes nested too deep')
    with open(path, 'rb') as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if not line.startswith(b'#include'):
            out.append(line)
            continue
        where = '%s:%d' % (path, number)
        m = DIRECTIVE.match(line)
        if not m:
            fail(where, 'expected #include "FILE" or #include-replace "FILE"')
        name = m.group(2).decode()
        try:
            with open(os.path.join(incdir, name), 'rb') as f:
                text = f.read()
        except OSError as e:
            fail(where, 'cannot include %s: %s' % (name, e.strerror))
        if not text.endswith(b'\n'):
            fail(where, '%s does not end with a newline' % name)
        if not m.group(1) and re.search(rb'^#include', text, re.M):
            expand(os.path.join(incdir, name), incdir, out, depth + 1)
            continue
        if m.group(1):
            if not CREATE.match(text):
                fail(where, '#include-replace needs a file starting with '
                     'CREATE FUNCTION, CREATE PROCEDURE or CREATE VIEW: %s' % name)
            text = b'CREATE OR REPLACE ' + text[len(b'CREATE '):]
        out.append(text)


def main(argv):
    incdir, output, files = 'src/sql', None, []
    args = iter(argv)
    for a in args:
        if a == '-I':
            incdir = next(args, None)
        elif a == '-o':
            output = next(args, None)
        elif a.startswith('-'):
            fail('sqlinclude.py', 'unknown option %s' % a)
        else:
            files.append(a)
    if not output or not incdir or not files:
        fail('sqlinclude.py', 'usage: sqlinclude.py [-I DIR] -o OUT FILE...')
    out = []
    for path in files:
        expand(path, incdir, out)
    # write to a temporary file first: a failed run leaves no half script
    tmp = output + '.tmp'
    with open(tmp, 'wb') as f:
        f.writelines(out)
    os.replace(tmp, output)


if __name__ == '__main__':
    main(sys.argv[1:])
