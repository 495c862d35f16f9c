-- 019_uuid_lookups: id lookups use their indexes.
--
-- Queries take ids as text (an id from a URL may be anything) and used to
-- compare "col::text = $1": a text comparison, so PostgreSQL could not use
-- the uuid column's index and read the whole table. Point lookups such as
-- the membership check of every enrollment became slower as the fleet grew
-- (issue 24, BenchmarkEnrollment). rap_uuid(t) is t as a uuid when t is in
-- PostgreSQL's own text form of a uuid (lowercase, 8-4-4-4-12) and NULL
-- otherwise, so "col = rap_uuid($1)" matches exactly the rows that
-- "col::text = $1" matched (NULL matches nothing; an uppercase or braced
-- spelling matched nothing before either) and uses the index. rap_uuids
-- does the same for an array (for "col = ANY(…)"), dropping what is not a
-- uuid's text form. Both are IMMUTABLE SQL functions, so the planner
-- inlines them and evaluates them once per statement.
CREATE FUNCTION rap_uuid(t text) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN t ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN t::uuid END
$$;

CREATE FUNCTION rap_uuids(t text[]) RETURNS uuid[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(rap_uuid(x)) FILTER (WHERE rap_uuid(x) IS NOT NULL), '{}') FROM unnest(t) AS x
$$;

---- create above / drop below ----
DROP FUNCTION rap_uuids(text[]);
DROP FUNCTION rap_uuid(text);
