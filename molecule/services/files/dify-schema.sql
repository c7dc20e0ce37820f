-- A database shaped like a running Dify's (table names from Dify 1.13's models; columns trimmed),
-- with rows, so that tuning, storage parameters and the backup's row counts meet real data.
CREATE TABLE apps (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name varchar(255) NOT NULL);
CREATE TABLE conversations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), app_id uuid NOT NULL, name varchar(255));
CREATE TABLE messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id uuid NOT NULL, query text, answer text);
CREATE TABLE message_files (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), message_id uuid NOT NULL, url text);
CREATE TABLE workflow_runs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), app_id uuid NOT NULL, status varchar(255), outputs text);
CREATE TABLE workflow_node_executions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), workflow_run_id uuid, node_id varchar(255), outputs text);
CREATE TABLE workflow_app_logs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), workflow_run_id uuid NOT NULL, created_from varchar(255));

INSERT INTO apps (name) SELECT 'app ' || i FROM generate_series(1, 7) i;
INSERT INTO conversations (app_id, name) SELECT (SELECT id FROM apps LIMIT 1), 'conversation ' || i FROM generate_series(1, 120) i;
INSERT INTO messages (conversation_id, query, answer)
  SELECT c.id, 'question ' || i, repeat('answer ', 20) FROM conversations c, generate_series(1, 9) i;
INSERT INTO message_files (message_id, url) SELECT id, 'https://files.example.invalid/' || id FROM messages LIMIT 333;
INSERT INTO workflow_runs (app_id, status, outputs) SELECT (SELECT id FROM apps LIMIT 1), 'succeeded', '{}' FROM generate_series(1, 250);
INSERT INTO workflow_node_executions (workflow_run_id, node_id, outputs) SELECT r.id, 'node ' || i, '{}' FROM workflow_runs r, generate_series(1, 4) i;
INSERT INTO workflow_app_logs (workflow_run_id, created_from) SELECT id, 'service-api' FROM workflow_runs;
