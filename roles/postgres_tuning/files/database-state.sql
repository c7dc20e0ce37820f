-- What postgres_tuning needs to know of one Dify database, as one JSON document (run by psql in
-- that database with the variable tables, comma-separated and empty for all but the first). Only reads.
SELECT json_build_object(
  'extensions', (SELECT coalesce(json_agg(extname ORDER BY extname), '[]') FROM pg_extension),
  'tables', (SELECT coalesce(json_object_agg(c.relname, coalesce(c.reloptions, '{}')), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
               AND c.relname = ANY(string_to_array(:'tables', ',')))
);
