-- Customers gain the URL by which the client's system addresses them (TOPdesk's
-- `_links.for.href`), empty when there is none; tenants gain settings.

ALTER TABLE customers ADD COLUMN link TEXT NOT NULL DEFAULT '';

-- A batch inserts a setting it found absent and updates one it found: two instances
-- racing to create one break the primary key, and the loser runs again and updates.
CREATE TABLE settings (
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
