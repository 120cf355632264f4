-- ---------------------------------------------------------------------------
-- A merge's engagement data: tags, badges, challenge progress and survey
-- answers follow the books to the survivor.
-- ---------------------------------------------------------------------------

#include "parts/merge.sql"
