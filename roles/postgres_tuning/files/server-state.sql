-- What postgres_tuning needs to know of the server, as one JSON document (run by psql with the
-- variables user, databases and settings, comma-separated; see vars/main.yml). Only reads.
SELECT json_build_object(
  'config_file', current_setting('config_file'),
  'hba_file', current_setting('hba_file'),
  'data_directory', current_setting('data_directory'),
  'major', current_setting('server_version_num')::int / 10000,
  'pending_restart', (SELECT coalesce(json_agg(name ORDER BY name), '[]') FROM pg_settings WHERE pending_restart),
  'settings', (SELECT coalesce(json_object_agg(name, json_build_object(
                 'source', coalesce(sourcefile, source), 'sourcefile', sourcefile, 'pending_restart', pending_restart)), '{}')
               FROM pg_settings WHERE name = ANY(string_to_array(:'settings', ','))),
  'role', (SELECT json_build_object('login', rolcanlogin, 'superuser', rolsuper, 'createrole', rolcreaterole,
                                    'createdb', rolcreatedb, 'password', rolpassword)
           FROM pg_authid WHERE rolname = :'user'),
  'databases', (SELECT coalesce(json_object_agg(datname, json_build_object(
                  'owner', pg_get_userbyid(datdba), 'encoding', pg_encoding_to_char(encoding))), '{}')
                FROM pg_database WHERE datname = ANY(string_to_array(:'databases', ',')))
);
