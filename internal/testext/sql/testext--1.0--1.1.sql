-- testext 1.0 to 1.1 (ALTER EXTENSION testext UPDATE TO '1.1'), for
-- TestCreateExtension: one more function, from the same library.
\echo Use "ALTER EXTENSION testext UPDATE TO '1.1'" to load this file. \quit
CREATE FUNCTION testext_add_v11(a int4, b int4) RETURNS int4
    AS 'MODULE_PATHNAME', 'testext_add' LANGUAGE C;
REVOKE ALL ON FUNCTION testext_add_v11 FROM PUBLIC;
