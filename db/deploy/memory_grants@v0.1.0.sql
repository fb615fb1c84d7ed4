-- Deploy memoriesdb:memory_grants to pg
-- requires: memories
-- Explicit sharing: a grant lets one user read (or read and revise) another's
-- memory until it expires. Widens the memories policy to grantees.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.memory_grants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  memory_id   uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  grantee_id  uuid NOT NULL REFERENCES memoriesdb.users,
  owner_id    uuid NOT NULL REFERENCES memoriesdb.users,
  permission  text NOT NULL CHECK (permission IN ('read', 'write')),
  expires_at  timestamptz,
  created_at  timestamptz NOT NULL,
  created_by  uuid NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  uuid,
  UNIQUE (memory_id, grantee_id),
  CHECK (grantee_id <> owner_id)
);
COMMENT ON TABLE memoriesdb.memory_grants IS
  'Grants made by share(): grantee may read (permission read) or read and revise (write) the memory until expires_at (NULL: no expiry). An expired grant gives nothing. owner_id repeats the memory''s owner so that the policies of memories and memory_grants need not read each other (which PostgreSQL would reject as recursion); transfer() keeps it current.';
CREATE INDEX memory_grants_grantee ON memoriesdb.memory_grants (grantee_id, memory_id);
CREATE INDEX memory_grants_owner ON memoriesdb.memory_grants (owner_id);

ALTER TABLE memoriesdb.memory_grants ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_grants_owner ON memoriesdb.memory_grants TO memoriesdb_owner USING (true) WITH CHECK (true);
CREATE POLICY memory_grants_parties ON memoriesdb.memory_grants FOR SELECT TO memoriesdb_app
  USING (grantee_id = (SELECT memoriesdb.current_user_id()) OR owner_id = (SELECT memoriesdb.current_user_id()));
GRANT SELECT ON memoriesdb.memory_grants TO memoriesdb_app;

CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb.stamp_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON memoriesdb.memory_grants FOR EACH ROW EXECUTE FUNCTION memoriesdb.audit_row('memory_id');

ALTER POLICY memories_visible ON memoriesdb.memories
  USING (owner_id = (SELECT memoriesdb.current_user_id())
         OR EXISTS (SELECT 1 FROM memoriesdb.memory_grants AS g
                     WHERE g.memory_id = memories.id
                       AND g.grantee_id = (SELECT memoriesdb.current_user_id())
                       AND (g.expires_at IS NULL OR g.expires_at > now())));

-- the one definition of "who may do what" used by the SECURITY DEFINER API
CREATE FUNCTION memoriesdb.access_level(memory_id uuid, user_id uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN m.owner_id = access_level.user_id THEN 'owner' ELSE g.permission END
    FROM memoriesdb.memories AS m
    LEFT JOIN memoriesdb.memory_grants AS g
           ON g.memory_id = m.id AND g.grantee_id = access_level.user_id
          AND (g.expires_at IS NULL OR g.expires_at > now())
   WHERE m.id = access_level.memory_id
$$;
COMMENT ON FUNCTION memoriesdb.access_level(uuid, uuid) IS
  'What user_id may do with a memory: owner, write, read, or NULL (nothing; also when the memory does not exist). Mirrors the memories_visible policy.';

COMMIT;
