-- Every planned setting next to what the server runs. PostgreSQL itself normalises both sides:
-- sizes through pg_size_bytes, times through interval, numbers as numeric, the rest as text.
SELECT p.key AS name, p.value AS planned, current_setting(p.key) AS shown, s.pending_restart,
  CASE
    WHEN s.unit IN ('B', 'kB', 'MB', '8kB', '16MB') THEN
      pg_size_bytes(p.value) = s.setting::numeric * pg_size_bytes(CASE WHEN s.unit ~ '^[0-9]' THEN s.unit ELSE '1' || s.unit END)
    WHEN s.unit IN ('ms', 's', 'min') THEN p.value::interval = (s.setting || ' ' || s.unit)::interval
    WHEN s.vartype IN ('integer', 'real') THEN p.value::numeric = s.setting::numeric
    ELSE lower(p.value) = lower(s.setting)
  END AS matches
FROM json_each_text(%(planned)s::json) p
JOIN pg_settings s ON s.name = p.key
ORDER BY p.key
