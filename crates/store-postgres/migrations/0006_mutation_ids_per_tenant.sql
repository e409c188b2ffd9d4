-- Mutation ids become unique within their tenant rather than across the store: clients
-- may choose them, and one tenant's choice must neither fail for nor reveal another's.

ALTER TABLE mutations DROP CONSTRAINT mutations_id_key;
ALTER TABLE mutations ADD CONSTRAINT mutations_tenant_id_key UNIQUE (tenant, id);
