-- Customers gain the URL by which the client's system addresses them (TOPdesk's
-- `_links.for.href`), empty when there is none; tenants gain settings.

ALTER TABLE customers ADD COLUMN link TEXT NOT NULL DEFAULT '';

CREATE TABLE settings (
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
