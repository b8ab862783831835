DROP INDEX events_business_type_id;
DROP INDEX events_business_id;
CREATE INDEX events_business_type_created ON events (business_id, type, created);
CREATE INDEX events_business_created ON events (business_id, created, id);
